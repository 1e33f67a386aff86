"""The golf model and optimizers in plain PyTorch: the readable spec of core/model and train/.

The C++ model is proven equal to this file tensor by tensor (tests/reference/make_debug_state.py
writes what this model computes; tests/train/twin_test.cpp recomputes it in C++ and compares).
Everything is fp32 here; the C++ model runs the same math in fp32 on CPU.

Shapes: B rows, T positions, d = model_dim, H query heads, Hkv KV heads, Dh = d / H head dim,
F = mlp_mult * d, V vocab, L physical layers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class ModelConfig:
    # Field names are the environment-variable names, lower-cased.
    vocab_size: int = 8192
    num_layers: int = 11
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 4
    mlp_mult: float = 4.0
    tied_embed_init_std: float = 0.005
    rope_base: float = 10000.0
    rope_dims: int = 16
    qk_gain_init: float = 5.25
    ln_scale: int = 1
    xsa_last_n: int = 11
    attn_out_gate_enabled: int = 1
    gate_width: int = 12
    smear_gate_enabled: int = 1
    smear_input: str = "normed"  # "normed" (PR #1880) or "raw" (R29)
    bos_token_id: int = 1
    skip_gates_enabled: int = 1
    parallel_start_layer: int = 7
    parallel_mode: str = "two_lane"  # "two_lane" (records) or "gptj" (PR #1880), "none"
    num_loops: int = 2
    loop_start: int = 3
    loop_end: int = 5
    logit_softcap: float = 15.0
    train_seq_len: int = 2048  # longest attention segment
    doc_mask: int = 1  # 1: segments start at every BOS (and every train_seq_len tokens of a document)
    #                    0: dense rows of train_seq_len tokens, attention crosses BOS (PR #1880)
    sparse_attn_gate_enabled: int = 0  # R29: y_h *= sigmoid(scale * (W u[:gate_width])_h), W = 0 -> 0.5
    sparse_attn_gate_init_std: float = 0.0  # W ~ N(0, std^2) at init (0 -> zeros)
    sparse_attn_gate_scale: float = 1.0
    # Seed variants (model/variants.h), all off by default.
    smat_use_s: int = 0  # SMAT: logits += lambda * S, S_ij = cos(W_s h_i, W_s h_j), lambda = softplus(raw)
    smat_use_g: int = 0  # SMAT: v_j *= G_j = sigmoid(w_g . h_j + mu c_j + beta)
    smat_dim: int = 0  # d_s (0 -> head dim)
    smat_centrality: str = "seq"  # n_j of c_j: "seq" (train_seq_len) or "count" (j + 1 in its segment)
    smat_gonly_centrality: str = "keep"  # without use_S: "keep" (W_s feeds c_j) or "drop"
    smat_beta_init: float = 3.0
    smat_lambda_raw_init: float = 0.0
    value_residual: int = 0  # layers >= 1: v <- a v0 + b v, (a, b) init (0.5, 0.5)
    gated_attention: int = 0  # y_h *= sigmoid(W u + b)_h, W = 0, b = 4
    head_gate_enabled: int = 0  # y_h *= gamma_h, one learned scalar per layer and head, gamma = 1 at init
    bigram_hash: int = 0  # x += s * P * E[hash(prev, cur)]
    bigram_buckets: int = 4096
    bigram_dim: int = 128
    # MoA (model/moa.h): each block's attention becomes a router-mixed set of branches.
    moa_enabled: int = 0
    moa_branches: str = "conv,mha,mqa,chan"
    moa_metric: str = "l2"  # logits -alpha * D: "l2" |q-k|^2, "cosine" 1 - cos, "diag_mahalanobis" sum w (q-k)^2
    moa_router_hidden: int = 128
    moa_alpha_init: float = 1.0
    moa_bias_gate: int = 1
    moa_conv_kernel: int = 4
    moa_chan_mult: int = 2
    moa_ball: int = 0
    moa_radius_init: float = 3.0
    moa_ball_kappa: float = 10.0
    moa_ball_tau: float = 0.1
    moa_ti_weight: float = 0.0
    moa_ti_triples: int = 64

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads

    @property
    def mlp_dim(self) -> int:
        return int(self.mlp_mult * self.model_dim)

    @property
    def smat_ds(self) -> int:
        return self.smat_dim or self.head_dim

    @property
    def moa_branch_list(self) -> list[str]:
        return [b for b in ("conv", "mha", "mqa", "chan") if b in self.moa_branches.split(",")]

    @property
    def smat_has_ws(self) -> bool:
        return bool(self.smat_use_s or (self.smat_use_g and self.smat_gonly_centrality == "keep"))


RMS_EPS = torch.finfo(torch.float32).eps  # the records' RMSNorm(eps=None) in fp32


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free RMSNorm over the last dim, statistics in fp32."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + RMS_EPS)).to(x.dtype)


def visit_order(cfg: ModelConfig, looping: bool) -> tuple[list[int], list[int]]:
    """Physical layer per visit, split into encoder (first half) and decoder (the rest).
    With looping, layers loop_start..loop_end are visited num_loops + 1 times in a row."""
    layers = list(range(cfg.num_layers))
    if looping and cfg.num_loops > 0:
        seg = layers[cfg.loop_start : cfg.loop_end + 1]
        layers = layers[: cfg.loop_start] + seg * (cfg.num_loops + 1) + layers[cfg.loop_end + 1 :]
    half = len(layers) // 2
    return layers[:half], layers[half:]


def num_skip_rows(cfg: ModelConfig) -> int:
    enc, dec = visit_order(cfg, looping=cfg.num_loops > 0)
    return min(len(enc), len(dec))


def segments(tokens: torch.Tensor, cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) tokens -> (segment id, position inside the segment), both (B, T) int64.

    doc_mask=1: a segment starts at position 0, at every BOS, and every train_seq_len tokens
    after a document start (long documents are chopped). doc_mask=0: rows of train_seq_len."""
    B, T = tokens.shape
    pos = torch.arange(T, device=tokens.device).expand(B, T)
    L = cfg.train_seq_len
    if cfg.doc_mask:
        doc_start = (tokens == cfg.bos_token_id) | (pos == 0)
        start_pos = torch.where(doc_start, pos, torch.zeros_like(pos)).cummax(dim=1).values
        in_doc = pos - start_pos
    else:
        in_doc = pos
    seg_start = in_doc % L == 0
    return seg_start.long().cumsum(dim=1), in_doc % L


