// model/moa.h — the math of MoA, the mixture of attentions (docs/reference/seed-techniques.md §4),
// which model/model.cpp switches on with MOA_ENABLED=1. Only the model card exists upstream, so this
// is a reconstruction: every [ASSUMED] choice of the spec is a config knob (MOA_* in core/config.h).
//
// With MOA_ENABLED=1 the attention of every block becomes a mixer of branches b (MOA_BRANCHES):
//   mix(ũ) = Σ_b π_b · g_b · ((1 + γ_b) ⊙ o_b + β_b),  ũ the block's normed attention input,
//   router   r = GELU(W_r1 ũ + b_1) (R = MOA_ROUTER_HIDDEN), π = softmax(W_r2 r + b_2) (zero init → uniform),
//   FiLM     (γ_b, β_b) = W_f,b r (zero init → identity),
//   gate     g_b = σ(w_b·r + c_b), c_b = 3 (MOA_BIAS_GATE; 1 without it),
//   branches conv: depthwise causal conv over T (MOA_CONV_KERNEL taps, reset at each segment start,
//                  i.e. at BOS), then a pointwise d×d matrix (zero init);
//            mha:  the block's attention (GQA banks, RoPE, value residual, XSA, output gates) with
//                  metric logits −α_h·D(q_i, k_j) in place of q·k/√Dh (no QK-norm, no q_gain);
//            mqa:  its own Q (d×d), one shared K/V head (2·Dh×d) and O (d×d, zero init), same metric;
//            chan: per-token GELU MLP d → MOA_CHAN_MULT·d → d (down zero init).
// The mixer's output replaces attention's (scaled by attn_scale, which plays LayerScale's part).
// Metrics D (MOA_METRIC): l2 ‖q−k‖², cosine 1 − cos(q, k), diag_mahalanobis Σ_m w_m (q_m − k_m)²,
// folded into one scale-1 SDPA (moa_metric_fold). Ball pruning (MOA_BALL) adds the per-key bias
// −κ·softplus((‖k_j − o_h‖ − r_h)/τ); the triangle-inequality penalty (MOA_TI_WEIGHT) is added by
// Model::loss().
//
// Parameter names (per layer i; P ∈ {mha, mqa} for each metric branch present):
//   blocks.{i}.moa.router_fc.weight   (R, d)       orthogonal     blocks.{i}.moa.router_fc.bias  (R)  0
//   blocks.{i}.moa.router_out.weight  (nb, R)      0              blocks.{i}.moa.router_out.bias (nb) 0
//   blocks.{i}.moa.film.weight        (nb·2d, R)   0 (rows: branch, then γ | β, then channel)
//   blocks.{i}.moa.bias_gate.weight   (nb, R)      0              blocks.{i}.moa.bias_gate.bias  (nb) 3   MOA_BIAS_GATE
//   blocks.{i}.moa.conv.weight        (d, k)       U(±1/√k)       blocks.{i}.moa.conv_proj.weight (d, d) 0
//   blocks.{i}.moa.chan_fc.weight     (m·d, d)     orthogonal     blocks.{i}.moa.chan_proj.weight (d, m·d) 0
//   blocks.{i}.moa.mqa_q.weight (d, d) orthogonal; mqa_kv.weight (2·Dh, d) orthogonal; mqa_o.weight (d, d) 0
//   blocks.{i}.moa.P_alpha_raw        (H)          softplus⁻¹(MOA_ALPHA_INIT)
//   blocks.{i}.moa.P_metric_w_raw     (H, Dh)      softplus⁻¹(1)  diag_mahalanobis
//   blocks.{i}.moa.P_ball_origin      (H, Dh)      0              MOA_BALL
//   blocks.{i}.moa.P_ball_rho         (H)          softplus⁻¹(MOA_RADIUS_INIT)   MOA_BALL
// With MOA_ENABLED=1 the blocks have no attn.q_gain (the metric scale α takes its place).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"

namespace golf::moa {

// The branches of MOA_BRANCHES in the canonical order conv, mha, mqa, chan (the router's order).
std::vector<std::string> branches(const ModelConfig& config);
bool has_branch(const ModelConfig& config, const std::string& branch);

double inverse_softplus(double y);  // x with softplus(x) = y, y > 0

// Depthwise causal conv that restarts at every segment start: y_t = Σ_{m<k, m ≤ pos_t} w[:, k−1−m] ⊙ x_{t−m}
// for x (B, T, d), weight (d, k) (PyTorch Conv1d's tap order), pos (B, T) the position in the segment.
at::Tensor local_conv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& pos);

// D(x, y) over the last dim (broadcasting): l2 ‖x−y‖², cosine 1 − cos, diag_mahalanobis Σ w (x−y)²
// (w broadcast against x; undefined for the other metrics).
at::Tensor distance(const at::Tensor& x, const at::Tensor& y, const std::string& metric, const at::Tensor& w);

// Folds the metric logits into one dot product: q (B, T, H, Dh), k (B, T, H, Dh) (already one key
// head per query head), alpha (H) > 0, w (H, Dh) for diag_mahalanobis, bias (B, T, H) a per-key
// additive logit bias or undefined → (q', k') of head dim Dh+1 with q'_i·k'_j = −α D(q_i, k_j) +
// bias_j + (a term constant along j, which softmax ignores). Attend with scale 1.
std::pair<at::Tensor, at::Tensor> metric_fold(const at::Tensor& q, const at::Tensor& k, const at::Tensor& alpha,
                                              const std::string& metric, const at::Tensor& w, const at::Tensor& bias);

// Ball pruning's soft key bias (B, T, H): −κ·softplus((‖k_j − o_h‖ − r_h)/τ), k (B, T, H, Dh),
// origin (H, Dh), radius (H) > 0.
// (The hard mask it approximates, ball_keep_mask, is in tests/model/variants/naive.h: no program uses it.)
at::Tensor ball_bias(const at::Tensor& k, const at::Tensor& origin, const at::Tensor& radius, double kappa, double tau);

// Mean over triples of ReLU(D(a, c) − D(a, b) − D(b, c)) per head: a, b, c (N, H, Dh) → (H).
at::Tensor triangle_violation(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c, const std::string& metric,
                              const at::Tensor& w);
// The penalty of one metric branch visit, Σ_h R_TI over `triples` key triples drawn from the B·T
// keys k (B, T, H, Dh) (fp32 scalar), in two parts so a forward need not build and copy the (fixed)
// indices every call: the triples' key indices (3, triples) int64 on the CPU, drawn from [0, N) by
// a generator seeded with the visit's seed (fixed positions, fresh keys every batch; the global RNG
// is left alone), and the penalty for indices already on k's device.
at::Tensor triangle_indices(int64_t N, int64_t triples, uint64_t seed);
at::Tensor triangle_penalty_at(const at::Tensor& k, const std::string& metric, const at::Tensor& w, const at::Tensor& idx);

}  // namespace golf::moa
