// tests/model/variants/naive.cpp — see naive.h.
#include "tests/model/variants/naive.h"

#include <limits>

#include "model/moa.h"

namespace golf::moa {

at::Tensor local_conv_naive(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& seg) {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), k = weight.size(1);
  at::Tensor out = at::zeros_like(x);
  const at::Tensor seg_cpu = seg.to(at::kCPU);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t start = 0; start < T;) {
      int64_t end = start + 1;
      while (end < T && seg_cpu[b][end].item<int64_t>() == seg_cpu[b][start].item<int64_t>()) ++end;
      const at::Tensor piece = x[b].narrow(0, start, end - start).t().unsqueeze(0);  // (1, d, len)
      const at::Tensor y = at::conv1d(at::constant_pad_nd(piece, {k - 1, 0}), weight.view({d, 1, k}), at::Tensor(), at::IntArrayRef{1},
                                     at::IntArrayRef{0}, at::IntArrayRef{1}, d);
      out[b].narrow(0, start, end - start).copy_(y[0].t());
      start = end;
    }
  }
  return out;
}

at::Tensor metric_attention_naive(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& alpha,
                                  const std::string& metric, const at::Tensor& w, const at::Tensor& bias,
                                  const at::Tensor& seg) {
  const int64_t T = q.size(1);
  const at::Tensor D = distance(q.unsqueeze(2), k.unsqueeze(1), metric, w);  // (B, Ti, Tj, H)
  at::Tensor logits = -alpha * D;
  if (bias.defined()) logits = logits + bias.unsqueeze(1);
  const at::Tensor causal = at::ones({T, T}, seg.options().dtype(at::kBool)).tril();
  const at::Tensor allowed = (seg.unsqueeze(2) == seg.unsqueeze(1)).logical_and(causal).unsqueeze(-1);
  const at::Tensor p = at::softmax(logits.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity()), 2);
  return at::einsum("bijh,bjhd->bihd", {p, v});
}

at::Tensor ball_keep_mask(const at::Tensor& k, const at::Tensor& origin, const at::Tensor& radius) {
  const int64_t B = k.size(0), T = k.size(1), H = k.size(2);
  const at::Tensor inside = ((k - origin).norm(2, -1) <= radius).permute({0, 2, 1}).unsqueeze(2);  // (B, H, 1, Tj)
  const at::Tensor diag = at::eye(T, k.options().dtype(at::kBool)).view({1, 1, T, T});
  return inside.expand({B, H, T, T}).logical_or(diag);
}

}  // namespace golf::moa

namespace golf::variants {

at::Tensor smat_centrality_naive(const at::Tensor& uhat, const at::Tensor& seg, const at::Tensor& pos,
                                 const Config& cfg) {
  const int64_t T = uhat.size(1);
  const at::Tensor u = uhat.to(at::kFloat);
  const at::Tensor divisor = cfg.smat_centrality == "count"  // n_j, as SMAT_CENTRALITY says
                                 ? (pos + 1).to(at::kFloat)
                                 : at::full(pos.sizes(), static_cast<double>(cfg.train_seq_len), pos.options().dtype(at::kFloat));
  const at::Tensor S = at::matmul(u, u.transpose(1, 2));                                     // (B, T, T)
  const at::Tensor causal = at::ones({T, T}, seg.options().dtype(at::kBool)).tril();
  const at::Tensor allowed = (seg.unsqueeze(2) == seg.unsqueeze(1)).logical_and(causal);
  return (S * allowed.to(at::kFloat)).sum(-1) / divisor;
}

}  // namespace golf::variants
