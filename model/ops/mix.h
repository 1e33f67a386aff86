// model/ops/mix.h — the model's remaining elementwise chains as fused autograd ops (issue 13,
// GOLF_FUSED_MIX), each beside the plain chain it replaces.
//
//   residual_mix(x, a, y, b) = a ⊙ x + b ⊙ y
//       x, y (..., d) of one shape and dtype; a, b per-channel (d) or scalar (0-dim / (1)) tensors,
//       a undefined = 1. Serves every residual, lane and skip mix of the forward:
//         attention input   m₀ ⊙ lane + m₁ ⊙ x0                     (resid_mix)
//         residual adds     x + s ⊙ attn,  x + s ⊙ mlp                (attn_scale, mlp_scale)
//         U-Net skips       x + w ⊙ skip,  σ ⊙ x + ((1 − σ) ⊙ w) ⊙ skip (skip_weights, skip_gates)
//         two-lane update   ρ ⊙ lane + (π·s_a) ⊙ attn, then + (π·s_f) ⊙ mlp
//       Gradients: dx = a ⊙ g, dy = b ⊙ g, da = Σ x ⊙ g, db = Σ y ⊙ g (sums over all leading dims,
//       and over the channels too for a scalar coefficient).
//       The chain rounds each product and the sum (three bf16 roundings on CUDA); the op computes
//       in fp32 and rounds once. Saved: x, y, a, b (as the chain's two multiplies).
//
//   xsa_gate(y, v, gate) = XSA then a per-(token, head) gate:
//       vn = v / max(‖v‖, 1e-12) per KV head row; z = y − (y · vn) vn for every query head of the
//       KV head's group (head h uses KV head h / (H / Hkv)); out = z ⊙ gate.
//       y (B, T, H, Dh), v (B, T, Hkv, Dh), gate (B, T, H) or undefined (= 1): the product of the
//       enabled output gates (AttnOutGate 2σ(·), gated attention σ(·), the sparse gate, the head
//       gate). Gradients (q = dz · vn, p = y · vn, dz = g ⊙ dout):
//         dy = dz − q vn;  dgate = dout · z;
//         dvn = −Σ_group (q y + p dz);  dv = (dvn − vn (dvn · vn)) / ‖v‖  (dvn / 1e-12 when clamped,
//         which is 0 for v = 0: p = q = 0 there).
//       Saved: y, v, gate only (the chain saves vn, the product, the projection and the gate's input).
//
//   smear(e, g) = e + g ⊙ shift(e),  shift(e)[t] = e[t − 1] (0 at t = 0)
//       e (B, T, d), g (B, T, 1): the SmearGate's per-token gate λσ(·), already zero at t = 0 and
//       at BOS. Gradients: de[t] = dout[t] + g[t+1] dout[t+1]; dg[t] = dout[t] · e[t − 1].
//
// Arithmetic in fp32 (float64 for float64 inputs); outputs in x's / y's / e's dtype. On CUDA one
// kernel each way (model/ops/mix.cu); elsewhere ATen ops with the same formulas and a hand-written
// backward (tested against the chains and against finite differences, tests/model/mix_test.cpp).
#pragma once

#include <ATen/core/Tensor.h>

namespace golf::ops {

at::Tensor residual_mix(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b);
at::Tensor residual_mix_reference(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b);

at::Tensor xsa_gate(const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate);
// model/attention.cpp's XSA chain (attn_gates), then y ⊙ gate.unsqueeze(-1) when the gate is defined.
at::Tensor xsa_gate_reference(const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate);

at::Tensor smear(const at::Tensor& e, const at::Tensor& g);
// model/model.cpp's chain: e + g ⊙ cat(0, e[:, :-1]).
at::Tensor smear_reference(const at::Tensor& e, const at::Tensor& g);

// The CUDA kernels alone. Tensors contiguous on CUDA, fp32 or bf16 storage; coefficients / gates
// fp32 contiguous. residual_mix: a, b of numel d (per channel) or 1 (scalar); a undefined = 1.
at::Tensor residual_mix_forward_cuda(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b);
// → (dx or undefined when a is undefined (dx = g), dy, da (numel of a, fp32) or undefined, db (numel of b, fp32));
// da/db only when asked (need_da, need_db).
struct MixGrads {
  at::Tensor dx, dy, da, db;
};
MixGrads residual_mix_backward_cuda(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b,
                                    const at::Tensor& g, bool need_da, bool need_db);
// y (N, H, Dh), v (N, Hkv, Dh), gate (N, H) fp32 or undefined; Dh ≤ 256.
at::Tensor xsa_gate_forward_cuda(const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate);
struct XsaGrads {
  at::Tensor dy, dv, dgate;  // dgate (N, H) fp32, undefined without a gate
};
XsaGrads xsa_gate_backward_cuda(const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate, const at::Tensor& dout);
// e (B, T, d), g (B, T) fp32.
at::Tensor smear_forward_cuda(const at::Tensor& e, const at::Tensor& g);
struct SmearGrads {
  at::Tensor de, dg;  // dg (B, T) fp32
};
SmearGrads smear_backward_cuda(const at::Tensor& e, const at::Tensor& g, const at::Tensor& dout);

}  // namespace golf::ops
