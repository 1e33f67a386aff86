#!/usr/bin/env bash
# scripts/test.sh — set up if needed, build, and run every test (ctest). GPU-only tests skip
# cleanly on machines without one. Extra arguments go to ctest (e.g. -R Shards).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
BUILD_DIR="${GOLF_BUILD_DIR:-$ROOT/build}"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" "$@"
