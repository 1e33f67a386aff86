#!/usr/bin/env bash
# scripts/bench/plan_records.sh — the planner against the only long-trained (GPU) evidence: the
# records' published model blobs (docs/reference quant-and-pack.md §2.7). golf has no GPU-trained
# weights, so these are the figures behind pack/plan.h's per-compressor long-training terms:
# Brotli's fitted on R0416 (R0419 held out); golf's chosen so its plan of R0427L's configuration
# equals golf/lrzip × R0427L's lrzip (pergroup) blob, golf/lrzip being golf's bytes / the records' lrzip
# scheme's on the codes of the CPU-trained 11×512 weights (scripts/bench/lrzip_pergroup.sh; the two
# numbers in the R0427L' line below, which scripts/bench/plan_refit.py rewrites). That row is in-sample
# by construction (it checks the arithmetic, not the estimate); it also prints the raw blob ratio.
# The R0416/R0419 stack in golf's settings: r29.json's clips (MLP 12, attn 13, int7 embedding at 15)
# with AttnOutGate in place of the sparse gate, no LQER, byte-shuffled Brotli-11.
# Environment: GOLF_BUILD_DIR (binaries). Prints one line per record: real blob, plan, error.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PACK="${GOLF_BUILD_DIR:-$ROOT/build}/pack/golf-pack"
artifact() {  # golf-pack plan ARGS... → the predicted artifact bytes (no counted code)
  "$PACK" plan "$@" | sed -n 's/^predicted artifact \([0-9,]*\) .*/\1/p' | tr -d ,
}
R0416=(--config "$ROOT/train/configs/r29.json" --set COMPRESSOR=brotli --set LQER_ENABLED=0
       --set SPARSE_ATTN_GATE_ENABLED=0 --set ATTN_OUT_GATE_ENABLED=1 --set GATED_ATTN_QUANT_GATE=0
       --set MLP_CLIP_SIGMAS=12 --set ATTN_CLIP_SIGMAS=13 --set EMBED_CLIP_SIGMAS=15)
row() {  # NAME REAL PLAN NOTE
  awk -v n="$1" -v r="$2" -v p="$3" -v note="$4" \
    'BEGIN { printf "%-8s real %10d  plan %10d  plan/real %+.2f %%  %s\n", n, r, p, 100 * (p - r) / r, note }'
}
row R0416 15908674 "$(artifact "${R0416[@]}")" "brotli; brotli's long-training term is fitted on it"
row R0419 15950809 "$(artifact "${R0416[@]}" --set GATED_ATTN_QUANT_GATE=1)" "brotli; held out (QuantGate)"
# golf's plan against golf/lrzip × R0427L's blob (the target its term was solved for), then against the blob.
R0427L_PLAN="$(artifact --config "$ROOT/train/configs/frontier_0427.json" --set COMPRESSOR=golf)"
TARGET_EXPR="15865260 * 15148996 / 15266812"
row R0427L\' "$(awk "BEGIN { printf \"%d\", $TARGET_EXPR + 0.5 }")" "$R0427L_PLAN" \
  "golf plan vs $(awk "BEGIN { printf \"%.4f\", $TARGET_EXPR / 15865260 }") x the lrzip blob (not a blob: the estimate golf's term is solved for, in-sample)"
row R0427L 15865260 "$R0427L_PLAN" "golf plan vs the record's lrzip blob itself (different coders)"
