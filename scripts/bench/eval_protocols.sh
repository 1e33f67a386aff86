#!/usr/bin/env bash
# scripts/bench/eval_protocols.sh — one small CPU model (train/configs/demo_cpu.json, as scripts/demo.sh)
# scored by every golf-eval protocol on the shared Gutenberg val set: plain, sliding window, global
# score-first SGD TTT, LoRA TTT and phased TTT, with the time each took. Prints a markdown table.
#   scripts/bench/eval_protocols.sh [OUT_DIR]     (default out/bench_eval_protocols)
# Env: GOLF_BUILD_DIR (build/), GOLF_PYTHON, GOLF_DATA_DIR, GOLF_TOKENIZER_DIR, VAL_MAX_TOKENS (8192),
#      TRAIN_DOCS (documents of Gutenberg train to tokenize, 1500), ITERATIONS (the config's 120),
#      EVAL_ARGS (extra golf-eval arguments, e.g. --no-compliance).
# The LoRA settings are scaled to the model: its K/V projections are 128→64, so TTT_LORA_RANK is 16
# (α/r = 1.5 as the records' 144/96) and the LoRA context is the model's EVAL_SEQ_LEN (256).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${GOLF_BUILD_DIR:-$ROOT/build}"
PYTHON="${GOLF_PYTHON:-${GOLF_CACHE:-$HOME/.cache/golf}/venv-torch-2.11.0/bin/python}"
DATA="${GOLF_DATA_DIR:-$ROOT/../shared/data}"
TOKENIZER="${GOLF_TOKENIZER_DIR:-$ROOT/../shared/tokenizers}/fineweb_8192_bpe.model"
OUT="${1:-$ROOT/out/bench_eval_protocols}"
VAL_MAX_TOKENS="${VAL_MAX_TOKENS:-8192}"
mkdir -p "$OUT"
SHARDS="$OUT/datasets/fineweb10B_sp8192"
if [ ! -f "$SHARDS/fineweb_val_000000.bin" ]; then
  "$BUILD_DIR/data/golf-data" shards --input "$DATA/gutenberg/val.jsonl.xz" --tokenizer "$TOKENIZER" --out "$SHARDS" --split val --overwrite >/dev/null
  "$BUILD_DIR/data/golf-data" shards --input "$DATA/gutenberg/train.jsonl.xz" --tokenizer "$TOKENIZER" --out "$SHARDS" --split train \
    --max-docs "${TRAIN_DOCS:-1500}" --overwrite >/dev/null
fi
RUN="$OUT/runs/demo_cpu"
if [ ! -f "$RUN/final_model.golf" ]; then
  rm -rf "$RUN"
  DATA_PATH="$SHARDS" TOKENIZER_PATH="$TOKENIZER" OUTPUT_DIR="$OUT/runs" RUN_ID=demo_cpu SEED=42 \
    "$BUILD_DIR/train/golf-train" --config "$ROOT/train/configs/demo_cpu.json" >"$OUT/train.log"
  DATA_PATH="$SHARDS" TOKENIZER_PATH="$TOKENIZER" VAL_MAX_TOKENS="$VAL_MAX_TOKENS" "$BUILD_DIR/pack/golf-pack" "$RUN" >"$OUT/pack.log"
fi
evaluate() {  # NAME ARGS...
  local name=$1; shift
  env DATA_PATH="$SHARDS" TOKENIZER_PATH="$TOKENIZER" VAL_MAX_TOKENS="$VAL_MAX_TOKENS" EVAL_SEQ_LEN=256 EVAL_STRIDE=64 \
    EVAL_BATCH_SEQS=16 TTT_CHUNK_TOKENS=4096 TTT_EPOCHS=1 \
    "$BUILD_DIR/eval/golf-eval" "$RUN/final_model.golf" --out "$OUT/eval_$name.json" "$@" ${EVAL_ARGS:-} >"$OUT/eval_$name.log"
}
LORA=(--set TTT_LORA_RANK=16 --set TTT_LORA_ALPHA=24 --set TTT_EVAL_SEQ_LEN=256)
# Phased: one document per batch and phases after the queue's 1st and 2nd documents, so that the
# first 8,192 predictions (4 Gutenberg documents) hold documents scored after each phase.
PHASED=(--set TTT_BATCH_SIZE=1 --set PHASED_TTT_PREFIX_DOCS=2 --set GLOBAL_TTT_CHUNK_TOKENS=1024)
evaluate sgd --ttt --ttt-mode sgd
evaluate lora --ttt-mode lora --no-plain --no-sliding "${LORA[@]}" --set TTT_BATCH_SIZE=8
evaluate phased --ttt-mode phased --no-plain --no-sliding "${LORA[@]}" "${PHASED[@]}"
"$PYTHON" - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = []
sgd = json.load(open(os.path.join(out, "eval_sgd.json")))
for proto, label in (("plain", "plain"), ("sliding", "sliding window (stride 64)")):
    rows.append((label, sgd["results"][proto], None))
for mode, label in (("sgd", "global score-first SGD TTT"), ("lora", "LoRA TTT"), ("phased", "phased TTT")):
    ev = json.load(open(os.path.join(out, f"eval_{mode}.json")))
    rows.append((label, ev["results"]["ttt"], ev["compliance"]))
print(f"{'protocol':<28} {'val_bpb':>11} {'val_loss':>11} {'tokens':>7} {'time':>8}  compliance")
for label, r, checks in rows:
    c = "" if not checks else ("all PASS" if all(x["passed"] for x in checks) else "FAIL: " + ",".join(x["check"] for x in checks if not x["passed"]))
    print(f"{label:<28} {r['val_bpb']:>11.6f} {r['val_loss']:>11.6f} {r['tokens']:>7} {r['seconds']:>7.1f}s  {c}")
PY
