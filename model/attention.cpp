// model/attention.cpp — the attention half of golf::Model (model/model.h): causal attention inside
// segments (the masked reference every backend is checked against), then the attention sublayer step
// by step: project Q/K/V, mix values, attend, the output-side gates, the output projection.
// Split from model/model.cpp (construction, embedding, MoA, MLP and the forward) only for length;
// same library (golf_model), same private members.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "model/model.h"
#include "model/ops/mix.h"
#include "model/ops/qk_norm_rope.h"
#include "model/variants.h"
#include "model/varlen.h"

namespace golf {

namespace {
std::string block(int i, const char* name) { return fmt::format("blocks.{}.{}", i, name); }  // as in model.cpp

// Sparse attention gate (R29, SPARSE_ATTN_GATE_*): a plain sigmoid per token and head of the first
// `width` dims of the attention input, g = σ(scale · u[:width] Wᵀ) — 0.5 at a zero init, no 2×.
// u (B, T, d), w (H, width) → g (B, T, H, 1), to multiply the heads' outputs (after XSA, before W_O).
at::Tensor sparse_attn_gate(const at::Tensor& u, const at::Tensor& w, int64_t width, double scale) {
  return at::sigmoid(scale * at::matmul(u.narrow(-1, 0, width), w.t())).unsqueeze(-1);
}
}  // namespace

// ---- segment attention -----------------------------------------------------------------------
at::Tensor segment_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& seg,
                             int64_t W, std::optional<double> scale) {
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), Dh = q.size(3), group = H / k.size(2);
  const at::Tensor qh = q.transpose(1, 2);                                  // (B, H, T, Dh)
  const at::Tensor kh = k.repeat_interleave(group, 2).transpose(1, 2);
  const at::Tensor vh = v.repeat_interleave(group, 2).transpose(1, 2);
  if (T <= W) {
    const at::Tensor causal = at::ones({T, T}, seg.options().dtype(at::kBool)).tril();
    const at::Tensor mask = (seg.unsqueeze(2) == seg.unsqueeze(1)).logical_and(causal).unsqueeze(1);  // (B,1,T,T)
    return at::scaled_dot_product_attention(qh, kh, vh, mask, 0.0, false, scale).transpose(1, 2);
  }
  // Blocks of W queries; each sees the keys of its own and the previous block (2W). Padding
  // positions get segment -1, the missing block before the first gets -2: neither matches a real
  // token, and every padding query still sees itself (no all-masked rows).
  const int64_t nb = (T + W - 1) / W, P = nb * W - T;
  auto blocks = [&](const at::Tensor& x) {  // (B, H, T, Dh) → (B, nb, H, W, Dh)
    return at::constant_pad_nd(x, {0, 0, 0, P}).view({B, H, nb, W, Dh}).permute({0, 2, 1, 3, 4});
  };
  auto with_previous = [&](const at::Tensor& xb) {  // (B, nb, H, W, Dh) → (B*nb, H, 2W, Dh)
    const at::Tensor prev = at::cat({at::zeros_like(xb.narrow(1, 0, 1)), xb.narrow(1, 0, nb - 1)}, 1);
    return at::cat({prev, xb}, 3).reshape({B * nb, H, 2 * W, Dh});
  };
  const at::Tensor qb = blocks(qh).reshape({B * nb, H, W, Dh});
  const at::Tensor kb = with_previous(blocks(kh)), vb = with_previous(blocks(vh));
  const at::Tensor seg_q = at::constant_pad_nd(seg, {0, P}, -1).view({B, nb, W});
  const at::Tensor seg_prev = at::cat({at::full({B, 1, W}, -2, seg.options()), seg_q.narrow(1, 0, nb - 1)}, 1);
  const at::Tensor seg_k = at::cat({seg_prev, seg_q}, 2);                                    // (B, nb, 2W)
  // Query i of a block sits at key index W + i: causal means key index ≤ W + i.
  const at::Tensor causal = at::ones({W, 2 * W}, seg.options().dtype(at::kBool)).tril(W);
  const at::Tensor mask = (seg_q.unsqueeze(3) == seg_k.unsqueeze(2)).logical_and(causal).view({B * nb, 1, W, 2 * W});
  const at::Tensor y = at::scaled_dot_product_attention(qb, kb, vb, mask, 0.0, false, scale);  // (B*nb, H, W, Dh)
  return y.view({B, nb, H, W, Dh}).permute({0, 2, 1, 3, 4}).reshape({B, H, nb * W, Dh}).narrow(2, 0, T).transpose(1, 2);
}

