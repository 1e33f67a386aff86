#!/usr/bin/env bash
# scripts/bench/shards.sh — golf-data shards throughput on Gutenberg train (180 MB of text,
# 47 MB .xz) with the challenge's 8192 tokenizer, and where the time goes:
#   xz       decompression alone (the xz CLI, same liblzma)
#   threads1 the whole tool with one encoder thread (reader runs beside it)
#   threadsN the whole tool on all cores (the default)
# usage: scripts/bench/shards.sh [INPUT.jsonl.xz] [TOKENIZER.model]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${GOLF_BUILD_DIR:-$ROOT/build}"
INPUT="${1:-${GOLF_DATA_DIR:-$ROOT/../shared/data}/gutenberg/train.jsonl.xz}"
TOKENIZER="${2:-${GOLF_TOKENIZER_DIR:-$ROOT/../shared/tokenizers}/fineweb_8192_bpe.model}"
OUT="$(mktemp -d)"; trap 'rm -rf "$OUT"' EXIT
secs() { local t0=$EPOCHREALTIME; "$@" >/dev/null 2>&1; awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{print b-a}'; }

echo "input $INPUT ($(du -h "$INPUT" | cut -f1)), $(nproc) cores"
xz_s=$(secs xz -dc "$INPUT")
t1_s=$(secs "$BUILD_DIR/data/golf-data" shards --input "$INPUT" --tokenizer "$TOKENIZER" --out "$OUT/t1" --split train --threads 1)
tn_s=$(secs "$BUILD_DIR/data/golf-data" shards --input "$INPUT" --tokenizer "$TOKENIZER" --out "$OUT/tn" --split train)
text_mb=$(xz -dc "$INPUT" | wc -c | awk '{print $1/1e6}')
cmp -s "$OUT/t1/fineweb_train_000000.bin" "$OUT/tn/fineweb_train_000000.bin" && same=identical || same=DIFFERENT
printf '%-28s %8s %10s\n' stage seconds "MB/s text"
for row in "xz decompression only:$xz_s" "golf-data, 1 encoder thread:$t1_s" "golf-data, $(nproc) threads:$tn_s"; do
  printf '%-28s %8.1f %10.2f\n' "${row%%:*}" "${row##*:}" "$(awk -v m="$text_mb" -v s="${row##*:}" 'BEGIN{print m/s}')"
done
echo "outputs of the two runs: $same"
