#!/usr/bin/env bash
# scripts/gpu/bundle.sh — stage .gpubundle/: what the GPU kit (scripts/gpu/check.sh) needs on a GPU
# machine that has torch but none of our build or Debian libraries. Run after scripts/setup.sh.
#
#   scripts/gpu/bundle.sh [--tiny] [--out DIR] [--limit-mib N]
#
#   bin/     golf-train golf-pack golf-eval golf-data, stripped, RUNPATH $ORIGIN/../lib; and the
#            Debian zpaq program (the counted code's compressor, artifact/code_size.h; it links only
#            the C/C++ runtime), when installed here: check.sh puts bin/ on PATH
#   tests/   the test binaries with GPU cases (stripped, same RUNPATH); their paths come from the
#            environment at run time (GOLF_* variables, tests/test_util.h)
#   lib/     the non-torch, non-libc shared libraries they load (sentencepiece, brotli, lzma, fmt…),
#            found with ldd; torch's own libraries come from the GPU machine's torch
#   twin/    the PyTorch twin's debug state (tests/reference/make_debug_state.py), for TwinOnCuda
#   data/    tokenizer/ (the challenge's 8192 tokenizer) and datasets/ (challenge-format shards made
#            here with golf-data from the shared Gutenberg text: ≥ 40 record steps of 98,304 training
#            tokens, ≈ 1 M validation tokens; --tiny: a few hundred thousand, for the CPU test)
#   debs/    the Debian -dev packages for scripts/gpu/build-there.sh (fetched once with apt-get
#            download into GOLF_CACHE/debs)
#   manifest.json  commit, date, mode, token counts, sizes, the torch build the binaries link
#
# Prints the bundle's size; fails (and leaves no bundle) if it is over --limit-mib (default 58: a device call carries 64 MiB in all, the tree ~3.5 MiB of it).
# The bundle is written to a temporary folder and renamed when complete.
# Environment: GOLF_BUILD_DIR (default <repo>/build), GOLF_PYTHON (default the pinned venv),
#              GOLF_DATA_DIR / GOLF_TOKENIZER_DIR (default ../shared/{data,tokenizers}),
#              GOLF_CACHE (default ~/.cache/golf; patchelf is fetched there with apt-get download
#              when it is not installed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GOLF_CACHE="${GOLF_CACHE:-$HOME/.cache/golf}"
BUILD="${GOLF_BUILD_DIR:-$ROOT/build}"
PY="${GOLF_PYTHON:-$GOLF_CACHE/venv-torch-2.11.0/bin/python}"
DATA="${GOLF_DATA_DIR:-$ROOT/../shared/data}"
TOKDIR="${GOLF_TOKENIZER_DIR:-$ROOT/../shared/tokenizers}"
OUT="$ROOT/.gpubundle"
LIMIT_MIB=58  # a device call carries 64 MiB in all: the bundle plus the tree (~3.5 MiB)
TINY=0
while (($#)); do
  case "$1" in
    --tiny) TINY=1 ;;
    --out) OUT="$2"; shift ;;
    --limit-mib) LIMIT_MIB="$2"; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "bundle.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '[bundle] %s\n' "$*" >&2; }
die() { printf 'bundle.sh: error: %s\n' "$*" >&2; exit 1; }
t0=$SECONDS

BINARIES=(train/golf-train pack/golf-pack eval/golf-eval data/golf-data)
# The test binaries with GPU cases (check.sh runs these filters): SoftcapCe/TensorIo, GptqAten,
# TwinOnCuda, GroupOfOne, and scoring_tests' Protocols.*OnGpu (kit row sync.eval_ttt_step).
TEST_BINARIES=(tests/core_torch_tests tests/model_tests tests/quant_aten_tests tests/train_torch_tests tests/dist_step_tests
  tests/scoring_tests)
for b in "${BINARIES[@]}" "${TEST_BINARIES[@]}"; do
  [ -x "$BUILD/$b" ] || die "$BUILD/$b is not built (cmake --build $BUILD; or set GOLF_BUILD_DIR)"
done
[ -x "$PY" ] || die "no python at $PY (GOLF_PYTHON)"
TOKENIZER="$TOKDIR/fineweb_8192_bpe.model"
for f in "$TOKENIZER" "$DATA/gutenberg/train.jsonl.xz" "$DATA/gutenberg/val.jsonl.xz"; do
  [ -f "$f" ] || die "missing $f (GOLF_DATA_DIR / GOLF_TOKENIZER_DIR)"
done

