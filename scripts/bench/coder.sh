#!/usr/bin/env bash
# scripts/bench/coder.sh [OUT_DIR] — the coder benchmark of issue 16 §1 / issue 14: the same
# GPTQ-quantized weights of a full-size (11 × 512) model, CPU-trained by
# scripts/bench/train_cpu_weights.sh (skipped when OUT_DIR already holds them), written with
# today's byte-shuffled Brotli-11 (window 24), Brotli with the per-artifact setting choice,
# COMPRESSOR=pergroup and COMPRESSOR=golf: bytes, encode/decode seconds, bytes per code group and
# the order-0 entropy of the codes. Report: OUT_DIR/coder_bench.txt and .json.
# ARTIFACT=F.golf benchmarks another artifact (e.g. GPU-trained weights) instead.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/out/coder-bench}"
BUILD="${GOLF_BUILD_DIR:-$ROOT/build}"
ARTIFACT="${ARTIFACT:-}"
if [ -z "$ARTIFACT" ]; then
  "$ROOT/scripts/bench/train_cpu_weights.sh" "$OUT"
  ARTIFACT="$OUT/run/final_model.golf"
fi
cmake --build "$BUILD" --target golf-coder-bench >/dev/null
"$BUILD/pack/golf-coder-bench" "$ARTIFACT" --json "$OUT/coder_bench.json" | tee "$OUT/coder_bench.txt"
