#!/usr/bin/env bash
# scripts/gpu/build-there.sh — fallback for the GPU machine: build golf from source there (to fix
# code on the box, or if the carried binaries hit an ABI surprise), then replace the bundle's
# binaries with the fresh ones so scripts/gpu/check.sh runs them.
#
#   scripts/gpu/build-there.sh [--configure-only] [--jobs N]
#
# The GPU machine has CMake, ninja, nvcc 13.0 and torch 2.11 in /opt/torch/.venv, but none of our
# Debian -dev packages: the bundle carries them as .deb files (.gpubundle/debs, fetched on the
# build machine with apt-get download by bundle.sh) and they are unpacked with `dpkg -x` into a
# prefix; CMake and pkg-config look there first.
# Environment: GOLF_TORCH_VENV (default /opt/torch/.venv), GOLF_DEB_PREFIX (default /tmp/golf-debs),
#              GOLF_DEBS (default .gpubundle/debs), GOLF_BUILD_DIR (default build-gpu).
# Wall time on the GPU machine (16 cores), an estimate not yet measured: unpack ≈ 2 s, configure
# ≈ 15-30 s, the 4 tools + 4 GPU test binaries (≈ 50 of the 101 ninja steps) ≈ 60-90 s: ≈ 1.5-2 min.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TORCH_VENV="${GOLF_TORCH_VENV:-/opt/torch/.venv}"
PREFIX="${GOLF_DEB_PREFIX:-/tmp/golf-debs}"
DEBS="${GOLF_DEBS:-$ROOT/.gpubundle/debs}"
BUILD="${GOLF_BUILD_DIR:-$ROOT/build-gpu}"
BUNDLE="$ROOT/.gpubundle"
CONFIGURE_ONLY=0
JOBS="$(nproc)"
while (($#)); do
  case "$1" in
    --configure-only) CONFIGURE_ONLY=1 ;;
    --jobs) JOBS="$2"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "build-there.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '[build-there %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { printf 'build-there.sh: error: %s\n' "$*" >&2; exit 1; }
PY="$TORCH_VENV/bin/python3"
[ -x "$PY" ] || PY="$TORCH_VENV/bin/python"
[ -x "$PY" ] || die "no python in $TORCH_VENV (GOLF_TORCH_VENV)"
ls "$DEBS"/*.deb >/dev/null 2>&1 || die "no .deb files in $DEBS (bundle.sh carries them)"

# ---- 1. the Debian packages, unpacked into a prefix --------------------------------------------
say "unpacking $(ls "$DEBS"/*.deb | wc -l) packages into $PREFIX"
rm -rf "$PREFIX"
mkdir -p "$PREFIX"
for deb in "$DEBS"/*.deb; do dpkg -x "$deb" "$PREFIX"; done
ARCH_LIB="$PREFIX/usr/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$ARCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The .pc files say prefix=/usr: the sysroot makes pkg-config answer with paths inside the prefix.
export PKG_CONFIG_PATH="$ARCH_LIB/pkgconfig:$PREFIX/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$PREFIX"
export PKG_CONFIG_LIBDIR="$PKG_CONFIG_PATH"
PKG_CONFIG="$(command -v pkg-config || true)"
[ -n "$PKG_CONFIG" ] || PKG_CONFIG="$PREFIX/usr/bin/pkgconf"
[ -x "$PKG_CONFIG" ] || die "no pkg-config on this machine and none unpacked (pkgconf-bin.deb)"

# ---- 2. configure ---------------------------------------------------------------------------
mkdir -p "$BUILD"
say "configuring $BUILD (torch from $PY)"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGOLF_PYTHON="$PY" \
  -DCMAKE_PREFIX_PATH="$PREFIX/usr" -DPKG_CONFIG_EXECUTABLE="$PKG_CONFIG" \
  -DCMAKE_INCLUDE_PATH="$PREFIX/usr/include" -DCMAKE_LIBRARY_PATH="$ARCH_LIB" >"$BUILD/build-there.configure.log" 2>&1 ||
  { tail -40 "$BUILD/build-there.configure.log" >&2; die "configure failed (log: $BUILD/build-there.configure.log)"; }
# Every Debian dependency must come from the prefix (a machine with its own copies would hide a gap).
outside="$(grep -E '^(fmt_DIR|nlohmann_json_DIR|CLI11_DIR|Eigen3_DIR|GTest_DIR|SENTENCEPIECE_INCLUDE_DIR|SENTENCEPIECE_LIBRARY|SENTENCEPIECE_TRAIN_LIBRARY|LIBLZMA_LIBRARY_RELEASE|LIBLZMA_INCLUDE_DIR|BROTLI_libbrotlienc_INCLUDEDIR|pkgcfg_lib_BROTLI_brotlienc)[:=]' "$BUILD/CMakeCache.txt" | grep -v "$PREFIX" || true)"
[ -z "$outside" ] || say "note: found outside $PREFIX: $(tr '\n' ' ' <<<"$outside")"
((CONFIGURE_ONLY)) && { say "configured (--configure-only)"; exit 0; }

# ---- 3. build what the kit runs, and put it in the bundle ----------------------------------------
TARGETS=(golf-train golf-pack golf-eval golf-data core_torch_tests model_tests quant_aten_tests train_torch_tests dist_step_tests scoring_tests)
say "building ${TARGETS[*]} with $JOBS jobs"
cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" >"$BUILD/build-there.build.log" 2>&1 ||
  { tail -40 "$BUILD/build-there.build.log" >&2; die "build failed (log: $BUILD/build-there.build.log)"; }
mkdir -p "$BUNDLE/bin" "$BUNDLE/tests" "$BUNDLE/lib"
for t in train/golf-train pack/golf-pack eval/golf-eval data/golf-data; do cp "$BUILD/$t" "$BUNDLE/bin/"; done
for t in core_torch_tests model_tests quant_aten_tests train_torch_tests dist_step_tests scoring_tests; do cp "$BUILD/tests/$t" "$BUNDLE/tests/"; done
cp -L "$ARCH_LIB"/lib{sentencepiece,sentencepiece_train,fmt,brotlienc,brotlidec,brotlicommon,lzma}.so.[0-9] "$BUNDLE/lib/" 2>/dev/null || true
say "done: $BUNDLE/bin and $BUNDLE/tests rebuilt from this tree; run scripts/gpu/check.sh"