// ---- attention, step by step -----------------------------------------------------------------
at::Tensor Model::attention(int i, const at::Tensor& u, const Pass& s, at::Tensor& v_first,
                            const LoraVisit* lora) const {
  Qkv qkv = project_qkv(i, u, s, lora);
  mix_values(i, qkv, v_first);
  at::Tensor y = attend(i, u, qkv, s);  // (B, T, H, Dh)
  y = attn_gates(i, u, qkv, std::move(y), s);
  return attn_out(i, y, s, lora);
}

Model::Qkv Model::project_qkv(int i, const at::Tensor& u, const Pass& s, const LoraVisit* lora) const {
  const int64_t L = cfg_.num_layers, B = u.size(0), T = u.size(1), d = u.size(2);
  const int64_t H = cfg_.num_heads, Hkv = cfg_.num_kv_heads, Dh = d / H;
  if (s.probes.hessians) s.probes.hessians->add(block(i, "attn.c_q.weight"), u);  // shared by Q, K and V
  at::Tensor q = at::matmul(u, bank("qo_bank", i, s).t());
  at::Tensor k = at::matmul(u, bank("kv_bank", i, s).t());
  at::Tensor v = at::matmul(u, bank("kv_bank", L + i, s).t());
  if (lora && lora->q.defined()) q = q + lora->q.apply(u);  // test-time LoRA (ForwardOptions::lora)
  if (lora && lora->k.defined()) k = k + lora->k.apply(u);
  if (lora && lora->v.defined()) v = v + lora->v.apply(u);
  return {q.view({B, T, H, Dh}), k.view({B, T, Hkv, Dh}), v.view({B, T, Hkv, Dh})};
}

void Model::mix_values(int i, Qkv& qkv, at::Tensor& v_first) const {
  if (!cfg_.value_residual) return;
  // v0: the first visit's raw value (layer 0); layers ≥ 1 mix it in
  if (!v_first.defined()) v_first = qkv.v;
  else if (i > 0) {
    const at::Tensor ab = w(block(i, "attn.vr_lambda"));
    qkv.v = ab[0] * v_first + ab[1] * qkv.v;
  }
}

// Causal attention inside segments with the backend chosen once (GOLF_ATTN): q (B, T, H, Dh),
// k/v (B, T, Hkv, Dh) → (B, T, H, Dh). The varlen backends see the B rows as one packed stream
// (a view: (B, T, ·, Dh) and (B·T, ·, Dh) share their layout).
at::Tensor Model::attend_core(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Pass& s) const {
  if (fast_.attn == AttnBackend::sdpa) return segment_attention(q, k, v, s.seg, s.seg_len);
  const int64_t B = q.size(0), T = q.size(1);
  auto packed = [&](const at::Tensor& x) { return x.reshape({B * T, x.size(2), x.size(3)}); };
  return varlen_attention(packed(q), packed(k), packed(v), s.cu_seqlens, s.max_len, fast_.attn).view(q.sizes());
}

