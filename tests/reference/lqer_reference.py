#!/usr/bin/env python3
"""Reference LQER and QuantGate in numpy float64, written independently of quant/lqer.cpp.

LQER (quant-and-pack.md §1.8): E (rows x cols) ~ U_r S_r V_r^T by a full SVD (numpy/LAPACK);
A = U_r diag(S_r), B = V_r^T, with each row of B flipped so that its largest-|.| entry is positive
(our sign convention; the records keep LAPACK's). Then
  asymmetric (asym and r*cols % group == 0):
    sA = fp16(max|A| / 1.5), qA = clamp(round_half_even(A / sA), -2, 1)        (one scale)
    B flattened row-major into groups of `group`: sB = fp16(max|g| / 7.5), qB = clamp(round(B / sB), -8, 7)
  symmetric: per-row sX = fp16(max|row| / qmax), qX = clamp(round(X / sX), -qmax, qmax), qmax = 2^(bits-1)-1
fp16 scales are clamped to [2^-14, 65504]; codes use the fp16-rounded scale.
QuantGate (§1.9): per-row s = fp16(max|row| / 127), q = clamp(round(W / s), -127, 127).

usage: lqer_reference.py DIR --rows R --cols C (--rank r [--bits 4] [--group 64] [--no-asym] | --gate)
Reads DIR/e.f32 (rows x cols float32 little-endian, row-major). Writes DIR/qa.i8, DIR/sa.u16,
DIR/qb.i8, DIR/sb.u16 (or DIR/q.i8, DIR/s.u16 for --gate), DIR/ab.f64 (the unquantized A @ B) and
DIR/report.txt ("key value" lines: asym, err_svd (|E - AB|_F), err_quant (|E - qA sA qB sB|_F)).
"""
import argparse
import os

import numpy as np


def fp16_scale(x: np.ndarray) -> np.ndarray:
    s = x.astype(np.float32).astype(np.float16).astype(np.float64)
    s = np.where(np.isnan(s) | (s > 65504.0), 65504.0, s)
    return np.where(s < 2.0 ** -14, 2.0 ** -14, s)


def grouped(x: np.ndarray, group: int, divisor: float, qmin: int, qmax: int):
    g = x.reshape(-1, group)
    s = fp16_scale(np.abs(g).max(axis=1) / divisor)
    q = np.clip(np.round(g / s[:, None]), qmin, qmax)  # np.round: half to even
    return q.astype(np.int8).reshape(x.shape), s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--cols", type=int, required=True)
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group", type=int, default=64)
    ap.add_argument("--no-asym", action="store_true")
    ap.add_argument("--gate", action="store_true")
    a = ap.parse_args()
    e = np.fromfile(os.path.join(a.dir, "e.f32"), dtype="<f4").astype(np.float64).reshape(a.rows, a.cols)

    def write(name: str, arr: np.ndarray) -> None:
        arr.tofile(os.path.join(a.dir, name))

    if a.gate:
        q, s = grouped(e, a.cols, 127.0, -127, 127)
        write("q.i8", q)
        write("s.u16", s.astype(np.float16).view(np.uint16))
        return

    u, sv, vt = np.linalg.svd(e, full_matrices=False)
    r = a.rank
    A, B = u[:, :r] * sv[:r], vt[:r].copy()
    for k in range(r):
        if B[k, np.argmax(np.abs(B[k]))] < 0:
            A[:, k], B[k] = -A[:, k], -B[k]
    asym = not a.no_asym and (r * a.cols) % a.group == 0
    if asym:
        qa, sa = grouped(A.reshape(1, -1), A.size, 1.5, -2, 1)
        qb, sb = grouped(B, a.group, 7.5, -8, 7)
        deq_a = qa.reshape(A.shape) * sa[0]
        deq_b = (qb.reshape(-1, a.group) * sb[:, None]).reshape(B.shape)
    else:
        qmax = 2 ** (a.bits - 1) - 1
        qa, sa = grouped(A, r, qmax, -qmax, qmax)
        qb, sb = grouped(B, a.cols, qmax, -qmax, qmax)
        deq_a, deq_b = qa * sa[:, None], qb * sb[:, None]
    write("qa.i8", qa.reshape(A.shape))
    write("sa.u16", sa.astype(np.float16).view(np.uint16))
    write("qb.i8", qb.reshape(B.shape))
    write("sb.u16", sb.astype(np.float16).view(np.uint16))
    write("ab.f64", (A @ B).astype("<f8"))
    with open(os.path.join(a.dir, "report.txt"), "w") as f:
        f.write(f"asym {int(asym)}\n")
        f.write(f"err_svd {np.linalg.norm(e - A @ B)}\n")
        f.write(f"err_quant {np.linalg.norm(e - deq_a @ deq_b)}\n")


if __name__ == "__main__":
    main()
