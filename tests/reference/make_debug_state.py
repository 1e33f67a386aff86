#!/usr/bin/env python3
"""Writes the twin's "debug state" (llm.c style) for tests/train/twin_test.cpp to recompute in C++.

For each variant config it saves, as one safetensors file:
  weights/<name>        starting weights (the init, perturbed so every gate and path is live)
  tokens, targets       (B, T) int64 with BOS in mid-row and a row that starts mid-document
  logits_noloop/_loop   (B, T, V) softcapped logits, recurrence off / on
  loss                  mean CE with recurrence on;  grad/<name>  its gradients
  step1/<name>          weights after clipping + one optimizer step (Muon + AdamW) from there
  train_tokens          (S, B, T+1) batches; train_losses (S,) losses of S training steps
                        (step schedule over S steps, recurrence switched on at ENABLE_LOOPING_AT)
and the config (ENV-style keys) in the metadata entry "config".

usage: make_debug_state.py OUT_DIR [VARIANT ...]   (default: every variant)
"""
import json
import math
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golf_model import GolfModel, ModelConfig, OptimConfig, Optimizer, lr_multiplier  # noqa: E402

VARIANTS = {
    # The default stack at a small size: two-lane parallel residuals, doc-masked segments, normed smear.
    "default": dict(model=dict(), optim=dict()),
    # PR #1880's switches: GPT-J single lane, dense rows, raw smear (R29), no skip gates, Polar Express.
    "variant": dict(model=dict(parallel_mode="gptj", doc_mask=0, smear_input="raw", skip_gates_enabled=0,
                               attn_out_gate_enabled=1, xsa_last_n=2),
                    optim=dict(muon_polar_express=1, min_lr=0.1)),
    # The 04-27/04-29 frontier stack (issue 14): sparse attention gate (scale 1.5, non-zero init)
    # instead of AttnOutGate, raw BOS-masked smear (R29), Polar Express, MIN_LR 0.1.
    "frontier": dict(model=dict(attn_out_gate_enabled=0, sparse_attn_gate_enabled=1, sparse_attn_gate_init_std=0.02,
                                sparse_attn_gate_scale=1.5, smear_input="raw", qk_gain_init=5.0, logit_softcap=30.0),
                     optim=dict(muon_polar_express=1, min_lr=0.1, warmdown_frac=0.75)),
    # Seed variants stacked (model/variants.h): SMAT full (S bias + value gate, causal-count centrality,
    # d_s = 8 != head dim), value residual, gated attention (instead of the 2-sigmoid out gate), BigramHash,
    # the per-head output gate.
    "seed_variants": dict(model=dict(smat_use_s=1, smat_use_g=1, smat_dim=8, smat_centrality="count",
                                     value_residual=1, gated_attention=1, attn_out_gate_enabled=0,
                                     bigram_hash=1, bigram_buckets=64, bigram_dim=16, head_gate_enabled=1),
                          optim=dict()),
    # SMAT gate only (W_s kept for the centrality, seq divisor), GPT-J lanes, dense rows, BigramHash at d_b = d.
    "smat_g_only": dict(model=dict(smat_use_g=1, parallel_mode="gptj", doc_mask=0, value_residual=1,
                                   bigram_hash=1, bigram_buckets=128, bigram_dim=64),
                        optim=dict()),
    # MoA (model/moa.h): all four branches, diagonal-Mahalanobis metric heads with ball pruning, the
    # triangle penalty in the loss, conv kernel 3; with value residual and BigramHash beside it.
    "moa": dict(model=dict(moa_enabled=1, moa_metric="diag_mahalanobis", moa_ball=1, moa_router_hidden=16,
                           moa_conv_kernel=3, moa_alpha_init=0.2, moa_ti_weight=0.01, moa_ti_triples=32,
                           moa_ball_kappa=2.0, moa_ball_tau=1.0,
                           value_residual=1, bigram_hash=1, bigram_buckets=64, bigram_dim=16),
                optim=dict()),
}
SMALL = dict(vocab_size=512, num_layers=6, model_dim=64, num_heads=4, num_kv_heads=2, rope_dims=8,
             xsa_last_n=6, parallel_start_layer=4, loop_start=2, loop_end=3, num_loops=2, train_seq_len=32)