at::Tensor Model::attend(int i, const at::Tensor& u, const Qkv& qkv, const Pass& s) const {
  const int64_t H = cfg_.num_heads, Dh = qkv.q.size(3);
  HessianCollector* hessians = s.probes.hessians;
  if (cfg_.moa_enabled)  // MoA's metric MHA branch: −α·D(q, k) logits on the RoPE'd raw q, k
    return metric_attention(i, "mha", rope(qkv.q, s), rope(qkv.k, s), qkv.v, s);
  at::Tensor q, k;
  if (fast_.fused_qk) {  // GOLF_FUSED_QK: the same chain as one op (model/ops/qk_norm_rope.h)
    q = ops::qk_norm_rope(qkv.q, s.cos, s.sin, w(block(i, "attn.q_gain")), cfg_.rope_dims);
    k = ops::qk_norm_rope(qkv.k, s.cos, s.sin, at::Tensor(), cfg_.rope_dims);
  } else {
    q = rope(rms(qkv.q), s) * w(block(i, "attn.q_gain")).view({1, 1, H, 1});
    k = rope(rms(qkv.k), s);
  }

  // SMAT: û (B, T, d_s) from the block input; the gate scales the (mixed) values, λS joins the logits.
  auto ablated = [&](std::string_view item) { return variants::smat_ablation_has(cfg_, item); };
  at::Tensor uhat;
  if (has_smat_ws()) {
    if (hessians && param(block(i, "attn.smat_ws.weight")).numel() > hessians->passthrough_max_numel)
      hessians->add(block(i, "attn.smat_ws.weight"), u);
    // random_s: smat_random_projection's R, moved to the device once (smat_random_projections_)
    uhat = ablated("random_s") ? variants::smat_unit(u, smat_random_projections_.at(static_cast<size_t>(i)).to(u.scalar_type()))
                               : variants::smat_unit(u, w(block(i, "attn.smat_ws.weight")));
  }
  at::Tensor v_att = qkv.v;
  if (cfg_.smat_use_g) v_att = qkv.v * smat_gate(i, u, uhat, s).unsqueeze(-1);  // G (B, T, 1, 1)
  if (cfg_.smat_use_s && !ablated("lambda0") && !ablated("no_s")) {
    // Folded head dim Dh + d_s and its own scale: the masked reference serves it whatever GOLF_ATTN.
    const at::Tensor lambda = at::softplus(w(block(i, "attn.smat_lambda_raw")));
    const auto [qf, kf] = variants::smat_fold(q, k, uhat, lambda);          // (B, T, H|Hkv, Dh + d_s)
    const at::Tensor vf = at::constant_pad_nd(v_att, {0, qf.size(-1) - Dh});  // equal head dims for any backend
    return segment_attention(qf, kf, vf, s.seg, s.seg_len, 1.0 / std::sqrt(static_cast<double>(Dh))).narrow(-1, 0, Dh);
  }
  return attend_core(q, k, v_att, s);  // (B, T, H, Dh)
}

