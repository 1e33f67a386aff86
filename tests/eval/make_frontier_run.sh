#!/usr/bin/env bash
# tests/eval/make_frontier_run.sh DIR — the ctest fixture behind tests/eval/frontier_smoke_test.cpp,
# made once per test run with the real tools: Tiny Shakespeare (90/10 split) → a 512-piece
# tokenizer, training shards, validation shards of one document per paragraph → golf-train with
# train/configs/frontier_0427.json scaled down to 4 × 128 (8 steps) → golf-pack with LQER (the
# config's) and COMPRESSOR=pergroup, --val. The scaled settings are listed in the test's header.
# Needs GOLF_DATA_BIN, GOLF_TRAIN_BIN, GOLF_PACK_BIN, GOLF_PYTHON, GOLF_SOURCE_DIR and TINY_SHAKESPEARE.
set -euo pipefail
dir=$1
shakespeare=${GOLF_DATA_DIR:+$GOLF_DATA_DIR/tinyshakespeare.txt}
shakespeare=${shakespeare:-$TINY_SHAKESPEARE}
rm -rf "$dir" && mkdir -p "$dir"
if [[ ! -f $shakespeare ]]; then echo "no $shakespeare: the frontier smoke tests will skip"; exit 0; fi
cd "$dir"
"$GOLF_PYTHON" - "$shakespeare" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
cut = len(text) * 9 // 10
open("train.txt", "w", encoding="utf-8").write(text[:cut])
with open("val.jsonl", "w", encoding="utf-8") as f:
    for para in text[cut:].split("\n\n"):
        if para:
            f.write(json.dumps({"text": para}) + "\n")
PY
"$GOLF_DATA_BIN" tokenizer --input train.txt --vocab 512 --out tok.model >/dev/null 2>&1
"$GOLF_DATA_BIN" shards --input train.txt --tokenizer tok.model --out data --split train >/dev/null
"$GOLF_DATA_BIN" shards --input val.jsonl --tokenizer tok.model --out data --split val >/dev/null
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
echo "frontier fixture ready in $dir"
