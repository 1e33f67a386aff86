#!/usr/bin/env bash
# scripts/fuzz_pack.sh [SECONDS] — fuzz the artifact reader and its decoders (Brotli, the grouped
# stream of COMPRESSOR=pergroup/golf, golf's coder; artifact/fuzz_artifact.cpp) with libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer for SECONDS (default 300). Builds with clang
# straight from the few sources the reader needs (no CMake), seeds the corpus with valid
# artifacts, and prints executions and crashes; exits non-zero if anything was found.
# Build, corpus and crash inputs live in $GOLF_FUZZ_DIR (default build-fuzz/, kept between runs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_TO_RUN="${1:-300}"
DIR="${GOLF_FUZZ_DIR:-$ROOT/build-fuzz}"

if ! command -v clang++ >/dev/null; then
  # Debian 12's clang 14 ships libFuzzer (libclang_rt.fuzzer) with it.
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get install -y clang || { $SUDO apt-get update && $SUDO apt-get install -y clang; }
fi

mkdir -p "$DIR/corpus" "$DIR/crashes"
cd "$ROOT"
SOURCES=(artifact/fuzz_artifact.cpp artifact/artifact.cpp artifact/coders.cpp artifact/grouped.cpp artifact/golf_coder.cpp artifact/golf_words.cpp core/atomic_file.cpp core/progress.cpp)
LIBS=(-lbrotlienc -lbrotlidec -llzma -lfmt)
echo "building $DIR/fuzz_artifact"
clang++ -std=c++20 -g -O1 -I"$ROOT" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  "${SOURCES[@]}" "${LIBS[@]}" -o "$DIR/fuzz_artifact"
clang++ -std=c++20 -O1 -I"$ROOT" -DGOLF_FUZZ_WRITE_SEEDS "${SOURCES[@]}" "${LIBS[@]}" -o "$DIR/write_seeds"
rm -rf "$DIR/seeds"
"$DIR/write_seeds" "$DIR/seeds"

echo "fuzzing for ${SECONDS_TO_RUN} s"
set +e
"$DIR/fuzz_artifact" -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 -artifact_prefix="$DIR/crashes/" \
  "$DIR/corpus" "$DIR/seeds" >"$DIR/fuzz.log" 2>&1
STATUS=$?
set -e

EXECS=$(sed -n 's/^stat::number_of_executed_units: *//p' "$DIR/fuzz.log" | tail -1)
RATE=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$DIR/fuzz.log" | tail -1)
CRASHES=$(find "$DIR/crashes" -type f | wc -l)
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done ' "$DIR/fuzz.log" | tail -2 || true
echo "executions: ${EXECS:-?} (${RATE:-?}/s), corpus: $(find "$DIR/corpus" -type f | wc -l) inputs, crashes: $CRASHES (log: $DIR/fuzz.log)"
if [ "$STATUS" -ne 0 ] || [ "$CRASHES" -ne 0 ]; then
  tail -40 "$DIR/fuzz.log"
  echo "FAILED: libFuzzer exit status $STATUS; crash inputs in $DIR/crashes/" >&2
  exit 1
fi
