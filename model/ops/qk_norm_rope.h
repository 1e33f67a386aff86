// model/ops/qk_norm_rope.h — QK-RMSNorm + partial RoPE + q gain as one autograd op (issue 13).
//
// For one head row x (Dh values) of q or k, with the RoPE tables of its token (r/2 cos, sin) and
// the head's gain g (q only; 1 for k):
//   n = x · rsqrt(mean(x²) + ε)                      ε = FLT_EPSILON (golf::rms_norm)
//   y[j]       = g · ( n[j]·c[j] + n[j+h]·s[j])      j < h = r/2      (rotation by −θ,
//   y[j+h]     = g · (−n[j]·s[j] + n[j+h]·c[j])                        half-split pairing)
//   y[d]       = g · n[d]                            d ≥ r            (the un-rotated rest)
// i.e. exactly model/attention.cpp's rope(rms(x)) · q_gain (attend), the chain it replaces
// (qk_norm_rope_reference). Gradients (dy → dx, dg; the tables are constants, positions only):
//   dr = g·dy;  dn = Rᵀ dr (the inverse rotation);  dx = inv · (dn − n · mean(dn ⊙ n));
//   dg = Σ over tokens and dims of dy ⊙ rope(n).
// The op saves only its inputs (x, the tables, the gain) and recomputes n in backward; the chain
// saves the fp32 copy, the normed x, both RoPE halves and the rotated result.
// Arithmetic in fp32 (float64 for float64 inputs); the output has x's dtype. On CUDA one kernel
// each way (one warp per head row); elsewhere ATen ops with the same formulas.
#pragma once
#include <cstdint>
#include <utility>

namespace at { class Tensor; }

namespace golf::ops {

// x (B, T, H, Dh); cos, sin (B, T, 1, r/2) (broadcast over heads; no gradient); gain (H) or an
// undefined tensor (no gain, k); rope_dims r even, ≤ Dh. → (B, T, H, Dh) in x's dtype.
at::Tensor qk_norm_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain,
                        int64_t rope_dims);
// The unfused chain: fp32 RMSNorm, the RoPE of model/model.cpp in x's dtype, then the gain.
at::Tensor qk_norm_rope_reference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                  const at::Tensor& gain, int64_t rope_dims);

// The CUDA kernels alone: x (N, H, Dh) contiguous fp32|bf16, cos/sin (N, r/2) fp32, gain (H) fp32
// or undefined. forward → y like x; backward → (dx like x, dgain (H) fp32 or undefined).
at::Tensor qk_norm_rope_forward_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                     const at::Tensor& gain, int64_t rope_dims);
std::pair<at::Tensor, at::Tensor> qk_norm_rope_backward_cuda(const at::Tensor& x, const at::Tensor& cos,
                                                             const at::Tensor& sin, const at::Tensor& gain,
                                                             const at::Tensor& dy, int64_t rope_dims);

}  // namespace golf::ops
