#!/usr/bin/env bash
# scripts/bench/lrzip_pergroup.sh F.golf [OUT_DIR] — golf's coder against the records' real per-group
# scheme (R0427L: docs/reference/quant-and-pack.md §2.4) on the same quantized weights. golf-pack's
# COMPRESSOR=pergroup stands in xz/Brotli for lrzip (a Debian program, no library); this script runs the
# real `lrzip -z -L 9` (ZPAQ) on each code group laid out as the records lay it out (golf-coder-bench
# --records-layout: layers in order, matrices transposed, hot roles' rows in nearest-neighbour order)
# and Brotli-11 (window 24) on the row orders, and compares with golf's coder on each group
# (golf-coder-bench --only golf). The rest of the artifact (scales, fp16 values, table) is not part of
# the comparison: the records' remainder is a torch.save through Brotli, golf's its own streams.
# Needs the Debian programs lrzip and brotli. Prints a table; writes OUT_DIR/lrzip_pergroup.json.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH="${GOLF_BUILD_DIR:-$ROOT/build}/artifact/golf-coder-bench"
ARTIFACT="${1:?usage: lrzip_pergroup.sh F.golf [OUT_DIR]}"
OUT="${2:-$ROOT/out/lrzip-pergroup}"
for p in lrzip brotli; do command -v "$p" >/dev/null || { echo "lrzip_pergroup.sh: needs the Debian program $p" >&2; exit 1; }; done
mkdir -p "$OUT/layout"
"$BENCH" "$ARTIFACT" --records-layout "$OUT/layout" >/dev/null
"$BENCH" "$ARTIFACT" --only golf --json "$OUT/golf.json" >"$OUT/golf.txt"
for f in "$OUT"/layout/group_*.bin; do
  [ -f "$f.lrz" ] && [ "$f.lrz" -nt "$f" ] && continue
  nice -n 10 lrzip -q -f -z -L 9 -o "$f.lrz" "$f" >/dev/null
done
brotli -f -q 11 -w 24 -o "$OUT/layout/orders.bin.br" "$OUT/layout/orders.bin"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
golf = json.load(open(os.path.join(out, "golf.json")))["groups"]  # group name -> golf's bytes
names = ["tok_emb", "attn.c_k", "attn.c_q", "attn.c_v", "attn.proj", "mlp.fc", "mlp.proj", "other"]
rows, total_golf, total_lrzip = [], 0, 0
for idx, name in enumerate(names):
    path = os.path.join(out, "layout", f"group_{idx}.bin")
    if name not in golf or not os.path.exists(path):
        continue
    lrz = os.path.getsize(path + ".lrz")
    rows.append({"group": name, "codes": os.path.getsize(path), "golf": golf[name], "lrzip": lrz})
    total_golf += golf[name]; total_lrzip += lrz
orders = os.path.getsize(os.path.join(out, "layout", "orders.bin.br"))
print(f"{'group':<10} {'codes':>11} {'golf':>11} {'lrzip -L9':>11} {'golf/lrzip':>10}")
for r in rows:
    print(f"{r['group']:<10} {r['codes']:>11,} {r['golf']:>11,} {r['lrzip']:>11,} {r['golf'] / r['lrzip']:>10.4f}")
print(f"{'row orders':<10} {'':>11} {'-':>11} {orders:>11,}   (Brotli-11 of the hot roles' u16 orders)")
print(f"{'codes':<10} {'':>11} {total_golf:>11,} {total_lrzip + orders:>11,} {total_golf / (total_lrzip + orders):>10.4f}")
json.dump({"groups": rows, "orders_bytes": orders, "golf_code_bytes": total_golf,
           "records_code_bytes": total_lrzip + orders}, open(os.path.join(out, "lrzip_pergroup.json"), "w"), indent=1)
PY