// Output-side gates, each optional, applied in order to y (B, T, H, Dh); a new gate is one more
// block here.
at::Tensor Model::attn_gates(int i, const at::Tensor& u, const Qkv& qkv, at::Tensor y, const Pass& s) const {
  HessianCollector* hessians = s.probes.hessians;
  const int64_t L = cfg_.num_layers, B = y.size(0), T = y.size(1), H = y.size(2), Dh = y.size(3);
  const int64_t Hkv = qkv.v.size(2);
  if (fast_.fused_mix) return attn_gates_fused(i, u, qkv, y, s);
  if (i >= L - cfg_.xsa_last_n) {
    // XSA: remove from each head's output its component along the token's own value vector
    // (the un-gated v: invariant to G, and finite where G = 0).
    const at::Tensor& v = qkv.v;
    const at::Tensor vn = (v / v.norm(2, -1, /*keepdim=*/true).clamp_min(1e-12)).unsqueeze(3);  // (B,T,Hkv,1,Dh)
    const at::Tensor yg = y.view({B, T, Hkv, H / Hkv, Dh});
    y = (yg - (yg * vn).sum(-1, /*keepdim=*/true) * vn).view({B, T, H, Dh});
  }
  if (cfg_.gated_attention) {  // σ(W u + b) per head: σ(4) ≈ 0.982 at init
    if (hessians && param(block(i, "attn.attn_gate.weight")).numel() > hessians->passthrough_max_numel)
      hessians->add(block(i, "attn.attn_gate.weight"), u);
    const at::Tensor gate =
        at::sigmoid(at::matmul(u, w(block(i, "attn.attn_gate.weight")).t()) + w(block(i, "attn.attn_gate.bias")));
    y = y * gate.unsqueeze(-1);  // (B, T, H, 1)
  }
  if (cfg_.attn_out_gate_enabled) {  // γ = 2σ(W u[:12]) per head: 1 at init
    const at::Tensor gate =
        2 * at::sigmoid(at::matmul(u.narrow(-1, 0, cfg_.gate_width), w(block(i, "attn.attn_gate_proj.weight")).t()));
    y = y * gate.unsqueeze(-1);
  }
  if (cfg_.sparse_attn_gate_enabled)  // exclusive with the two gates above (validate())
    y = y * sparse_attn_gate(u, w(block(i, "attn.attn_gate_w")), cfg_.gate_width, cfg_.sparse_attn_gate_scale);
  if (cfg_.head_gate_enabled) y = y * w(block(i, "attn.head_gate")).view({1, 1, H, 1});  // γ_h: 1 at init
  return y;
}

// GOLF_FUSED_MIX: the same gates multiplied into one (B, T, H) factor first, then XSA and that
// factor as one op (model/ops/mix.h). The function is attn_gates' (products reassociated only).
at::Tensor Model::attn_gates_fused(int i, const at::Tensor& u, const Qkv& qkv, const at::Tensor& y, const Pass& s) const {
  HessianCollector* hessians = s.probes.hessians;
  const int64_t B = y.size(0), T = y.size(1), H = y.size(2);
  at::Tensor gate;  // (B, T, H), undefined = 1
  auto times = [&](const at::Tensor& g) { gate = gate.defined() ? gate * g : g; };
  if (cfg_.gated_attention) {
    if (hessians && param(block(i, "attn.attn_gate.weight")).numel() > hessians->passthrough_max_numel)
      hessians->add(block(i, "attn.attn_gate.weight"), u);
    times(at::sigmoid(at::matmul(u, w(block(i, "attn.attn_gate.weight")).t()) + w(block(i, "attn.attn_gate.bias"))));
  }
  if (cfg_.attn_out_gate_enabled)
    times(2 * at::sigmoid(at::matmul(u.narrow(-1, 0, cfg_.gate_width), w(block(i, "attn.attn_gate_proj.weight")).t())));
  if (cfg_.sparse_attn_gate_enabled)
    times(sparse_attn_gate(u, w(block(i, "attn.attn_gate_w")), cfg_.gate_width, cfg_.sparse_attn_gate_scale).squeeze(-1));
  if (cfg_.head_gate_enabled) {
    const at::Tensor hg = w(block(i, "attn.head_gate")).view({1, 1, H});
    times(gate.defined() ? hg : hg.expand({B, T, H}));
  }
  if (i >= cfg_.num_layers - cfg_.xsa_last_n) return ops::xsa_gate(y, qkv.v, gate);
  return gate.defined() ? y * gate.unsqueeze(-1) : y;
}

at::Tensor Model::attn_out(int i, const at::Tensor& y, const Pass& s, const LoraVisit* lora) const {
  const at::Tensor out_in = y.reshape({y.size(0), y.size(1), y.size(2) * y.size(3)});  // (B, T, d)
  if (s.probes.hessians) s.probes.hessians->add(block(i, "attn.proj.weight"), out_in);
  const at::Tensor out = at::matmul(out_in, bank("qo_bank", cfg_.num_layers + i, s).t());
  return lora && lora->o.defined() ? out + lora->o.apply(out_in) : out;
}

}  // namespace golf
