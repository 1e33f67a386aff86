// model/variants.h — the math of the seed attention variants that model/model.cpp switches on
// (docs/reference/seed-techniques.md §1, §3, §5.1; twin: tests/reference/golf_model.py).
//
//   SMAT (SMAT_USE_S / SMAT_USE_G): û_t = W_s h_t / max(‖W_s h_t‖, 1e-6), S_ij = û_i·û_j (one S per
//     layer, shared by the heads). Logits z_ij = q_i·k_j/√Dh + λ S_ij, λ = softplus(λ_raw), computed
//     by folding λS into q and k (smat_fold). Centrality c_j = (1/n_j) Σ_{l ≤ j, same segment} S_jl
//     as a running sum (smat_centrality). Value gate G_j = σ(w_g·h_j + μ c_j + β) multiplies v_j.
//   Value residual (VALUE_RESIDUAL): v ← a·v0 + b·v on layers ≥ 1 (in Model::attention).
//   Gated attention (GATED_ATTENTION): y_h ← σ(W h + b)_h · y_h (in Model::attention).
//   Head gate (HEAD_GATE_ENABLED): y_h ← γ_h · y_h, one learned scalar per layer and head (Model::attn_gates).
//   BigramHash (BIGRAM_HASH): b_t = s · P · E[bigram_hash_ids(tokens)_t] added to the embedding.
//
// Parameter names (per layer i; created only when the switch is on):
//   blocks.{i}.attn.smat_ws.weight   (d_s, d)  W_s          SMAT_USE_S, or SMAT_USE_G with centrality kept
//   blocks.{i}.attn.smat_lambda_raw  (1)       λ_raw        SMAT_USE_S
//   blocks.{i}.attn.smat_gate.weight (1, d)    w_g = 0      SMAT_USE_G
//   blocks.{i}.attn.smat_gate.bias   (1)       β = 3        SMAT_USE_G
//   blocks.{i}.attn.smat_mu          (1)       μ = 0        SMAT_USE_G with centrality kept
//   blocks.{i}.attn.vr_lambda        (2)       (a, b) = ½   VALUE_RESIDUAL, layers i ≥ 1 only
//   blocks.{i}.attn.attn_gate.weight (H, d)    0            GATED_ATTENTION
//   blocks.{i}.attn.attn_gate.bias   (H)       4            GATED_ATTENTION
//   blocks.{i}.attn.head_gate        (H)       γ = 1        HEAD_GATE_ENABLED
//   bigram.embed.weight              (BUCKETS, BIGRAM_DIM)  0
//   bigram.proj.weight               (d, BIGRAM_DIM)        orthogonal/√(2L), only if BIGRAM_DIM ≠ d
//   bigram.scale                     (1)                    0.05
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string_view>

#include "core/config.h"

namespace golf::variants {

// Whether SMAT_ABLATION (a comma-separated list, validated by validate()) holds `item`.
bool smat_ablation_has(const ModelConfig& config, std::string_view item);

// SMAT semantic unit vectors: h (B, T, d), ws (d_s, d) → û (B, T, d_s), in h's dtype.
at::Tensor smat_unit(const at::Tensor& h, const at::Tensor& ws);
// SMAT_ABLATION=random_s: a fixed Gaussian R (d_s, d) (fp32 CPU, seeded by the layer) in place of
// W_s: S keeps its range and symmetry and loses the learned semantics. The model moves it to its
// device once (Model::smat_random_projections_) and calls smat_unit(h, R).
at::Tensor smat_random_projection(int64_t ds, int64_t d, int layer);

// Σ_{l ≤ t, l in t's segment} x_l for x (B, T, D), pos (B, T) the position inside the segment
// (model/model.h segments()): one cumsum over T and a subtraction at the segment start, in fp32.
at::Tensor segment_prefix_sum(const at::Tensor& x, const at::Tensor& pos);
// Causal semantic centrality c_j = û_j · (Σ_{l ≤ j in j's segment} û_l) / n_j (B, T) fp32, with
// n_j = TRAIN_SEQ_LEN (SMAT_CENTRALITY=seq) or pos_j + 1 (count). O(T·d_s).
at::Tensor smat_centrality(const at::Tensor& uhat, const at::Tensor& pos, const ModelConfig& config);

// Folds λS into the attention logits: q (B, T, H, Dh), k (B, T, Hkv, Dh), û (B, T, d_s), λ scalar
// tensor → q' = [q, λ√Dh·û] (B, T, H, Dh+d_s), k' = [k, û] (B, T, Hkv, Dh+d_s). Attention over
// (q', k') with scale 1/√Dh gives logits q·k/√Dh + λ û_i·û_j exactly.
std::pair<at::Tensor, at::Tensor> smat_fold(const at::Tensor& q, const at::Tensor& k, const at::Tensor& uhat,
                                            const at::Tensor& lambda);

// BigramHash bucket ids (B, T) int64: ((36313·tok_t) XOR (27191·tok_{t−1})) mod (buckets − 1), and
// the reserved bucket buckets − 1 at t = 0 and wherever tok_t is BOS (so a document never hashes
// in the last token of the one before it). Computed in int64: equal to the records' int32 hash for
// token ids ≤ 59 138.
at::Tensor bigram_hash_ids(const at::Tensor& tokens, int64_t buckets, int64_t bos_token_id);

}  // namespace golf::variants
