#!/usr/bin/env bash
# scripts/setup.sh — everything golf needs, idempotent and quick when nothing changed:
#   1. Debian packages (compilers, CMake, Brotli, liblzma, sentencepiece, Eigen, GoogleTest, CLI11,
#      nlohmann-json, fmt, OpenSSL (sha256), ccache, zpaq (the counted code's compressor), and
#      bible-kjv for the demo's fallback text)
#   2. a Python venv with the pinned torch wheel (LibTorch) under ~/.cache/golf
#   3. CMake configure + build into build/ (ccache keeps rebuilds cheap)
# Environment: GOLF_CACHE (default ~/.cache/golf), GOLF_BUILD_DIR (default <repo>/build),
#              GOLF_BOOTSTRAP_PYTHON (interpreter that creates the venv, default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GOLF_CACHE="${GOLF_CACHE:-$HOME/.cache/golf}"
BUILD_DIR="${GOLF_BUILD_DIR:-$ROOT/build}"
VENV="$GOLF_CACHE/venv-torch-2.11.0"
REQUIREMENTS="$ROOT/scripts/requirements.txt"
say() { printf '[setup] %s\n' "$*" >&2; }
t0=$SECONDS

mkdir -p "$GOLF_CACHE"
# One setup at a time per cache (the demo and the tests may start together).
exec 9>"$GOLF_CACHE/setup.lock"
flock 9

# ---- 1. Debian packages ---------------------------------------------------------------------
APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git xz-utils python3 python3-venv
  libbrotli-dev liblzma-dev libsentencepiece-dev libeigen3-dev libgtest-dev libssl-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev
  zpaq  # the counted code's compressor (artifact/code_size.h, zpaq-m5); without it the count falls back to Brotli
  bible-kjv
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null; then
  say "error: the CUDA 13 toolkit (nvcc) is needed to compile golf's kernels; install it to /usr/local/cuda"
  exit 1
fi

# ---- 2. the pinned torch venv ---------------------------------------------------------------
stamp="$VENV/.golf-requirements"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$REQUIREMENTS" "$stamp"; then
  say "creating $VENV (first time: downloads torch==2.11.0 with its CUDA 13 libraries, ~3 GB)"
  rm -rf "$VENV"
  "${GOLF_BOOTSTRAP_PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$stamp"
fi
PYTHON="$VENV/bin/python"

# ---- 3. configure and build -----------------------------------------------------------------
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] || ! grep -q "^GOLF_PYTHON:.*=$PYTHON\$" "$BUILD_DIR/CMakeCache.txt"; then
  say "configuring $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DGOLF_PYTHON="$PYTHON" >"$GOLF_CACHE/configure.log" 2>&1 ||
    { cat "$GOLF_CACHE/configure.log" >&2; exit 1; }
fi
say "building"
cmake --build "$BUILD_DIR" -j "$(nproc)" >&2
say "ready in $((SECONDS - t0)) s: binaries in $BUILD_DIR, python $PYTHON"