# patchelf: installed, or unpacked from its Debian package into the cache.
PATCHELF="$(command -v patchelf || true)"
if [ -z "$PATCHELF" ]; then
  tools="$GOLF_CACHE/tools"
  if [ ! -x "$tools/usr/bin/patchelf" ]; then
    say "fetching patchelf (apt-get download) into $GOLF_CACHE/debs"
    mkdir -p "$GOLF_CACHE/debs" "$tools"
    (cd "$GOLF_CACHE/debs" && ls patchelf_*.deb >/dev/null 2>&1 || apt-get download patchelf >/dev/null) ||
      die "patchelf is not installed and apt-get download patchelf failed"
    dpkg -x "$(ls "$GOLF_CACHE"/debs/patchelf_*.deb | head -1)" "$tools"
  fi
  PATCHELF="$tools/usr/bin/patchelf"
fi

STAGE="$(dirname "$OUT")/.$(basename "$OUT").tmp.$$"
trap 'rm -rf "$STAGE"' EXIT
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,tests,lib,twin,debs,data/tokenizer,data/datasets}

# ---- binaries: stripped, libraries from $ORIGIN/../lib (then LD_LIBRARY_PATH for torch) ----------
stage_binary() {  # build-relative path, destination folder
  local dst="$STAGE/$2/$(basename "$1")"
  strip -o "$dst" "$BUILD/$1"
  "$PATCHELF" --set-rpath '$ORIGIN/../lib' "$dst"
}
for b in "${BINARIES[@]}"; do stage_binary "$b" bin; done
for b in "${TEST_BINARIES[@]}"; do stage_binary "$b" tests; done

# ---- shared libraries: everything ldd resolves outside torch's wheel and the C/C++ runtime --------
# (the GPU machine has its own libc, libstdc++ and torch; it has none of our Debian -dev libraries)
is_runtime() {
  case "$1" in
    linux-vdso.so.*|ld-linux*|libc.so.*|libm.so.*|libdl.so.*|librt.so.*|libpthread.so.*|libutil.so.*|libgcc_s.so.*|libstdc++.so.*) return 0 ;;
  esac
  return 1
}
declare -A copied=()
for b in "${BINARIES[@]}" "${TEST_BINARIES[@]}"; do
  while read -r name _ path _; do
    [ -n "${path:-}" ] && [ "$path" != "not" ] || die "$b: ldd cannot resolve $name here"
    is_runtime "$name" && continue
    case "$path" in *site-packages*|/usr/local/cuda*) continue ;; esac
    [ -n "${copied[$name]:-}" ] && continue
    cp -L "$path" "$STAGE/lib/$name"
    copied[$name]=1
  done < <(ldd "$BUILD/$b" | grep '=>')
done

# ---- zpaq: golf-pack and golf-eval count the code with it (else the count falls back to Brotli) ----
ZPAQ="$(command -v zpaq || true)"
if [ -n "$ZPAQ" ]; then
  while read -r name _; do
    is_runtime "$(basename "$name")" || die "$ZPAQ links $name, which the GPU machine may lack"
  done < <(ldd "$ZPAQ" | awk '{print $1}')
  cp -L "$ZPAQ" "$STAGE/bin/zpaq"
else
  say "WARNING: zpaq is not installed here (scripts/setup.sh installs it): the GPU machine counts the code without it"
fi

# ---- the twin's debug state: the TwinOnCuda tests read default and variant ---------------------
# The ctest fixture twin_debug_state leaves it in the build folder; it is made afresh when missing
# or older than the twin's sources (several minutes on 2 cores).
TWIN_VARIANTS=(default variant)
twin_src="$BUILD/tests/twin"
for v in "${TWIN_VARIANTS[@]}"; do
  f="$twin_src/$v.safetensors"
  if [ ! -f "$f" ] || [ "$f" -ot "$ROOT/tests/reference/golf_model.py" ] || [ "$f" -ot "$ROOT/tests/reference/make_debug_state.py" ]; then
    twin_src=""
  fi
done
if [ -n "$twin_src" ]; then
  for v in "${TWIN_VARIANTS[@]}"; do cp "$twin_src/$v.safetensors" "$STAGE/twin/"; done
else
  say "making the twin's debug state (${TWIN_VARIANTS[*]})"
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$PY" "$ROOT/tests/reference/make_debug_state.py" "$STAGE/twin" "${TWIN_VARIANTS[@]}" >/dev/null
fi
# TwinOnCuda compares logits, loss and gradients: the optimizer-step and training-run entries stay behind.
"$PY" - "$STAGE/twin" <<'PYEOF'
import glob, sys
from safetensors import safe_open
from safetensors.torch import save_file
for path in glob.glob(f"{sys.argv[1]}/*.safetensors"):
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        keep = {k: f.get_tensor(k) for k in f.keys() if not k.startswith(("step1/", "train_"))}
    save_file(keep, path, metadata=meta)
PYEOF

