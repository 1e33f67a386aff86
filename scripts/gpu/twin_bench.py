#!/usr/bin/env python3
"""The PyTorch twin (tests/reference/golf_model.py) as a training-speed baseline for golf-train.

Times full training steps (forward, backward, gradient clipping, the twin's Muon + AdamW step) at
the configuration golf-train is timed at, eager or under torch.compile, and writes a JSON result.

  twin_bench.py --data SHARD --tokens 98304 --seq 2048 --steps 6 --warmup 2 --mode eager|compile
                [--device cuda] [--tiny] [--compile-backend inductor] --json OUT
  twin_bench.py --check      the attention substitution below equals the twin's own (CPU, fp32)

What differs from the twin as written, and why:
  * attention: the twin's naive (B, H, T, T) scores would need ~100 GB at 98,304 tokens, so its
    attention core is replaced by F.scaled_dot_product_attention with the same boolean mask
    (segment equality & causal) and enable_gqa (query head h reads KV head h // (H / Hkv), as the
    twin's repeat_interleave) — the same function, checked equal by --check;
  * layout: golf-train's packing loader gives one row of 98,304 tokens whose segments are cut at
    every BOS and every TRAIN_SEQ_LEN tokens into a document; the twin's mask is (T, T), so the same
    tokens are fed as 48 rows of 2048 (doc-masked: segments at every BOS) — same tokens per step,
    same attention pattern except that documents are also cut at row ends;
  * precision: on CUDA under torch.autocast(bfloat16) (fp32 masters, bf16 matmuls and attention, as
    golf's CUDA path and the records); fp32 on the CPU. The twin's optimizer runs Muon in fp32;
  * recurrence off (11 layer visits): compared with golf-train's NUM_LOOPS=0 row.
Needs only torch and numpy (the GPU machine's /opt/torch/.venv has both).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from golf_model import GolfModel, ModelConfig, OptimConfig, Optimizer, rms_norm, rope  # noqa: E402

TINY = dict(vocab_size=8192, num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2, rope_dims=8, xsa_last_n=2,
            parallel_start_layer=1, loop_start=0, loop_end=0, num_loops=1)


def sdpa_attn(self: GolfModel, i: int, u: torch.Tensor, seg: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """GolfModel.attn for the record stack (no SMAT, MoA or value residual) with SDPA as its core."""
    cfg, L = self.cfg, self.cfg.num_layers
    B, T, d = u.shape
    H, Hkv, Dh = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    q = (u @ self.p("qo_bank")[i].T).view(B, T, H, Dh)
    k = (u @ self.p("kv_bank")[i].T).view(B, T, Hkv, Dh)
    v = (u @ self.p("kv_bank")[L + i].T).view(B, T, Hkv, Dh)
    q, k = rms_norm(q), rms_norm(k)
    q, k = rope(q, pos, cfg), rope(k, pos, cfg)
    q = q * self.p(f"blocks.{i}.attn.q_gain")[:, None]
    allowed = (seg[:, :, None] == seg[:, None, :]) & torch.ones(T, T, dtype=torch.bool, device=u.device).tril()
    y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2).to(q.dtype), v.transpose(1, 2).to(q.dtype),
                                       attn_mask=allowed[:, None], enable_gqa=True)  # (B, H, T, Dh)
    return self.attn_out(i, u, y.transpose(1, 2), v)


def record_stack(cfg: ModelConfig) -> None:
    off = ("smat_use_s", "smat_use_g", "value_residual", "gated_attention", "bigram_hash", "moa_enabled")
    bad = [n for n in off if getattr(cfg, n)]
    if bad:
        raise SystemExit(f"twin_bench.py: the SDPA substitution covers the record stack only; {bad} are on")


def check() -> dict:
    """The substituted attention gives the twin's logits and gradients (fp32, CPU, a small config)."""
    torch.manual_seed(0)
    cfg = ModelConfig(**{**TINY, "vocab_size": 512, "train_seq_len": 16})
    model = GolfModel(cfg)
    with torch.no_grad():  # away from the identity init so every path carries signal
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    tokens = torch.randint(4, cfg.vocab_size, (2, 48))
    tokens[0, [0, 20]] = 1
    targets = torch.roll(tokens, -1, 1)
    results = {}
    for name, attn in (("naive", GolfModel.attn), ("sdpa", sdpa_attn)):
        model.attn = attn.__get__(model)
        model.zero_grad()
        loss = model.loss(tokens, targets, looping=True)
        loss.backward()
        results[name] = (model.logits(tokens, looping=True).detach(), {n: p.grad.clone() for n, p in model.state().items()})
    logit_err = (results["naive"][0] - results["sdpa"][0]).abs().max().item()
    grad_err = max(((results["naive"][1][n] - g).abs().max() / results["naive"][1][n].abs().max().clamp_min(1e-30)).item()
                   for n, g in results["sdpa"][1].items())
    ok = logit_err <= 1e-5 and grad_err <= 1e-4
    return {"passed": ok, "logit_max_abs_err": logit_err, "grad_max_rel_err": grad_err, "tol_logit": 1e-5, "tol_grad": 1e-4}


