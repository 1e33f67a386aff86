#!/usr/bin/env bash
# scripts/bench/coder.sh [SOURCE] [OUT_DIR] — the coder benchmark of issue 16 §1 / issue 14: the
# same GPTQ-quantized weights written with today's byte-shuffled Brotli-11 (window 24), Brotli
# with the per-artifact setting choice, COMPRESSOR=pergroup and COMPRESSOR=golf: bytes,
# encode/decode seconds (wall and CPU, with the machine's load average), bytes per code group and
# the order-0 entropy of the codes. Report: OUT_DIR/coder_bench.txt and .json.
#
# SOURCE (or the environment's RUN_DIR / ARTIFACT):
#   a golf-train run directory (config.json, ema_model.safetensors, hessians.safetensors): packed
#     here by golf-pack (GPTQ) into OUT_DIR/weights.golf; the run directory is only read
#   an artifact F.golf (any compressor): benchmarked as it is
#   nothing: full-size weights trained on this CPU (35 steps, EMA off) by scripts/bench/train_cpu_weights.sh
#     into OUT_DIR (skipped when OUT_DIR already holds them)
# A golf stream is tied to the coder's model, so the benchmark first writes a coder-neutral copy
# (OUT_DIR/weights_brotli5.golf, Brotli quality 5) that later builds can still read.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${GOLF_BUILD_DIR:-$ROOT/build}"
SOURCE="${1:-}"
RUN_DIR="${RUN_DIR:-}"
ARTIFACT="${ARTIFACT:-}"
if [ -n "$SOURCE" ] && [ -f "$SOURCE" ]; then
  ARTIFACT="$SOURCE"; shift
elif [ -n "$SOURCE" ] && [ -f "$SOURCE/config.json" ]; then
  RUN_DIR="$SOURCE"; shift
fi
OUT="${1:-$ROOT/out/coder-bench}"
mkdir -p "$OUT"

if [ -n "$RUN_DIR" ]; then
  [ -f "$RUN_DIR/hessians.safetensors" ] || { echo "coder.sh: $RUN_DIR has no hessians.safetensors (training not finished?)" >&2; exit 1; }
  if [ ! -f "$OUT/weights.golf" ]; then
    cmake --build "$BUILD" --target golf-pack >/dev/null
    # COMPRESSOR=golf: the fastest writer; the benchmark re-encodes the tensors with every coder.
    COMPRESSOR=golf "$BUILD/pack/golf-pack" "$RUN_DIR" --out "$OUT/weights.golf" >"$OUT/golf-pack.log"
  fi
  ARTIFACT="$OUT/weights.golf"
elif [ -z "$ARTIFACT" ]; then
  "$ROOT/scripts/bench/train_cpu_weights.sh" "$OUT"
  ARTIFACT="$OUT/run/final_model.golf"
fi
cmake --build "$BUILD" --target golf-coder-bench >/dev/null
NEUTRAL="$OUT/weights_brotli5.golf"
if [ ! -f "$NEUTRAL" ] || [ "$ARTIFACT" -nt "$NEUTRAL" ]; then
  "$BUILD/artifact/golf-coder-bench" "$ARTIFACT" --save-brotli "$NEUTRAL"
fi
"$BUILD/artifact/golf-coder-bench" "$NEUTRAL" --json "$OUT/coder_bench.json" "${@:2}" | tee "$OUT/coder_bench.txt"