# ---- data: the tokenizer and challenge-format shards from the shared Gutenberg text -------------
# Documents are taken from the start of each split until their text (JSON-escaped length, a
# little over the UTF-8 bytes) reaches tokens × 3.8 bytes; Gutenberg gives ≈ 3.6 JSON bytes per
# token with this tokenizer (measured: 18.87 MB → 5.21 M tokens), and the real counts are checked.
if ((TINY)); then train_tokens=250000; val_tokens=65536; else train_tokens=4100000; val_tokens=1050000; fi
min_train=$((TINY ? 98305 : 40 * 98304 + 1))
cp "$TOKENIZER" "$STAGE/data/tokenizer/"
docs() {  # split, tokens wanted → jsonl on stdout
  xzcat "$DATA/gutenberg/$1.jsonl.xz" | LC_ALL=C awk -v max="$(($2 * 38 / 10))" '{ print; n += length($0) } n >= max { exit }' || true
}
for split in train val; do
  want=$([ $split = train ] && echo $train_tokens || echo $val_tokens)
  docs $split "$want" >"$STAGE/$split.jsonl"
  "$BUILD/data/golf-data" shards --input "$STAGE/$split.jsonl" --tokenizer "$TOKENIZER" \
    --out "$STAGE/data/datasets" --split $split --json >"$STAGE/$split.shards.json"
  rm "$STAGE/$split.jsonl"
done
read -r n_train n_val < <("$PY" - "$STAGE" <<'PYEOF'
import json, sys
d = sys.argv[1]
print(json.load(open(f"{d}/train.shards.json"))["tokens"], json.load(open(f"{d}/val.shards.json"))["tokens"])
PYEOF
)
rm "$STAGE"/*.shards.json
((n_train >= min_train)) || die "only $n_train training tokens were made (need $min_train)"

# ---- Debian packages for scripts/gpu/build-there.sh (the fallback that builds on the GPU machine) --
DEBS=(libbrotli-dev libbrotli1 libsentencepiece-dev libsentencepiece0 libfmt-dev libfmt9 libcli11-dev
  nlohmann-json3-dev libeigen3-dev libssl-dev libssl3 libgtest-dev libgmock-dev liblzma-dev liblzma5 pkgconf pkgconf-bin libpkgconf3)
mkdir -p "$GOLF_CACHE/debs" "$STAGE/debs"
missing_debs=()
for d in "${DEBS[@]}"; do ls "$GOLF_CACHE/debs/${d}_"*.deb >/dev/null 2>&1 || missing_debs+=("$d"); done
if ((${#missing_debs[@]})); then
  say "fetching ${missing_debs[*]} (apt-get download) into $GOLF_CACHE/debs"
  (cd "$GOLF_CACHE/debs" && apt-get download "${missing_debs[@]}" >/dev/null 2>&1) ||
    say "WARNING: apt-get download failed: the bundle has no .deb files, build-there.sh will not work"
fi
n_debs=0
for d in "${DEBS[@]}"; do
  f="$(ls "$GOLF_CACHE/debs/${d}_"*.deb 2>/dev/null | sort -V | tail -1)"
  [ -n "$f" ] && cp "$f" "$STAGE/debs/" && n_debs=$((n_debs + 1))
done

# ---- manifest and size ----------------------------------------------------------------------
bytes=$(du -sb "$STAGE" | cut -f1)
commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)
"$PY" - "$STAGE/manifest.json" <<PYEOF
import json, sys, platform, datetime, torch
json.dump({
    "commit": "$commit", "dirty": $([ $dirty = true ] && echo True || echo False),
    "made": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "mode": "$([ $TINY = 1 ] && echo tiny || echo full)", "host": platform.node(),
    "train_tokens": $n_train, "val_tokens": $n_val, "bytes": $bytes,
    "torch": torch.__version__, "torch_git": torch.version.git_version,
    "binaries": sorted("$(printf '%s ' "${BINARIES[@]##*/}")".split()),
    "tests": sorted("$(printf '%s ' "${TEST_BINARIES[@]##*/}")".split()),
    "libs": sorted("$(printf '%s ' "${!copied[@]}")".split()),
    "debs": sorted(__import__("os").listdir("$STAGE/debs")),
}, open(sys.argv[1], "w"), indent=2)
PYEOF
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
if ((bytes > LIMIT_MIB * 1048576)); then
  du -sh "$STAGE"/* >&2
  die "the bundle is $mib MiB, over the $LIMIT_MIB MiB limit; nothing written"
fi
rm -rf "$OUT"
mv "$STAGE" "$OUT"
trap - EXIT
say "$(du -sh "$OUT"/* | awk '{printf "%s %s  ", $2, $1}' | sed "s|$OUT/||g")"
say "train tokens $n_train, val tokens $n_val, ${#copied[@]} libraries; $((SECONDS - t0)) s"
echo "bundle: $OUT $mib MiB ($bytes bytes, limit $LIMIT_MIB MiB)"