def batches(shard: str, rows: int, seq: int, count: int) -> list[torch.Tensor]:
    """`count` (rows, seq + 1) int64 batches read in order from a challenge-format shard."""
    header = np.fromfile(shard, dtype=np.int32, count=256)
    if header[0] != 20240520 or header[1] != 1:
        raise SystemExit(f"twin_bench.py: {shard} is not a challenge-format shard (magic {header[0]}, version {header[1]})")
    tokens = np.fromfile(shard, dtype=np.uint16, offset=256 * 4, count=int(header[2])).astype(np.int64)
    need = rows * (seq + 1)
    if len(tokens) < need:
        raise SystemExit(f"twin_bench.py: {shard} has {len(tokens)} tokens, fewer than one batch of {need}")
    out = []
    for b in range(count):
        start = (b * need) % (len(tokens) - need + 1)
        out.append(torch.from_numpy(tokens[start : start + need].reshape(rows, seq + 1)))
    return out


def bench(a: argparse.Namespace) -> dict:
    device = torch.device(a.device)
    overrides = dict(TINY) if a.tiny else {}
    cfg = ModelConfig(**{**overrides, "train_seq_len": a.seq})
    record_stack(cfg)
    if a.tokens % a.seq:
        raise SystemExit(f"twin_bench.py: --tokens {a.tokens} is not a multiple of --seq {a.seq}")
    rows = a.tokens // a.seq
    torch.manual_seed(0)
    torch.set_default_device(device)  # the twin creates some tensors without a device argument
    model = GolfModel(cfg)
    model.attn = sdpa_attn.__get__(model)
    params = model.state()
    opt = Optimizer(params, OptimConfig())
    data = [b.to(device) for b in batches(a.data, rows, a.seq, a.warmup + a.steps)]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast:
            return model.loss(x, y, looping=False)

    fn = loss_fn
    if a.mode == "compile":
        fn = torch.compile(loss_fn, backend=a.compile_backend)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    t_first = None
    for s, batch in enumerate(data):
        sync()
        t0 = time.perf_counter()
        for p in params.values():
            p.grad = None
        loss = fn(batch[:, :-1], batch[:, 1:])
        loss.backward()
        opt.clip()
        opt.step(s, 1.0)
        sync()
        dt = time.perf_counter() - t0
        if s == 0:
            t_first = dt  # includes compilation under --mode compile
        if s >= a.warmup:
            times.append(dt)
        losses.append(loss.item())
    ms = 1000 * sum(times) / len(times)
    out = {"mode": a.mode, "device": str(device), "tokens_per_step": a.tokens, "rows": rows, "seq": a.seq,
           "steps": len(times), "warmup": a.warmup, "ms_per_step": ms, "tokens_per_s": a.tokens / (ms / 1000),
           "first_step_s": t_first, "losses": losses, "finite": all(math.isfinite(x) for x in losses),
           "torch": torch.__version__, "compile_backend": a.compile_backend if a.mode == "compile" else None,
           "config": "tiny" if a.tiny else "record 11x512"}
    if device.type == "cuda":
        out["peak_allocated_mib"] = torch.cuda.max_memory_allocated() // 2**20
        out["peak_reserved_mib"] = torch.cuda.max_memory_reserved() // 2**20
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true")
    p.add_argument("--data")
    p.add_argument("--tokens", type=int, default=98304)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--mode", choices=["eager", "compile"], default="eager")
    p.add_argument("--compile-backend", default="inductor")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="a 2-layer 64-wide model (the kit's CPU mode)")
    p.add_argument("--json", required=True)
    a = p.parse_args()
    if not a.check and not a.data:
        p.error("--data SHARD is needed unless --check")
    if a.steps < 1 or a.warmup < 0:
        p.error("--steps must be ≥ 1 and --warmup ≥ 0")
    result = check() if a.check else bench(a)
    tmp = a.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, a.json)
    print(json.dumps({k: v for k, v in result.items() if k != "losses"}))
    if a.check and not result["passed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
