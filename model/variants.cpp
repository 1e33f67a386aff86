#include "model/variants.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace golf::variants {

namespace {
at::Tensor unit(const at::Tensor& s) {  // s / max(‖s‖, 1e-6) over the last dim
  return s / s.norm(2, -1, /*keepdim=*/true).clamp_min(1e-6);
}
}  // namespace

bool smat_ablation_has(const ModelConfig& cfg, std::string_view item) {
  const std::string_view list = cfg.smat_ablation;
  for (size_t start = 0;;) {
    const size_t comma = list.find(',', start);
    if (list.substr(start, comma - start) == item) return true;
    if (comma == std::string_view::npos) return false;
    start = comma + 1;
  }
}

at::Tensor smat_unit(const at::Tensor& h, const at::Tensor& ws) { return unit(at::matmul(h, ws.t())); }

at::Tensor smat_random_projection(int64_t ds, int64_t d, int layer) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(0x5EED0000 + layer));
  return at::randn({ds, d}, gen, at::TensorOptions().dtype(at::kFloat));
}

at::Tensor segment_prefix_sum(const at::Tensor& x, const at::Tensor& pos) {
  const int64_t T = x.size(1);
  const at::Tensor cs = x.to(at::kFloat).cumsum(1);                                          // (B, T, D)
  // Index of the token before the segment start: t − pos_t − 1 (−1 when the segment starts at 0).
  const at::Tensor before = at::arange(T, pos.options()).unsqueeze(0) - pos - 1;           // (B, T)
  const at::Tensor idx = before.clamp_min(0).unsqueeze(-1).expand({-1, -1, x.size(2)});
  const at::Tensor base = cs.gather(1, idx) * (before >= 0).unsqueeze(-1).to(at::kFloat);
  return cs - base;
}

namespace {
at::Tensor centrality_divisor(const at::Tensor& pos, const ModelConfig& cfg) {  // n_j (B, T) fp32
  if (cfg.smat_centrality == "count") return (pos + 1).to(at::kFloat);
  return at::full(pos.sizes(), static_cast<double>(cfg.train_seq_len), pos.options().dtype(at::kFloat));
}
}  // namespace

at::Tensor smat_centrality(const at::Tensor& uhat, const at::Tensor& pos, const ModelConfig& cfg) {
  const at::Tensor prefix = segment_prefix_sum(uhat, pos);                                  // (B, T, d_s)
  return (uhat.to(at::kFloat) * prefix).sum(-1) / centrality_divisor(pos, cfg);
}

std::pair<at::Tensor, at::Tensor> smat_fold(const at::Tensor& q, const at::Tensor& k, const at::Tensor& uhat,
                                            const at::Tensor& lambda) {
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), Dh = q.size(3), Hkv = k.size(2), ds = uhat.size(-1);
  const at::Tensor u = uhat.unsqueeze(2);                                                    // (B, T, 1, d_s)
  const at::Tensor qa = (u * (lambda * std::sqrt(static_cast<double>(Dh)))).expand({B, T, H, ds});
  return {at::cat({q, qa}, -1), at::cat({k, u.expand({B, T, Hkv, ds})}, -1)};
}

at::Tensor bigram_hash_ids(const at::Tensor& tokens, int64_t buckets, int64_t bos) {
  const int64_t T = tokens.size(1);
  const at::Tensor cur = tokens.to(at::kLong);
  const at::Tensor prev = at::cat({at::zeros_like(cur.narrow(1, 0, 1)), cur.narrow(1, 0, T - 1)}, 1);
  const at::Tensor hashed = at::bitwise_xor(cur * 36313, prev * 27191).remainder(buckets - 1);
  at::Tensor reserved = cur == bos;
  reserved.narrow(1, 0, 1).fill_(true);
  return at::where(reserved, at::full_like(hashed, buckets - 1), hashed);
}

}  // namespace golf::variants
