# tests/eval/shakespeare_corpus.sh — sourced by the eval fixtures (make_eval_run.sh,
# make_frontier_run.sh). `shakespeare_corpus DIR WHO` makes DIR afresh and, inside it, Tiny
# Shakespeare's 90/10 split (train.txt; val_docs.jsonl, one document per paragraph), a 512-piece
# tokenizer (tok.model) and the training shards (data/), with the real golf-data; the caller's shell
# is left in DIR. Without the text it says that WHO will skip and exits 0 (the fixture is empty).
# Needs GOLF_DATA_BIN, GOLF_PYTHON and TINY_SHAKESPEARE (or GOLF_DATA_DIR).
shakespeare_corpus() {
  local dir=$1 who=$2 shakespeare
  shakespeare=${GOLF_DATA_DIR:+$GOLF_DATA_DIR/tinyshakespeare.txt}
  shakespeare=${shakespeare:-$TINY_SHAKESPEARE}
  rm -rf "$dir" && mkdir -p "$dir"
  if [[ ! -f $shakespeare ]]; then echo "no $shakespeare: $who will skip"; exit 0; fi
  cd "$dir"
  "$GOLF_PYTHON" - "$shakespeare" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
cut = len(text) * 9 // 10
open("train.txt", "w", encoding="utf-8").write(text[:cut])
with open("val_docs.jsonl", "w", encoding="utf-8") as f:
    for para in text[cut:].split("\n\n"):
        if para:
            f.write(json.dumps({"text": para}) + "\n")
PY
  "$GOLF_DATA_BIN" tokenizer --input train.txt --vocab 512 --out tok.model >/dev/null 2>&1
  "$GOLF_DATA_BIN" shards --input train.txt --tokenizer tok.model --out data --split train >/dev/null
}
