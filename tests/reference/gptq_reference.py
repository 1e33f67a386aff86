#!/usr/bin/env python3
"""Reference full-Hessian GPTQ in torch float64, written independently of quant/gptq.cpp.

It follows the records' formulation step by step (quant-and-pack.md §1.4, §1.5, §5.3) where the C++
takes shortcuts, so agreement checks the shortcuts too:
  - H symmetrized; dead inputs (H_jj == 0) get H_jj = 1 and their weight columns are zeroed;
  - SDClip scales fp16(k * std_unbiased(W_i) * (1 + lam * (r_i - 1)) / qmax) on the original rows,
    rounded float64 -> float32 -> float16, clamped to [2^-14, 65504]; r_i is R0406's row importance;
  - lambda = damp * mean(diag H); act-order = stable argsort of diag(H) descending;
  - U via the records' three steps: L = chol(H_p + lambda I), Hinv = cholesky_inverse(L),
    U = chol(Hinv, upper) (the C++ uses one Cholesky of the reversed matrix and a triangular inverse);
  - on a failed factorization damp *= 10 up to 3 times, then round-to-nearest with the same scales;
  - blocks of B columns: per column q = clamp(round_half_even(w / s)), e = (w - q s) / U_cc, rank-1
    updates inside the block, one matmul for the columns after it.

usage: gptq_reference.py DIR --rows R --cols C [--bits 6] [--clip-sigmas 12] [--hessian-clip-lambda 0]
                         [--no-act-order] [--block-size 128] [--damp 0.01]
Reads DIR/w.f32 (rows x cols) and DIR/h.f32 (cols x cols), little-endian float32, row-major.
Writes DIR/q_ref.i8 (int8 codes, row-major, original column order), DIR/scale_ref.u16 (fp16 bits) and
DIR/report_ref.txt ("key value" lines: error, error_rtn, dead_columns, damp_used, damp_retries,
fell_back_to_rtn, clip_rate).
"""
import argparse
import os

import numpy as np
import torch


def sdclip_scales(w, bits, k, lam, diag_damped):
    qmax = 2 ** (bits - 1) - 1
    std = w.std(dim=1) if w.shape[1] > 1 else torch.zeros(w.shape[0], dtype=torch.float64)
    if lam != 0:
        d = diag_damped / diag_damped.mean()
        r = (w.abs() * d).mean(dim=1)
        r = r / r.mean() if r.mean() > 0 else torch.ones_like(r)
    else:
        r = torch.ones_like(std)
    clip = k * std * (1 + lam * (r - 1))
    s16 = (clip / qmax).to(torch.float32).to(torch.float16)
    s = s16.to(torch.float64)
    s = torch.where(torch.isnan(s) | (s > 65504.0), torch.full_like(s, 65504.0), s)
    s = torch.where(s < 2.0 ** -14, torch.full_like(s, 2.0 ** -14), s)
    return s


def gptq(w, h, bits, k, lam, act_order, block, damp):
    rows, cols = w.shape
    qmax = 2 ** (bits - 1) - 1
    h = (h + h.T) / 2
    dead = torch.diag(h) == 0
    h_fixed = h.clone()
    dead_idx = torch.nonzero(dead).flatten()
    h_fixed[dead_idx, dead_idx] = 1.0
    diag_fixed = torch.diag(h_fixed).clone()
    mean_diag = diag_fixed.mean()
    s = sdclip_scales(w, bits, k, lam, diag_fixed + damp * mean_diag)
    s_col = s.unsqueeze(1)

    w_zeroed = w.clone()
    w_zeroed[:, dead] = 0
    rtn = torch.clamp(torch.round(w_zeroed / s_col), -qmax, qmax)

    if act_order:
        perm = torch.argsort(diag_fixed, descending=True, stable=True)
    else:
        perm = torch.arange(cols)
    invperm = torch.argsort(perm)
    h_p = h_fixed[perm][:, perm]

    u, damp_used, retries = None, 0.0, 0
    for attempt in range(4):
        if attempt > 0:
            damp = damp * 10 if damp > 0 else 1e-3
            retries = attempt
        lower, info = torch.linalg.cholesky_ex(h_p + damp * mean_diag * torch.eye(cols, dtype=torch.float64))
        if info.item() != 0:
            continue
        hinv = torch.cholesky_inverse(lower)
        upper, info = torch.linalg.cholesky_ex(hinv, upper=True)
        if info.item() != 0 or not torch.isfinite(upper).all():
            continue
        u, damp_used = upper, damp
        break

    if u is None:
        q = rtn
        damp_used = 0.0
    else:
        work = w_zeroed[:, perm].clone()
        q_perm = torch.zeros_like(work)
        for i1 in range(0, cols, block):
            i2 = min(i1 + block, cols)
            wb = work[:, i1:i2].clone()
            err = torch.zeros(rows, i2 - i1, dtype=torch.float64)
            for j in range(i2 - i1):
                c = i1 + j
                col = wb[:, j]
                qc = torch.clamp(torch.round(col / s), -qmax, qmax)
                q_perm[:, c] = qc
                e = (col - qc * s) / u[c, c]
                err[:, j] = e
                wb[:, j + 1:] -= e.unsqueeze(1) * u[c, c + 1:i2].unsqueeze(0)
            work[:, i2:] -= err @ u[i1:i2, i2:]
        q = q_perm[:, invperm]

    def weighted_error(codes):
        e = w - codes * s_col
        return (((e @ h) * e).sum() / rows).item()

    report = {
        "error": weighted_error(q),
        "error_rtn": weighted_error(rtn),
        "dead_columns": int(dead.sum().item()),
        "damp_used": damp_used,
        "damp_retries": retries,
        "fell_back_to_rtn": int(u is None),
        "clip_rate": ((q.abs() == qmax).sum() / q.numel()).item(),
    }
    scale_bits = s.to(torch.float16).view(torch.int16).numpy().view(np.uint16)
    return q.to(torch.int8).numpy(), scale_bits, report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--cols", type=int, required=True)
    ap.add_argument("--bits", type=int, default=6)
    ap.add_argument("--clip-sigmas", type=float, default=12.0)
    ap.add_argument("--hessian-clip-lambda", type=float, default=0.0)
    ap.add_argument("--no-act-order", action="store_true")
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--damp", type=float, default=0.01)
    args = ap.parse_args()
    torch.set_num_threads(1)
    w = np.fromfile(os.path.join(args.dir, "w.f32"), dtype="<f4").reshape(args.rows, args.cols)
    h = np.fromfile(os.path.join(args.dir, "h.f32"), dtype="<f4").reshape(args.cols, args.cols)
    q, scales, report = gptq(torch.from_numpy(w.astype(np.float64)), torch.from_numpy(h.astype(np.float64)),
                             args.bits, args.clip_sigmas, args.hessian_clip_lambda, not args.no_act_order,
                             args.block_size, args.damp)
    q.tofile(os.path.join(args.dir, "q_ref.i8"))
    scales.astype("<u2").tofile(os.path.join(args.dir, "scale_ref.u16"))
    with open(os.path.join(args.dir, "report_ref.txt"), "w") as f:
        for key, value in report.items():
            f.write(f"{key} {value!r}\n")


if __name__ == "__main__":
    main()
