#!/usr/bin/env bash
# scripts/bench/plan_train.sh OUT_DIR — briefly CPU-trained runs of different size for the
# planner's predicted-vs-real table (issue 16 §2): the frontier_0427 stack at 4×128, 6×256 and
# 8×384 (heads 8/4, so head dims 16, 32, 48), each for TRAIN_SECONDS_<L>x<D> seconds of wall clock
# with small batches, Hessians from 2 batches, depth recurrence off (NUM_LOOPS=0: it changes no
# parameter, and LOOP_END=5 does not fit 4 layers), parallel residuals on the last 3 layers as at 11
# layers (PARALLEL_START_LAYER=8 would leave 4–8-layer models with unused parameters). Skips a run that already has its Hessians.
# The full-size 11×512 point is the lead's longer run (FULL_RUN, read-only; see plan_table.sh).
# Environment: GOLF_BUILD_DIR (binaries), DATA_PATH (SP8192 shards), TOKENIZER_PATH, THREADS.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:?usage: plan_train.sh OUT_DIR}"
BUILD="${GOLF_BUILD_DIR:-$ROOT/build}"
DATA_PATH="${DATA_PATH:-$HOME/.cache/golf/bench/frontier-11x512/data}"
TOKENIZER_PATH="${TOKENIZER_PATH:-$ROOT/../shared/tokenizers/fineweb_8192_bpe.model}"
mkdir -p "$OUT"
# SHAPES: "LxD:SECONDS[:RUN_ID] ..." (default the three calibration runs; session 6 added
# 4x128:420:4x128-long, a longer run held out of the calibration to test c_rare(ITERATIONS); session 7
# 4x256:420:4x256 into /work/planner7-runs, 23 steps, the width of 6x256 at the depth of 4x128, to
# separate c_rare's width term from the steps).
for shape in ${SHAPES:-4x128:240 6x256:300 8x384:420}; do
  IFS=: read -r size seconds run_id <<<"$shape"
  run_id="${run_id:-$size}"
  layers="${size%%x*}"; dim="${size##*x}"
  [ -f "$OUT/$run_id/hessians.safetensors" ] && continue
  rm -rf "${OUT:?}/$run_id"
  OMP_NUM_THREADS="${THREADS:-1}" "$BUILD/train/golf-train" --config "$ROOT/train/configs/frontier_0427.json" \
    --set DATA_PATH="$DATA_PATH" --set TOKENIZER_PATH="$TOKENIZER_PATH" --set OUTPUT_DIR="$OUT" --set RUN_ID="$run_id" \
    --set NUM_LAYERS="$layers" --set MODEL_DIM="$dim" --set NUM_LOOPS=0 --set PARALLEL_START_LAYER=$((layers - 3)) \
    --set DEVICE=cpu --set MAX_WALLCLOCK_SECONDS="$seconds" --set ITERATIONS=100000 --set WARMUP_STEPS=0 \
    --set TRAIN_SEQ_LEN=256 --set TRAIN_BATCH_TOKENS=2048 --set GRAD_ACCUM_STEPS=1 --set VAL_LOSS_EVERY=0 \
    --set VAL_MAX_TOKENS=4096 --set VAL_BATCH_TOKENS=4096 --set CHECKPOINT_EVERY=0 \
    --set GPTQ_CALIBRATION_BATCHES=2 --set TRAIN_LOG_EVERY=20 --set EMA_DECAY=0 --set GPTQ_RESERVE_SECONDS=0 \
    > "$OUT/$run_id.train.log" 2>&1
done
