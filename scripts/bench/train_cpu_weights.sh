#!/usr/bin/env bash
# scripts/bench/train_cpu_weights.sh [OUT_DIR] — realistic full-size (11 × 512, SP8192, the record
# stack's defaults) weights for the coder benchmark, trained on this machine's CPU: Gutenberg
# shards (the first TRAIN_DOCS documents), then golf-train for TRAIN_SECONDS of wall clock
# (default 660) with small CPU batches, then golf-pack (GPTQ, COMPRESSOR=golf) → OUT_DIR/run/
# final_model.golf. Every later step of scripts/bench/coder.sh reads those quantized weights.
# Environment: GOLF_BUILD_DIR (binaries), GOLF_DATA_DIR, GOLF_TOKENIZER_DIR, TRAIN_SECONDS, TRAIN_DOCS.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/out/coder-bench}"
BUILD="${GOLF_BUILD_DIR:-$ROOT/build}"
DATA="${GOLF_DATA_DIR:-$ROOT/../shared/data}"
TOKENIZER="${GOLF_TOKENIZER_DIR:-$ROOT/../shared/tokenizers}/fineweb_8192_bpe.model"
TRAIN_SECONDS="${TRAIN_SECONDS:-660}"
TRAIN_DOCS="${TRAIN_DOCS:-3000}"
SHARDS="$OUT/datasets/fineweb10B_sp8192"
mkdir -p "$OUT"

if [ ! -f "$SHARDS/.done" ]; then
  "$BUILD/data/golf-data" shards --input "$DATA/gutenberg/val.jsonl.xz" --tokenizer "$TOKENIZER" --out "$SHARDS" \
    --split val --max-docs 200 --overwrite >/dev/null
  "$BUILD/data/golf-data" shards --input "$DATA/gutenberg/train.jsonl.xz" --tokenizer "$TOKENIZER" --out "$SHARDS" \
    --split train --max-docs "$TRAIN_DOCS" --overwrite >/dev/null
  touch "$SHARDS/.done"
fi

RUN="$OUT/run"
if [ ! -f "$RUN/hessians.safetensors" ]; then
  rm -rf "$RUN"
  # The record stack at full size (11 × 512, MLP 4×, vocab 8192); only the batch shape is cut to
  # what two shared CPU cores can step (a 4,096-token step took 684 s under a load of 13), the
  # depth recurrence is off (it only adds compute), and validation and calibration are one batch.
  DEVICE=cpu DATA_PATH="$SHARDS" TOKENIZER_PATH="$TOKENIZER" OUTPUT_DIR="$OUT" RUN_ID=run SEED=1337 \
    TRAIN_SEQ_LEN=256 TRAIN_BATCH_TOKENS=1024 GRAD_ACCUM_STEPS=1 ITERATIONS=100000 NUM_LOOPS=0 \
    MAX_WALLCLOCK_SECONDS="$TRAIN_SECONDS" GPTQ_RESERVE_SECONDS=0 GPTQ_CALIBRATION_BATCHES=1 \
    WARMUP_STEPS=0 VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=256 VAL_BATCH_TOKENS=256 CHECKPOINT_EVERY=0 TRAIN_LOG_EVERY=1 \
    EVAL_SEQ_LEN=256 \
    "$BUILD/train/golf-train"
fi
if [ ! -f "$RUN/final_model.golf" ]; then
  # COMPRESSOR=golf: fast; the benchmark re-encodes the same quantized tensors with every coder.
  COMPRESSOR=golf "$BUILD/pack/golf-pack" "$RUN" --out "$RUN/final_model.golf"
fi
echo "weights: $RUN/final_model.golf"