def bigram_hash_ids(tokens: torch.Tensor, buckets: int, bos: int) -> torch.Tensor:
    """(B, T) -> bucket ids: ((36313 cur) ^ (27191 prev)) % (buckets - 1); the reserved bucket
    buckets - 1 at t = 0 and wherever the current token is BOS (document isolation)."""
    ids = torch.full_like(tokens, buckets - 1)
    for b in range(tokens.shape[0]):
        for t in range(1, tokens.shape[1]):
            cur, prev = int(tokens[b, t]), int(tokens[b, t - 1])
            if cur != bos:
                ids[b, t] = ((36313 * cur) ^ (27191 * prev)) % (buckets - 1)
    return ids


def rope(x: torch.Tensor, positions: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """Partial RoPE on the first rope_dims dims of each head, half-split pairing.
    x (B, T, h, Dh), positions (B, T)."""
    r = cfg.rope_dims
    inv_freq = cfg.rope_base ** (-torch.arange(0, r // 2, dtype=torch.float32) * 2.0 / r)  # (r/2,)
    ang = positions.float()[..., None] * inv_freq  # (B, T, r/2)
    cos, sin = ang.cos()[:, :, None, :].to(x.dtype), ang.sin()[:, :, None, :].to(x.dtype)
    x1, x2, rest = x[..., : r // 2], x[..., r // 2 : r], x[..., r:]
    return torch.cat([x1 * cos + x2 * sin, -x1 * sin + x2 * cos, rest], dim=-1)


class GolfModel(torch.nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        L, d, H, Hkv, Dh, Fd = cfg.num_layers, cfg.model_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim
        P = torch.nn.Parameter
        self.params = torch.nn.ParameterDict()
        p = self.params  # names with '/' for '.', restored by state()
        p["tok_emb/weight"] = P(torch.randn(cfg.vocab_size, d) * cfg.tied_embed_init_std)
        p["qo_bank"] = P(torch.zeros(2 * L, d, d))  # [0, L): W_Q, [L, 2L): W_O
        p["kv_bank"] = P(torch.zeros(2 * L, Hkv * Dh, d))  # [0, L): W_K, [L, 2L): W_V
        p["mlp_up_bank"] = P(torch.zeros(L, Fd, d))
        p["mlp_down_bank"] = P(torch.zeros(L, d, Fd))
        for i in range(L):
            torch.nn.init.orthogonal_(p["qo_bank"].data[i])
            torch.nn.init.orthogonal_(p["kv_bank"].data[i])
            torch.nn.init.orthogonal_(p["kv_bank"].data[L + i])
            torch.nn.init.orthogonal_(p["mlp_up_bank"].data[i])
            if not cfg.moa_enabled:  # MoA's metric scale alpha replaces q_gain
                p[f"blocks/{i}/attn/q_gain"] = P(torch.full((H,), cfg.qk_gain_init))
            if cfg.moa_enabled:
                self.init_moa(i)
            p[f"blocks/{i}/attn_scale"] = P(torch.ones(d))
            p[f"blocks/{i}/mlp_scale"] = P(torch.ones(d))
            p[f"blocks/{i}/resid_mix"] = P(torch.stack([torch.ones(d), torch.zeros(d)]))
            if cfg.attn_out_gate_enabled:
                p[f"blocks/{i}/attn/attn_gate_proj/weight"] = P(torch.zeros(H, cfg.gate_width))
            if cfg.sparse_attn_gate_enabled:
                std = cfg.sparse_attn_gate_init_std
                p[f"blocks/{i}/attn/attn_gate_w"] = P(torch.randn(H, cfg.gate_width) * std if std > 0 else torch.zeros(H, cfg.gate_width))
            if cfg.smat_has_ws:
                p[f"blocks/{i}/attn/smat_ws/weight"] = P(torch.nn.init.orthogonal_(torch.empty(cfg.smat_ds, d)))
            if cfg.smat_use_s:
                p[f"blocks/{i}/attn/smat_lambda_raw"] = P(torch.full((1,), cfg.smat_lambda_raw_init))
            if cfg.smat_use_g:
                p[f"blocks/{i}/attn/smat_gate/weight"] = P(torch.zeros(1, d))
                p[f"blocks/{i}/attn/smat_gate/bias"] = P(torch.full((1,), cfg.smat_beta_init))
                if cfg.smat_has_ws:
                    p[f"blocks/{i}/attn/smat_mu"] = P(torch.zeros(1))
            if cfg.value_residual and i > 0:
                p[f"blocks/{i}/attn/vr_lambda"] = P(torch.full((2,), 0.5))
            if cfg.gated_attention:
                p[f"blocks/{i}/attn/attn_gate/weight"] = P(torch.zeros(H, d))
                p[f"blocks/{i}/attn/attn_gate/bias"] = P(torch.full((H,), 4.0))
            if cfg.head_gate_enabled:
                p[f"blocks/{i}/attn/head_gate"] = P(torch.ones(H))
        S = num_skip_rows(cfg)
        p["skip_weights"] = P(torch.ones(S, d))
        if cfg.skip_gates_enabled:
            p["skip_gates"] = P(torch.zeros(S, d))
        if cfg.parallel_mode == "two_lane":
            p["parallel_post_lambdas"] = P(torch.ones(L, 2, 2))
            p["parallel_resid_lambdas"] = P(torch.full((L, 2), 1.1))
        if cfg.smear_gate_enabled:
            p["smear_gate/weight"] = P(torch.zeros(1, cfg.gate_width))
            p["smear_lambda"] = P(torch.zeros(1))
        if cfg.bigram_hash:
            p["bigram/embed/weight"] = P(torch.zeros(cfg.bigram_buckets, cfg.bigram_dim))
            if cfg.bigram_dim != d:
                p["bigram/proj/weight"] = P(torch.nn.init.orthogonal_(torch.empty(d, cfg.bigram_dim)) / math.sqrt(2 * L))
            p["bigram/scale"] = P(torch.full((1,), 0.05))
        self.v_first: torch.Tensor | None = None  # value residual's v0 during a forward
        self.ti_terms: list[torch.Tensor] | None = None  # MoA triangle penalties during a loss() forward

    def init_moa(self, i: int) -> None:
        cfg, P, p = self.cfg, torch.nn.Parameter, self.params
        d, H, Dh, R, nb = cfg.model_dim, cfg.num_heads, cfg.head_dim, cfg.moa_router_hidden, len(cfg.moa_branch_list)
        isp = lambda y: math.log(math.expm1(y))  # inverse softplus
        ortho = lambda r, c: torch.nn.init.orthogonal_(torch.empty(r, c))
        p[f"blocks/{i}/moa/router_fc/weight"] = P(ortho(R, d))
        p[f"blocks/{i}/moa/router_fc/bias"] = P(torch.zeros(R))
        p[f"blocks/{i}/moa/router_out/weight"] = P(torch.zeros(nb, R))
        p[f"blocks/{i}/moa/router_out/bias"] = P(torch.zeros(nb))
        p[f"blocks/{i}/moa/film/weight"] = P(torch.zeros(nb * 2 * d, R))
        if cfg.moa_bias_gate:
            p[f"blocks/{i}/moa/bias_gate/weight"] = P(torch.zeros(nb, R))
            p[f"blocks/{i}/moa/bias_gate/bias"] = P(torch.full((nb,), 3.0))
        if "conv" in cfg.moa_branch_list:
            k = cfg.moa_conv_kernel
            p[f"blocks/{i}/moa/conv/weight"] = P((torch.rand(d, k) * 2 - 1) / math.sqrt(k))
            p[f"blocks/{i}/moa/conv_proj/weight"] = P(torch.zeros(d, d))
        if "chan" in cfg.moa_branch_list:
            p[f"blocks/{i}/moa/chan_fc/weight"] = P(ortho(cfg.moa_chan_mult * d, d))
            p[f"blocks/{i}/moa/chan_proj/weight"] = P(torch.zeros(d, cfg.moa_chan_mult * d))
        if "mqa" in cfg.moa_branch_list:
            p[f"blocks/{i}/moa/mqa_q/weight"] = P(ortho(d, d))
            p[f"blocks/{i}/moa/mqa_kv/weight"] = P(ortho(2 * Dh, d))
            p[f"blocks/{i}/moa/mqa_o/weight"] = P(torch.zeros(d, d))
        for b in ("mha", "mqa"):
            if b not in cfg.moa_branch_list:
                continue
            p[f"blocks/{i}/moa/{b}_alpha_raw"] = P(torch.full((H,), isp(cfg.moa_alpha_init)))
            if cfg.moa_metric == "diag_mahalanobis":
                p[f"blocks/{i}/moa/{b}_metric_w_raw"] = P(torch.full((H, Dh), isp(1.0)))
            if cfg.moa_ball:
                p[f"blocks/{i}/moa/{b}_ball_origin"] = P(torch.zeros(H, Dh))
                p[f"blocks/{i}/moa/{b}_ball_rho"] = P(torch.full((H,), isp(cfg.moa_radius_init)))

    def state(self) -> dict[str, torch.Tensor]:
        """Parameters under the records' names (dots)."""
        return {k.replace("/", "."): v for k, v in self.params.items()}

    def p(self, name: str) -> torch.Tensor:
        return self.params[name.replace(".", "/")]

    # ---- sub-layers -----------------------------------------------------------------------
    def attn(self, i: int, u: torch.Tensor, seg: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        cfg, L = self.cfg, self.cfg.num_layers
        B, T, d = u.shape
        H, Hkv, Dh = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        q = (u @ self.p("qo_bank")[i].T).view(B, T, H, Dh)
        k = (u @ self.p("kv_bank")[i].T).view(B, T, Hkv, Dh)
        v = (u @ self.p("kv_bank")[L + i].T).view(B, T, Hkv, Dh)
        if cfg.value_residual:  # v0 = the first visit's (layer 0's) raw value; layers >= 1 mix it in
            if self.v_first is None:
                self.v_first = v
            elif i > 0:
                a, b = self.p(f"blocks.{i}.attn.vr_lambda")
                v = a * self.v_first + b * v
        # Causal attention inside each segment; query head h reads KV head h // (H / Hkv).
        allowed = (seg[:, :, None] == seg[:, None, :]) & torch.ones(T, T, dtype=torch.bool).tril()  # (B, T, T)
        group = H // Hkv
        if cfg.moa_enabled:  # MoA's metric MHA branch: -alpha D(q, k) on RoPE'd raw q, k; no SMAT
            y = self.metric_attn(i, "mha", rope(q, pos, cfg), rope(k, pos, cfg), v, allowed)
            return self.attn_out(i, u, y, v)
        q, k = rms_norm(q), rms_norm(k)
        q, k = rope(q, pos, cfg), rope(k, pos, cfg)
        q = q * self.p(f"blocks.{i}.attn.q_gain")[:, None]
        # SMAT, the naive way: explicit S (B, T, T), centrality as masked row sums.
        S = None
        if cfg.smat_has_ws:
            s = u @ self.p(f"blocks.{i}.attn.smat_ws.weight").T  # (B, T, d_s)
            uh = s / s.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            S = uh @ uh.transpose(1, 2)  # (B, T, T), S_ii = 1
        v_att = v
        if cfg.smat_use_g:
            z = u @ self.p(f"blocks.{i}.attn.smat_gate.weight").T + self.p(f"blocks.{i}.attn.smat_gate.bias")  # (B, T, 1)
            if S is not None:
                n = (pos + 1).float() if cfg.smat_centrality == "count" else torch.full(pos.shape, float(cfg.train_seq_len))
                c = (S * allowed).sum(-1) / n  # (B, T)
                z = z + self.p(f"blocks.{i}.attn.smat_mu") * c[..., None]
            v_att = v * torch.sigmoid(z)[..., None]  # (B, T, Hkv, Dh) * (B, T, 1, 1)
        kh = k.repeat_interleave(group, dim=2).transpose(1, 2)  # (B, H, T, Dh)
        vh = v_att.repeat_interleave(group, dim=2).transpose(1, 2)
        scores = (q.transpose(1, 2) @ kh.transpose(-1, -2)) / math.sqrt(Dh)  # (B, H, T, T)
        if cfg.smat_use_s:
            scores = scores + F.softplus(self.p(f"blocks.{i}.attn.smat_lambda_raw")) * S[:, None]
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        y = (scores.softmax(-1) @ vh).transpose(1, 2)  # (B, T, H, Dh)
        return self.attn_out(i, u, y, v)

    def attn_out(self, i: int, u: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """XSA, the output gates and W_O on the heads' outputs y (B, T, H, Dh)."""
        cfg, L = self.cfg, self.cfg.num_layers
        B, T, d = u.shape
        H, Hkv, Dh = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        group = H // Hkv
        if i >= L - cfg.xsa_last_n:
            # XSA: drop the component of each head's output along the token's own value vector.
            vn = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # (B, T, Hkv, Dh)
            yg = y.view(B, T, Hkv, group, Dh)
            y = (yg - (yg * vn[:, :, :, None]).sum(-1, keepdim=True) * vn[:, :, :, None]).view(B, T, H, Dh)
        if cfg.gated_attention:
            gate = torch.sigmoid(u @ self.p(f"blocks.{i}.attn.attn_gate.weight").T + self.p(f"blocks.{i}.attn.attn_gate.bias"))
            y = y * gate[..., None]  # (B, T, H, 1)
        if cfg.attn_out_gate_enabled:
            gate = 2 * torch.sigmoid(u[..., : cfg.gate_width] @ self.p(f"blocks.{i}.attn.attn_gate_proj.weight").T)
            y = y * gate[..., None]  # (B, T, H, 1)
        if cfg.sparse_attn_gate_enabled:  # plain sigmoid, no 2x: 0.5 at a zero init
            z = u[..., : cfg.gate_width] @ self.p(f"blocks.{i}.attn.attn_gate_w").T  # (B, T, H)
            y = y * torch.sigmoid(cfg.sparse_attn_gate_scale * z)[..., None]
        if cfg.head_gate_enabled:  # a plain per-head scale
            y = y * self.p(f"blocks.{i}.attn.head_gate")[:, None]  # (H, 1) against (B, T, H, Dh)
        return y.reshape(B, T, d) @ self.p("qo_bank")[L + i].T

    # ---- MoA (model/moa.h), the naive way ------------------------------------------------------
    def metric_distance(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        if self.cfg.moa_metric == "cosine":
            return 1 - F.cosine_similarity(x, y, dim=-1, eps=1e-12)
        sq = (x - y) ** 2
        return (sq * w if w is not None else sq).sum(-1)

    def metric_attn(self, i: int, b: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    allowed: torch.Tensor) -> torch.Tensor:
        """softmax_j(-alpha_h D(q_i, k_j) + ball_h(k_j)) over allowed j, times v. q (B, T, H, Dh); k, v (B, T, h, Dh)."""
        cfg = self.cfg
        H = q.shape[2]
        k, v = k.repeat_interleave(H // k.shape[2], dim=2), v.repeat_interleave(H // v.shape[2], dim=2)
        alpha = F.softplus(self.p(f"blocks.{i}.moa.{b}_alpha_raw"))
        w = F.softplus(self.p(f"blocks.{i}.moa.{b}_metric_w_raw")) if cfg.moa_metric == "diag_mahalanobis" else None
        D = self.metric_distance(q[:, :, None], k[:, None], w)  # (B, Ti, Tj, H)
        scores = -alpha * D
        if cfg.moa_ball:
            dist = (k - self.p(f"blocks.{i}.moa.{b}_ball_origin")).norm(dim=-1)  # (B, T, H)
            r = F.softplus(self.p(f"blocks.{i}.moa.{b}_ball_rho"))
            scores = scores - cfg.moa_ball_kappa * F.softplus((dist - r) / cfg.moa_ball_tau)[:, None]
        if self.ti_terms is not None:  # triangle penalty on fixed (seeded) triples of this batch's keys
            N = k.shape[0] * k.shape[1]
            idx = torch.randint(N, (3, cfg.moa_ti_triples), generator=torch.Generator().manual_seed(
                0x7E1A0000 + 2 * i + (b == "mqa")))
            flat = k.reshape(N, H, -1)
            a_, b_, c_ = flat[idx[0]], flat[idx[1]], flat[idx[2]]
            viol = self.metric_distance(a_, c_, w) - self.metric_distance(a_, b_, w) - self.metric_distance(b_, c_, w)
            self.ti_terms.append(F.relu(viol).mean(0).sum())
        scores = scores.masked_fill(~allowed[..., None], float("-inf"))
        return torch.einsum("bijh,bjhd->bihd", scores.softmax(2), v)

    def moa(self, i: int, u: torch.Tensor, seg: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """sum_b pi_b g_b ((1 + gamma_b) o_b + beta_b), router and FiLM from r = GELU(W u + b)."""
        cfg = self.cfg
        B, T, d = u.shape
        H, Dh = cfg.num_heads, cfg.head_dim
        names = cfg.moa_branch_list
        pm = lambda n: self.p(f"blocks.{i}.moa.{n}")
        r = F.gelu(u @ pm("router_fc.weight").T + pm("router_fc.bias"))
        weight = (r @ pm("router_out.weight").T + pm("router_out.bias")).softmax(-1)  # (B, T, nb)
        if cfg.moa_bias_gate:
            weight = weight * torch.sigmoid(r @ pm("bias_gate.weight").T + pm("bias_gate.bias"))
        film = (r @ pm("film.weight").T).view(B, T, len(names), 2, d)
        allowed = (seg[:, :, None] == seg[:, None, :]) & torch.ones(T, T, dtype=torch.bool).tril()
        out = torch.zeros_like(u)
        for j, name in enumerate(names):
            if name == "conv":  # y_t = sum_{m < k, t - m in t's segment} w[:, k-1-m] u_{t-m}
                w, k = pm("conv.weight"), cfg.moa_conv_kernel
                rows = []
                for t in range(T):
                    acc = torch.zeros(B, d)
                    for m in range(min(k, t + 1)):
                        same = (seg[:, t] == seg[:, t - m]).float()[:, None]
                        acc = acc + same * w[:, k - 1 - m] * u[:, t - m]
                    rows.append(acc)
                o = torch.stack(rows, 1) @ pm("conv_proj.weight").T
            elif name == "mha":
                o = self.attn(i, u, seg, pos)
            elif name == "mqa":
                q = (u @ pm("mqa_q.weight").T).view(B, T, H, Dh)
                kv = (u @ pm("mqa_kv.weight").T).view(B, T, 2, Dh)
                y = self.metric_attn(i, "mqa", rope(q, pos, cfg), rope(kv[:, :, :1], pos, cfg), kv[:, :, 1:], allowed)
                o = y.reshape(B, T, d) @ pm("mqa_o.weight").T
            else:
                o = F.gelu(u @ pm("chan_fc.weight").T) @ pm("chan_proj.weight").T
            out = out + weight[..., j : j + 1] * ((1 + film[:, :, j, 0]) * o + film[:, :, j, 1])
        return out

    def mixer(self, i: int, u: torch.Tensor, seg: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.moa(i, u, seg, pos) if self.cfg.moa_enabled else self.attn(i, u, seg, pos)

    def mlp(self, i: int, u: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(u @ self.p("mlp_up_bank")[i].T, 0.5).square()
        return h @ self.p("mlp_down_bank")[i].T

    def ln(self, i: int) -> float:
        return 1.0 / math.sqrt(i + 1) if self.cfg.ln_scale else 1.0

    # ---- forward --------------------------------------------------------------------------
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) -> x0 (B, T, d): embedding, norm, and the BOS-masked SmearGate."""
        cfg = self.cfg
        e = self.p("tok_emb.weight")[tokens]
        if cfg.bigram_hash:
            b = self.p("bigram.embed.weight")[bigram_hash_ids(tokens, cfg.bigram_buckets, cfg.bos_token_id)]
            if cfg.bigram_dim != cfg.model_dim:
                b = b @ self.p("bigram.proj.weight").T
            e = e + self.p("bigram.scale") * b
        if cfg.smear_input == "normed" or not cfg.smear_gate_enabled:
            e = rms_norm(e)
        if cfg.smear_gate_enabled:
            # g_t = λ σ(w · e_t[:12]), zero at t = 0 and wherever the current token is BOS.
            g = self.p("smear_lambda") * torch.sigmoid(e[..., : cfg.gate_width] @ self.p("smear_gate.weight").T)
            g = g * (tokens != cfg.bos_token_id)[..., None]
            g = torch.cat([torch.zeros_like(g[:, :1]), g[:, 1:]], dim=1)
            prev = torch.cat([torch.zeros_like(e[:, :1]), e[:, :-1]], dim=1)
            e = e + g * prev
            if cfg.smear_input == "raw":
                e = rms_norm(e)
        return e

    def forward_hidden(self, tokens: torch.Tensor, looping: bool) -> torch.Tensor:
        """(B, T) tokens -> final normed hidden state (B, T, d)."""
        cfg = self.cfg
        seg, pos = segments(tokens, cfg)
        self.v_first = None
        x = x0 = self.embed(tokens)
        enc, dec = visit_order(cfg, looping)
        S = num_skip_rows(cfg)
        skips: list[torch.Tensor] = []
        lanes: list[torch.Tensor] | None = None

        def sequential(i: int, x: torch.Tensor) -> torch.Tensor:
            m = self.p(f"blocks.{i}.resid_mix")
            x_in = m[0] * x + m[1] * x0
            x1 = x_in + self.p(f"blocks.{i}.attn_scale") * self.mixer(i, rms_norm(x_in) * self.ln(i), seg, pos)
            return x1 + self.p(f"blocks.{i}.mlp_scale") * self.mlp(i, rms_norm(x1) * self.ln(i))

        def gptj(i: int, x: torch.Tensor) -> torch.Tensor:
            m = self.p(f"blocks.{i}.resid_mix")
            x_in = m[0] * x + m[1] * x0
            u = rms_norm(x_in) * self.ln(i)
            return (x_in + self.p(f"blocks.{i}.attn_scale") * self.mixer(i, u, seg, pos)
                    + self.p(f"blocks.{i}.mlp_scale") * self.mlp(i, u))

        def two_lane(i: int, lane0: torch.Tensor, lane1: torch.Tensor) -> list[torch.Tensor]:
            m = self.p(f"blocks.{i}.resid_mix")
            a = self.p(f"blocks.{i}.attn_scale") * self.mixer(i, rms_norm(m[0] * lane0 + m[1] * x0) * self.ln(i), seg, pos)
            f = self.p(f"blocks.{i}.mlp_scale") * self.mlp(i, rms_norm(lane1) * self.ln(i))
            rho, pi = self.p("parallel_resid_lambdas")[i], self.p("parallel_post_lambdas")[i]  # (2,), (2 src, 2 dst)
            return [rho[0] * lane0 + pi[0, 0] * a + pi[1, 0] * f, rho[1] * lane1 + pi[0, 1] * a + pi[1, 1] * f]

        def inject(j: int, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
            w = self.p("skip_weights")[j]
            if cfg.skip_gates_enabled:
                s = torch.sigmoid(self.p("skip_gates")[j])
                return s * x + (1 - s) * (w * skip)
            return x + w * skip

        for i in enc:
            x = sequential(i, x)
            skips.append(x)
        for j, i in enumerate(dec):
            # PARALLEL_START_LAYER=0 means "no parallel layers", as in the records.
            parallel = cfg.parallel_mode != "none" and cfg.parallel_start_layer > 0 and i >= cfg.parallel_start_layer
            if parallel and cfg.parallel_mode == "two_lane" and lanes is None:
                lanes = [x, x]  # the records make both lanes from x first; the skip then goes into lane 0 only
            if j < S and skips:
                skip = skips.pop()
                if lanes is None:
                    x = inject(j, x, skip)
                else:
                    lanes[0] = inject(j, lanes[0], skip)
            if parallel and cfg.parallel_mode == "two_lane":
                lanes = two_lane(i, *lanes)
            elif parallel:
                x = gptj(i, x)
            else:
                assert lanes is None, "a sequential layer after the parallel region"
                x = sequential(i, x)
        if lanes is not None:
            x = 0.5 * (lanes[0] + lanes[1])
        return rms_norm(x)

    def logits(self, tokens: torch.Tensor, looping: bool) -> torch.Tensor:
        """(B, T) -> softcapped logits (B, T, V), fp32."""
        z = self.forward_hidden(tokens, looping) @ self.p("tok_emb.weight").T
        cap = self.cfg.logit_softcap
        return cap * torch.tanh(z.float() / cap)

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor, looping: bool) -> torch.Tensor:
        """Mean CE, plus moa_ti_weight * (sum of the triangle penalties of every metric branch visit)."""
        penalty = self.cfg.moa_enabled and self.cfg.moa_ti_weight > 0
        self.ti_terms = [] if penalty else None
        logits = self.logits(tokens, looping)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        terms, self.ti_terms = self.ti_terms, None
        return ce + self.cfg.moa_ti_weight * torch.stack(terms).sum() if penalty and terms else ce


# ---- optimizers ------------------------------------------------------------------------------
MATRIX_PARAMS = ("qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank")
NS_CLASSIC = [(3.4445, -4.7750, 2.0315)] * 5
NS_POLAR_EXPRESS = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]


@dataclass
class OptimConfig:
    matrix_lr: float = 0.026
    scalar_lr: float = 0.02
    tied_embed_lr: float = 0.03
    muon_wd: float = 0.095
    adam_wd: float = 0.02
    embed_wd: float = 0.085
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    muon_momentum: float = 0.97
    muon_momentum_warmup_start: float = 0.92
    muon_momentum_warmup_steps: int = 1500
    muon_backend_steps: int = 5
    muon_polar_express: int = 0
    muon_row_normalize: int = 1
    grad_clip_norm: float = 0.3
    ema_decay: float = 0.9965
    warmdown_frac: float = 0.72
    min_lr: float = 0.0


def newton_schulz(g: torch.Tensor, steps: int, polar_express: bool) -> torch.Tensor:
    """Approximate orthogonalisation of each matrix of g (n, r, c)."""
    x = g
    wide = g.shape[-2] > g.shape[-1]
    if wide:
        x = x.transpose(-1, -2)
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    coeffs = NS_POLAR_EXPRESS if polar_express else NS_CLASSIC
    if polar_express and steps > len(NS_POLAR_EXPRESS):
        # The records never run more Polar Express steps than they have coefficients.
        raise ValueError(f"MUON_BACKEND_STEPS={steps} exceeds the {len(NS_POLAR_EXPRESS)} Polar Express coefficient tuples")
    for s in range(steps):
        a, b, c = coeffs[s] if polar_express else NS_CLASSIC[0]
        A = x @ x.transpose(-1, -2)
        x = a * x + (b * A + c * A @ A) @ x
    return x.transpose(-1, -2) if wide else x


def lr_multiplier(frac: float, o: OptimConfig) -> float:
    """Flat, then linear warm-down over the last warmdown_frac of training, floored at min_lr."""
    if frac < 1 - o.warmdown_frac:
        return 1.0
    return max((1 - frac) / o.warmdown_frac, o.min_lr)


def muon_momentum(step: int, o: OptimConfig) -> float:
    f = min(step / o.muon_momentum_warmup_steps, 1.0) if o.muon_momentum_warmup_steps > 0 else 1.0
    return (1 - f) * o.muon_momentum_warmup_start + f * o.muon_momentum


class Optimizer:
    """Muon for the four banks, AdamW for the embedding and for everything else (scalars, gates)."""

    def __init__(self, params: dict[str, torch.Tensor], o: OptimConfig):
        self.params, self.o = params, o
        self.momentum = {n: torch.zeros_like(p) for n, p in params.items() if n in MATRIX_PARAMS}
        self.adam = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in params.items() if n not in MATRIX_PARAMS}
        self.adam_steps = 0

    def clip(self) -> float:
        norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in self.params.values()))
        coef = min(1.0, self.o.grad_clip_norm / (norm.item() + 1e-6))
        for p in self.params.values():
            p.grad.mul_(coef)
        return norm.item()

    @torch.no_grad()
    def step(self, step: int, lr_mul: float) -> None:
        o = self.o
        mu = muon_momentum(step, o)
        for n in MATRIX_PARAMS:
            p, g, m = self.params[n], self.params[n].grad, self.momentum[n]
            m.mul_(mu).add_(g)
            u = g + mu * m
            if o.muon_row_normalize:
                u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-7)
            upd = newton_schulz(u, o.muon_backend_steps, bool(o.muon_polar_express))
            lr = o.matrix_lr * lr_mul
            scale = math.sqrt(max(1.0, p.shape[-2] / p.shape[-1]))
            p.mul_(1 - lr * o.muon_wd).sub_(lr * scale * upd)
        self.adam_steps += 1
        t = self.adam_steps
        for n, (m, v) in self.adam.items():
            p, g = self.params[n], self.params[n].grad
            emb = n in ("tok_emb.weight", "bigram.embed.weight")  # the records' embedding group
            lr = (o.tied_embed_lr if emb else o.scalar_lr) * lr_mul
            wd = o.embed_wd if emb else o.adam_wd
            p.mul_(1 - lr * wd)
            m.mul_(o.beta1).add_(g, alpha=1 - o.beta1)
            v.mul_(o.beta2).addcmul_(g, g, value=1 - o.beta2)
            denom = (v.sqrt() / math.sqrt(1 - o.beta2**t)).add_(o.adam_eps)
            p.addcdiv_(m, denom, value=-lr / (1 - o.beta1**t))
