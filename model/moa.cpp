#include "model/moa.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>

namespace golf::moa {

std::vector<std::string> branches(const ModelConfig& cfg) {
  std::vector<std::string> out;
  for (const char* b : {"conv", "mha", "mqa", "chan"})
    if (has_branch(cfg, b)) out.emplace_back(b);
  return out;
}

bool has_branch(const ModelConfig& cfg, const std::string& branch) {
  const std::string& list = cfg.moa_branches;
  for (size_t start = 0;;) {
    const size_t comma = list.find(',', start);
    if (list.compare(start, comma == std::string::npos ? std::string::npos : comma - start, branch) == 0) return true;
    if (comma == std::string::npos) return false;
    start = comma + 1;
  }
}

double inverse_softplus(double y) { return y > 20 ? y : std::log(std::expm1(y)); }

at::Tensor local_conv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& pos) {
  const int64_t T = x.size(1), k = weight.size(1);
  at::Tensor y = x * weight.select(1, k - 1);  // m = 0: the token itself
  for (int64_t m = 1; m < k && m < T; ++m) {
    const at::Tensor shifted = at::constant_pad_nd(x.narrow(1, 0, T - m), {0, 0, m, 0});  // x_{t−m}, 0 before the row
    const at::Tensor same_segment = (pos >= m).unsqueeze(-1).to(x.scalar_type());         // t−m in t's segment
    y = y + shifted * same_segment * weight.select(1, k - 1 - m);
  }
  return y;
}

at::Tensor distance(const at::Tensor& x, const at::Tensor& y, const std::string& metric, const at::Tensor& w) {
  if (metric == "cosine") {
    const at::Tensor xn = x / x.norm(2, -1, true).clamp_min(1e-12), yn = y / y.norm(2, -1, true).clamp_min(1e-12);
    return 1 - (xn * yn).sum(-1);
  }
  at::Tensor sq = (x - y).square();
  if (metric == "diag_mahalanobis") sq = sq * w;
  return sq.sum(-1);
}

std::pair<at::Tensor, at::Tensor> metric_fold(const at::Tensor& q, const at::Tensor& k, const at::Tensor& alpha,
                                              const std::string& metric, const at::Tensor& w, const at::Tensor& bias) {
  const int64_t H = q.size(2);
  const at::Tensor a = alpha.view({1, 1, H, 1}).to(q.scalar_type());
  const at::Tensor ones = at::ones_like(q.narrow(-1, 0, 1));
  const at::Tensor b = bias.defined() ? bias.unsqueeze(-1).to(k.scalar_type()) : at::zeros_like(k.narrow(-1, 0, 1));
  if (metric == "cosine") {  // −α(1 − cos) = α q̂·k̂ − α
    const at::Tensor qn = q / q.norm(2, -1, true).clamp_min(1e-12), kn = k / k.norm(2, -1, true).clamp_min(1e-12);
    return {at::cat({a * qn, ones}, -1), at::cat({kn, b}, -1)};
  }
  at::Tensor qq = q, kk = k;
  if (metric == "diag_mahalanobis") {  // the l2 form on √w ⊙ q, √w ⊙ k
    const at::Tensor s = w.sqrt().view({1, 1, H, -1}).to(q.scalar_type());
    qq = q * s, kk = k * s;
  }
  // −α‖q − k‖² = 2α q·k − α‖k‖² − α‖q‖² (the last is constant along the row)
  return {at::cat({2 * a * qq, ones}, -1), at::cat({kk, b - a * kk.square().sum(-1, true)}, -1)};
}

at::Tensor ball_bias(const at::Tensor& k, const at::Tensor& origin, const at::Tensor& radius, double kappa, double tau) {
  const at::Tensor dist = (k - origin).norm(2, -1);  // (B, T, H)
  return -kappa * at::softplus((dist - radius) / tau);
}

at::Tensor triangle_violation(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c, const std::string& metric,
                              const at::Tensor& w) {
  return at::relu(distance(a, c, metric, w) - distance(a, b, metric, w) - distance(b, c, metric, w)).mean(0);
}

at::Tensor triangle_indices(int64_t N, int64_t triples, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(N, {3, triples}, gen, at::TensorOptions().dtype(at::kLong));
}

at::Tensor triangle_penalty_at(const at::Tensor& k, const std::string& metric, const at::Tensor& w, const at::Tensor& idx) {
  const int64_t N = k.size(0) * k.size(1);
  const at::Tensor flat = k.reshape({N, k.size(2), k.size(3)}).to(at::kFloat);
  const at::Tensor wf = w.defined() ? w.to(at::kFloat) : w;
  return triangle_violation(flat.index_select(0, idx[0]), flat.index_select(0, idx[1]), flat.index_select(0, idx[2]),
                            metric, wf)
      .sum();
}

}  // namespace golf::moa
