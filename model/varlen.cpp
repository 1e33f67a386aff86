#include "model/varlen.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "model/model.h"

namespace golf {

VarlenSegments varlen_segments(const at::Tensor& tokens, const ModelConfig& cfg, int64_t pad_multiple, int64_t seq_len_cut) {
  if (tokens.dim() != 2 || !tokens.device().is_cpu())
    fail("varlen_segments: expected (B, T) tokens on the CPU, got {}-d on {}", tokens.dim(), tokens.device().str());
  const int64_t B = tokens.size(0), T = tokens.size(1), total = B * T;
  // The same segment definition as the masked reference: a segment starts where pos == 0.
  const at::Tensor pos = segments(tokens.to(at::kLong), cfg, seq_len_cut).second.reshape({total});
  const at::Tensor starts = at::nonzero(pos == 0).reshape({-1});  // ascending; starts[0] = 0
  VarlenSegments out;
  out.segments = starts.size(0);
  const int64_t padded = (out.segments + pad_multiple - 1) / pad_multiple * pad_multiple;
  at::Tensor cu = at::full({padded + 1}, total, at::TensorOptions().dtype(at::kInt));
  cu.narrow(0, 0, out.segments).copy_(starts);
  out.cu_seqlens = cu;
  out.max_len = std::min(T, seq_len_cut > 0 ? seq_len_cut : cfg.train_seq_len);
  return out;
}

namespace {
at::Tensor varlen_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu,
                            std::optional<double> scale) {
  // Host values: the CPU reads its own tensor; on CUDA (a test path only) this is a device→host read.
  const at::Tensor bounds = cu.is_cpu() ? cu.to(at::kLong) : cu.to(at::kCPU, at::kLong);
  const auto* b = bounds.const_data_ptr<int64_t>();
  std::vector<at::Tensor> outs;
  for (int64_t s = 0; s + 1 < bounds.size(0); ++s) {
    const int64_t start = b[s], len = b[s + 1] - b[s];
    if (len == 0) continue;  // padding
    auto heads_first = [&](const at::Tensor& x) { return x.narrow(0, start, len).transpose(0, 1).unsqueeze(0); };
    const at::Tensor y = at::scaled_dot_product_attention(heads_first(q), heads_first(k), heads_first(v), {}, 0.0,
                                                          /*is_causal=*/true, scale, /*enable_gqa=*/true);
    outs.push_back(y.squeeze(0).transpose(0, 1));  // (len, H, Dh)
  }
  at::Tensor y = at::cat(outs, 0);
  if (y.size(0) != q.size(0)) fail("varlen_attention: cu_seqlens covers {} of {} tokens", y.size(0), q.size(0));
  return y;
}
}  // namespace

at::Tensor varlen_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu,
                            int64_t max_len, AttnBackend backend, std::optional<double> scale) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && q.size(0) == k.size(0) && k.sizes() == v.sizes() &&
                  q.size(1) % k.size(1) == 0,
              "varlen_attention: expected q (total, H, Dh), k/v (total, Hkv, Dh), got ", q.sizes(), k.sizes(), v.sizes());
  switch (backend) {
    case AttnBackend::flash: {
      // FA2 varlen: contiguous (total, heads, Dh), int32 cu_seqlens on the device; max_q/max_k are
      // host ints (a static bound, so no sync and no per-batch recompilation).
      auto out = at::_flash_attention_forward(q.contiguous(), k.contiguous(), v.contiguous(), cu, cu, max_len, max_len,
                                              0.0, /*is_causal=*/true, /*return_debug_mask=*/false, scale);
      return std::get<0>(out);
    }
    case AttnBackend::cudnn: {
      const int64_t group = q.size(1) / k.size(1);
      auto expand = [&](const at::Tensor& x) { return group == 1 ? x.contiguous() : x.repeat_interleave(group, 1); };
      auto out = at::_cudnn_attention_forward(q.contiguous(), expand(k), expand(v), /*attn_bias=*/std::nullopt, cu, cu,
                                              max_len, max_len, /*compute_log_sumexp=*/q.requires_grad(), 0.0,
                                              /*is_causal=*/true, /*return_debug_mask=*/false, scale);
      return std::get<0>(out);
    }
    case AttnBackend::varlen_ref:
    case AttnBackend::sdpa:  // callers use segment_attention for sdpa; here it means "the reference"
      return varlen_reference(q, k, v, cu, scale);
  }
  fail("varlen_attention: unknown backend");
}

}  // namespace golf
