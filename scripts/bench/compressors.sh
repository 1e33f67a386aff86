#!/usr/bin/env bash
# scripts/bench/compressors.sh — the same record-sized payload through Brotli -q11 -w24 (what
# golf-pack uses), zstd --ultra -22 and xz -9e, each with and without the stride-2 byte shuffle.
# The payload is laid out like golf's: int8 codes of SDClip-quantized Gaussian weights (int6 at
# k 13/12 for the 11×(attention + MLP) matrices, int7 at k 15 for the 8192×512 embedding), then
# fp16 row scales, then fp16 passthrough values (≈ 31.7 M + 4.2 M weights, as in the record).
# The CLIs come from Debian (brotli, zstd, xz-utils); installed on first use.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${GOLF_CACHE:-$HOME/.cache/golf}/venv-torch-2.11.0/bin/python"
for tool in brotli zstd xz; do
  command -v "$tool" >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq "$tool" >/dev/null; }
done
DIR="$(mktemp -d)"; trap 'rm -rf "$DIR"' EXIT
"$PYTHON" - "$DIR" <<'PY'
import sys
import numpy as np
rng = np.random.default_rng(0)
def codes(rows, cols, bits, k):
    qmax = 2 ** (bits - 1) - 1
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    s = (k * w.std(axis=1, ddof=1) / qmax).astype(np.float16)
    q = np.clip(np.rint(w / s.astype(np.float32)[:, None]), -qmax, qmax).astype(np.int8)
    return q, s
shapes = [(512, 512, 13), (256, 512, 13), (256, 512, 13), (512, 512, 13), (2048, 512, 12), (512, 2048, 12)] * 11
qs, ss = zip(*[codes(r, c, 6, k) for r, c, k in shapes] + [codes(8192, 512, 7, 15.0)])
passthrough = (1 + 0.1 * rng.standard_normal(31930)).astype(np.float16)
payload = b"".join([b"".join(q.tobytes() for q in qs), b"".join(s.tobytes() for s in ss), passthrough.tobytes()])
raw = np.frombuffer(payload, np.uint8)
shuffled = np.concatenate([raw[0::2], raw[1::2]])
open(f"{sys.argv[1]}/plain.bin", "wb").write(payload)
open(f"{sys.argv[1]}/shuffled.bin", "wb").write(shuffled.tobytes())
print(f"payload {len(payload):,} bytes, {sum(q.size for q in qs):,} quantized weights")
PY
printf '%-26s %12s %12s %9s\n' compressor "no shuffle" "shuffle 2" seconds
for spec in "brotli -q 11 -w 24:brotli -c -q 11 -w 24" "zstd --ultra -22:zstd -q -c --ultra -22 --long=27" "xz -9e:xz -c -9e"; do
  name="${spec%%:*}"; cmd="${spec#*:}"
  t0=$EPOCHREALTIME
  plain=$($cmd "$DIR/plain.bin" | wc -c)
  shuffled=$($cmd "$DIR/shuffled.bin" | wc -c)
  printf '%-26s %12s %12s %9.1f\n' "$name" "$plain" "$shuffled" "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{print (b-a)/2}')"
done
