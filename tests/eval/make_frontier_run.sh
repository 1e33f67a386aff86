#!/usr/bin/env bash
# tests/eval/make_frontier_run.sh DIR — the ctest fixture behind tests/eval/frontier_smoke_test.cpp,
# made once per test run with the real tools: Tiny Shakespeare (90/10 split) → a 512-piece
# tokenizer, training shards, validation shards of one document per paragraph → golf-train with
# train/configs/frontier_0427.json scaled down to 4 × 128 (8 steps) → golf-pack with LQER (the
# config's) and COMPRESSOR=pergroup, --val. The scaled settings are listed in the test's header.
# Needs GOLF_DATA_BIN, GOLF_TRAIN_BIN, GOLF_PACK_BIN, GOLF_PYTHON, GOLF_SOURCE_DIR and TINY_SHAKESPEARE.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/shakespeare_corpus.sh"
shakespeare_corpus "$1" "the frontier smoke tests"
"$GOLF_DATA_BIN" shards --input val_docs.jsonl --tokenizer tok.model --out data --split val >/dev/null
"$GOLF_TRAIN_BIN" --config "$GOLF_SOURCE_DIR/train/configs/frontier_0427.json" \
  --set DATA_PATH=data --set TOKENIZER_PATH=tok.model --set OUTPUT_DIR=runs --set RUN_ID=frontier \
  --set VOCAB_SIZE=512 --set NUM_LAYERS=4 --set MODEL_DIM=128 --set NUM_HEADS=4 --set NUM_KV_HEADS=2 \
  --set ROPE_DIMS=16 --set XSA_LAST_N=4 --set PARALLEL_START_LAYER=3 --set NUM_LOOPS=1 --set LOOP_START=1 \
  --set LOOP_END=2 --set TRAIN_SEQ_LEN=128 --set TRAIN_BATCH_TOKENS=1024 --set GRAD_ACCUM_STEPS=1 \
  --set MAX_WALLCLOCK_SECONDS=0 --set ITERATIONS=8 --set WARMUP_STEPS=0 --set VAL_LOSS_EVERY=0 \
  --set VAL_MAX_TOKENS=4096 --set CHECKPOINT_EVERY=0 --set GPTQ_CALIBRATION_BATCHES=2 \
  --set GPTQ_RESERVE_SECONDS=0 --set TRAIN_LOG_EVERY=1 >train.out 2>&1
"$GOLF_PACK_BIN" runs/frontier --out frontier.golf --val --set COMPRESSOR=pergroup \
  --set PASSTHROUGH_MAX_NUMEL=4096 >pack.log 2>&1
echo "frontier fixture ready in $PWD"
