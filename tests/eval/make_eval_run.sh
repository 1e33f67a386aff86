#!/usr/bin/env bash
# tests/eval/make_eval_run.sh DIR — the ctest fixture behind the golf-eval CLI tests, made once per
# test run with the real tools: Tiny Shakespeare (90/10 split) → a 512-piece tokenizer, training
# shards, validation shards of one document per paragraph (plus, as a trap, a copy of a training
# shard that golf-eval must never open) → a tiny golf-train run → golf-pack --val; and a tiny SMAT
# run → golf-pack.
# Needs GOLF_DATA_BIN, GOLF_TRAIN_BIN, GOLF_PACK_BIN, GOLF_PYTHON and TINY_SHAKESPEARE.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/shakespeare_corpus.sh"
shakespeare_corpus "$1" "the golf-eval CLI tests"
"$GOLF_DATA_BIN" shards --input val_docs.jsonl --tokenizer tok.model --out val --split val >/dev/null
"$GOLF_DATA_BIN" shards --input val_docs.jsonl --tokenizer tok.model --out data --split val >/dev/null
cp data/fineweb_train_000000.bin val/
export TOKENIZER_PATH=tok.model OUTPUT_DIR=runs VAL_MAX_TOKENS=4096
env RUN_ID=tiny VOCAB_SIZE=512 NUM_LAYERS=3 MODEL_DIM=64 NUM_HEADS=4 NUM_KV_HEADS=2 ROPE_DIMS=8 LOOP_START=1 \
  LOOP_END=1 NUM_LOOPS=1 PARALLEL_START_LAYER=2 TRAIN_SEQ_LEN=128 TRAIN_BATCH_TOKENS=2048 GRAD_ACCUM_STEPS=1 \
  MAX_WALLCLOCK_SECONDS=0 ITERATIONS=30 WARMUP_STEPS=0 VAL_LOSS_EVERY=0 CHECKPOINT_EVERY=0 \
  GPTQ_CALIBRATION_BATCHES=4 DATA_PATH=data "$GOLF_TRAIN_BIN" >/dev/null
DATA_PATH=val "$GOLF_PACK_BIN" runs/tiny --val >/dev/null
# A SMAT model (S and G), for the eval-time ablations.
env RUN_ID=smat SMAT_USE_S=1 SMAT_USE_G=1 VOCAB_SIZE=512 NUM_LAYERS=3 MODEL_DIM=64 NUM_HEADS=4 NUM_KV_HEADS=2 \
  ROPE_DIMS=8 LOOP_START=1 LOOP_END=1 NUM_LOOPS=1 PARALLEL_START_LAYER=2 TRAIN_SEQ_LEN=128 TRAIN_BATCH_TOKENS=2048 \
  GRAD_ACCUM_STEPS=1 MAX_WALLCLOCK_SECONDS=0 ITERATIONS=20 WARMUP_STEPS=0 VAL_LOSS_EVERY=0 CHECKPOINT_EVERY=0 \
  GPTQ_CALIBRATION_BATCHES=4 DATA_PATH=data "$GOLF_TRAIN_BIN" >/dev/null
DATA_PATH=val "$GOLF_PACK_BIN" runs/smat >/dev/null
echo "eval fixture ready in $PWD"
