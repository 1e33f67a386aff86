// tests/model/variants/naive.h — the naive definitions the fast MoA and SMAT forms are tested
// against. They live with the tests, outside the counted code (artifact/code_manifest.txt): no program
// runs them.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "core/config.h"

namespace golf::moa {

// The reference: at::conv1d (groups = d, left pad k−1) run on every segment separately. For tests.
at::Tensor local_conv_naive(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& seg);

// The naive reference: softmax over j of −α D(q_i, k_j) + bias_j, restricted to j ≤ i in i's
// segment, times v (B, T, H, Dh) → (B, T, H, Dh). O(T²) memory. For tests.
at::Tensor metric_attention_naive(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& alpha,
                                  const std::string& metric, const at::Tensor& w, const at::Tensor& bias,
                                  const at::Tensor& seg);

// The hard mask ball pruning's soft bias (moa::ball_bias) approximates: key j kept for query i,
// head h when ‖k_j − o_h‖ ≤ r_h or j = i. k (B, T, H, Dh), origin (H, Dh), radius (H) → (B, H, T, T)
// bool, before causality. For tests (moved here from model/moa.cpp: no program uses it).
at::Tensor ball_keep_mask(const at::Tensor& k, const at::Tensor& origin, const at::Tensor& radius);

}  // namespace golf::moa

namespace golf::variants {

// The O(T²) definition: explicit S = ûûᵀ, masked to same segment and l ≤ j, row sums / n_j. For tests.
at::Tensor smat_centrality_naive(const at::Tensor& uhat, const at::Tensor& seg, const at::Tensor& pos,
                                 const Config& config);

}  // namespace golf::variants