B, T, STEPS, LOOP_AT = 2, 96, 20, 0.35


def env_keys(obj) -> dict:
    return {k.upper(): v for k, v in vars(obj).items()}


def make_tokens(gen: torch.Generator, rows: int, cols: int, vocab: int) -> torch.Tensor:
    tokens = torch.randint(4, vocab, (rows, cols), generator=gen)
    tokens[0, [0, 20, 70]] = 1  # documents at 0, 20, 70 (the one at 20 is longer than a segment)
    if rows > 1:
        tokens[1, [5, 60]] = 1  # row 1 starts mid-document
    return tokens


def learnable_batch(gen: torch.Generator, phrase: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Rows cut at random offsets from a repeated phrase (with BOS at the phrase start): something a
    small model learns within a few steps, so the trajectory is smooth rather than chaotic."""
    stream = phrase.repeat(cols // len(phrase) + 2)
    starts = torch.randint(0, len(phrase), (rows,), generator=gen)
    return torch.stack([stream[s : s + cols] for s in starts.tolist()])


def perturb(model: GolfModel, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in model.state().items():
            if p.dim() == 3:  # banks (n, rows, cols): add noise at the init's scale
                p.add_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]) * 0.5)
            elif ".moa." in name and p.dim() == 2:  # MoA's matrices: noise at their init's scale
                p.add_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]) * 0.5)
            elif name == "tok_emb.weight":
                p.add_(torch.randn(p.shape, generator=gen) * 0.02)
            else:  # scalars and gates: well away from their identity init
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)


def main() -> None:
    out_dir, names = sys.argv[1], sys.argv[2:] or list(VARIANTS)
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    for variant in names:
        spec = VARIANTS[variant]
        cfg = ModelConfig(**{**SMALL, **spec["model"]})
        ocfg = OptimConfig(**spec["optim"])
        gen = torch.Generator().manual_seed(1234)
        model = GolfModel(cfg)
        perturb(model, gen)
        params = model.state()
        out = {f"weights/{n}": p.detach().clone() for n, p in params.items()}

        data = make_tokens(gen, B, T + 1, cfg.vocab_size)
        tokens, targets = data[:, :-1].contiguous(), data[:, 1:].contiguous()
        out["tokens"], out["targets"] = tokens, targets
        with torch.no_grad():
            out["logits_noloop"] = model.logits(tokens, looping=False)
            out["logits_loop"] = model.logits(tokens, looping=True)
        loss = model.loss(tokens, targets, looping=True)
        loss.backward()
        out["loss"] = loss.detach().reshape(1)
        for n, p in params.items():
            out[f"grad/{n}"] = p.grad.detach().clone()
        opt = Optimizer(params, ocfg)
        opt.clip()
        opt.step(step=0, lr_mul=1.0)
        for n, p in params.items():
            out[f"step1/{n}"] = p.detach().clone()

        # S training steps from the starting weights, fresh optimizer state.
        model = GolfModel(cfg)
        with torch.no_grad():
            for n, p in model.state().items():
                p.copy_(out[f"weights/{n}"])
        params = model.state()
        opt = Optimizer(params, ocfg)
        phrase = torch.randint(4, cfg.vocab_size, (41,), generator=gen)
        phrase[0] = 1
        batches = torch.stack([learnable_batch(gen, phrase, B, T + 1) for _ in range(STEPS)])
        losses = []
        for step in range(STEPS):
            frac = step / STEPS
            for p in params.values():
                p.grad = None
            x, y = batches[step, :, :-1], batches[step, :, 1:]
            loss = model.loss(x, y, looping=frac >= LOOP_AT)
            loss.backward()
            opt.clip()
            opt.step(step, lr_multiplier(frac, ocfg))
            losses.append(loss.item())
        out["train_tokens"] = batches
        out["train_losses"] = torch.tensor(losses, dtype=torch.float64)

        config = {**env_keys(cfg), **env_keys(ocfg), "ITERATIONS": STEPS, "ENABLE_LOOPING_AT": LOOP_AT}
        save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(out_dir, f"{variant}.safetensors"),
                  metadata={"config": json.dumps(config)})
        print(f"{variant}: loss {out['loss'].item():.6f}, train losses {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    main()
