#!/usr/bin/env bash
# scripts/bench/train_cpu_weights.sh [OUT_DIR] — realistic full-size (11 × 512, SP8192, the record
# stack's defaults) weights for the coder benchmark, trained on this machine's CPU: Gutenberg
# shards (the first TRAIN_DOCS documents), then golf-train for TRAIN_STEPS steps (default 35) of
# 2,048 tokens, EMA off, then golf-pack (GPTQ, COMPRESSOR=golf) → OUT_DIR/run/final_model.golf.
# Every later step of scripts/bench/coder.sh reads those quantized weights. These are the README's
# benchmark weights ("35 steps of 2,048 tokens, EMA off"): a step count, not a wall-clock budget,
# so they do not depend on the machine's speed; and EMA off because golf-pack packs the EMA
# weights, which after a few dozen steps at EMA_DECAY=0.9965 are still close to the random init.
# Environment: GOLF_BUILD_DIR (binaries), GOLF_DATA_DIR, GOLF_TOKENIZER_DIR, TRAIN_STEPS, TRAIN_DOCS.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/out/coder-bench}"
BUILD="${GOLF_BUILD_DIR:-$ROOT/build}"
DATA="${GOLF_DATA_DIR:-$ROOT/../shared/data}"
TOKENIZER="${GOLF_TOKENIZER_DIR:-$ROOT/../shared/tokenizers}/fineweb_8192_bpe.model"
TRAIN_STEPS="${TRAIN_STEPS:-35}"
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
  # what two CPU cores can step (~10 s a 2,048-token step on an idle 2-core machine), the depth
  # recurrence is off (it only adds compute), and validation and calibration are one batch.
  DEVICE=cpu DATA_PATH="$SHARDS" TOKENIZER_PATH="$TOKENIZER" OUTPUT_DIR="$OUT" RUN_ID=run SEED=1337 \
    TRAIN_SEQ_LEN=256 TRAIN_BATCH_TOKENS=2048 GRAD_ACCUM_STEPS=1 ITERATIONS="$TRAIN_STEPS" NUM_LOOPS=0 \
    MAX_WALLCLOCK_SECONDS=0 EMA_DECAY=0 GPTQ_RESERVE_SECONDS=0 GPTQ_CALIBRATION_BATCHES=1 \
    WARMUP_STEPS=0 VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=256 VAL_BATCH_TOKENS=256 CHECKPOINT_EVERY=0 TRAIN_LOG_EVERY=1 \
    EVAL_SEQ_LEN=256 \
    "$BUILD/train/golf-train"
fi
if [ ! -f "$RUN/final_model.golf" ]; then
  # COMPRESSOR=golf: fast; the benchmark re-encodes the same quantized tensors with every coder.
  COMPRESSOR=golf "$BUILD/pack/golf-pack" "$RUN" --out "$RUN/final_model.golf"
fi
echo "weights: $RUN/final_model.golf"
