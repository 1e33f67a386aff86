// Varlen attention glue (model/varlen.h): the cu_seqlens computed from token ids, and the packed
// (total, H, Dh) layout, checked on the CPU through the per-segment reference against the masked
// SDPA reference (segment_attention), forward and every input gradient. On a GPU the flash and
// cuDNN backends run the same packing and are compared with segment_attention in bf16.
#include "model/varlen.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include "model/model.h"
#include "tests/test_util.h"

namespace golf {
namespace {

Config seg_config(int64_t W, int64_t doc_mask = 1) {
  Config c;
  c.train_seq_len = W;
  c.doc_mask = doc_mask;
  return c;
}

TEST(VarlenSegments, StartAtRowsBosAndEveryTrainSeqLenTokensPaddedWithEmptySegments) {
  // Row 0: BOS at 3 and 5, W = 4 cuts the document from 5 at 9; row 1 (starts at 12): no BOS,
  // cut at 16 and 20.
  at::Tensor tokens = at::full({2, 12}, 7, at::kLong);
  tokens[0][3] = 1, tokens[0][5] = 1;
  const VarlenSegments v = varlen_segments(tokens, seg_config(4), /*pad_multiple=*/4);
  EXPECT_EQ(v.cu_seqlens.scalar_type(), at::kInt);
  EXPECT_EQ(v.segments, 7);
  EXPECT_EQ(v.max_len, 4);
  const std::vector<int32_t> want = {0, 3, 5, 9, 12, 16, 20, 24, 24};  // 7 starts, padded to 8, then total
  ASSERT_EQ(v.cu_seqlens.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(v.cu_seqlens[static_cast<int64_t>(i)].item<int>(), want[i]) << i;
}

TEST(VarlenSegments, DenseRowsWithoutDocMaskCutOnlyEveryTrainSeqLen) {
  at::Tensor tokens = at::full({1, 10}, 7, at::kLong);
  tokens[0][2] = 1;
  const VarlenSegments v = varlen_segments(tokens, seg_config(4, /*doc_mask=*/0), 1);
  const std::vector<int32_t> want = {0, 4, 8, 10};
  ASSERT_EQ(v.cu_seqlens.numel(), 4);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(v.cu_seqlens[static_cast<int64_t>(i)].item<int>(), want[i]) << i;
  EXPECT_EQ(v.max_len, 4);
}

TEST(VarlenSegments, RejectsTokensOffTheCpu) {
  EXPECT_THROW(varlen_segments(at::zeros({3}, at::kLong), seg_config(4)), Error);
}

struct Case {
  int64_t B, T, W, doc_mask;
};

// segment_attention vs varlen_attention (varlen_ref) on the same inputs: outputs and dq, dk, dv.
// Returns the largest |Δ| over the four.
double max_difference(const Case& cs, at::ScalarType dtype) {
  at::manual_seed(5);
  const int64_t H = 4, Hkv = 2, Dh = 8;
  const auto opt = at::TensorOptions().dtype(dtype);
  const at::Tensor q0 = at::randn({cs.B, cs.T, H, Dh}, opt), k0 = at::randn({cs.B, cs.T, Hkv, Dh}, opt);
  const at::Tensor v0 = at::randn({cs.B, cs.T, Hkv, Dh}, opt), dy = at::randn({cs.B, cs.T, H, Dh}, opt);
  at::Tensor tokens = at::randint(4, 100, {cs.B, cs.T}, at::kLong);
  tokens[0][cs.T / 3] = 1, tokens[cs.B - 1][cs.T / 2] = 1, tokens[0][cs.T / 3 + 1] = 1;  // incl. a 1-token doc
  const Config c = seg_config(cs.W, cs.doc_mask);

  auto run = [&](bool varlen) {
    const at::Tensor q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true);
    const at::Tensor v = v0.clone().requires_grad_(true);
    at::Tensor y;
    if (varlen) {
      const VarlenSegments s = varlen_segments(tokens, c, 8);
      auto packed = [&](const at::Tensor& x) { return x.reshape({cs.B * cs.T, x.size(2), Dh}); };
      y = varlen_attention(packed(q), packed(k), packed(v), s.cu_seqlens, s.max_len, AttnBackend::varlen_ref)
              .view({cs.B, cs.T, H, Dh});
    } else {
      y = segment_attention(q, k, v, segments(tokens, c).first, cs.W);
    }
    (y * dy).sum().backward();
    return std::vector<at::Tensor>{y.detach(), q.grad(), k.grad(), v.grad()};
  };
  const auto a = run(false), b = run(true);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  return worst;
}

// The two compute the same softmax over the same keys in a different order (blocked masked
// matrices vs one causal matrix per segment), so they agree to rounding: float64 to 1e-12
// (observed ~1e-15), fp32 to 2e-5 (inputs ~N(0,1), sums of ≤ 16 terms, gradients ≲ 10).
TEST(VarlenAttention, ReferenceEqualsSegmentAttentionInFloat64) {
  for (const Case cs : {Case{2, 53, 16, 1}, Case{3, 12, 16, 1}, Case{2, 40, 16, 0}, Case{1, 16, 16, 0}})
    EXPECT_LE(max_difference(cs, at::kDouble), 1e-12) << "B " << cs.B << " T " << cs.T << " doc_mask " << cs.doc_mask;
}

TEST(VarlenAttention, ReferenceEqualsSegmentAttentionInFp32) {
  for (const Case cs : {Case{2, 53, 16, 1}, Case{3, 12, 16, 1}, Case{2, 40, 16, 0}})
    EXPECT_LE(max_difference(cs, at::kFloat), 2e-5) << "B " << cs.B << " T " << cs.T << " doc_mask " << cs.doc_mask;
}

TEST(VarlenAttention, RejectsCuSeqlensThatDoNotCoverTheTokens) {
  const at::Tensor q = at::randn({10, 2, 8}), k = at::randn({10, 1, 8});
  const at::Tensor cu = at::tensor(std::vector<int32_t>{0, 4, 8});
  EXPECT_THROW(varlen_attention(q, k, k, cu, 4, AttnBackend::varlen_ref), Error);
}

// On CUDA: flash and cuDNN varlen (bf16) against the masked reference in fp32 on the same bf16
// inputs. Tolerance 3e-2 absolute: bf16 keeps 8 bits (ε = 2⁻⁸ ≈ 0.004) and the outputs are
// averages of O(1) values; gradients are sums over ≤ W keys, hence the looser 6e-2.
TEST(VarlenAttention, FlashAndCudnnEqualSegmentAttentionOnGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(5);
  const int64_t B = 2, T = 1000, H = 8, Hkv = 4, Dh = 64, W = 256;
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const at::Tensor q0 = at::randn({B, T, H, Dh}, cuda), k0 = at::randn({B, T, Hkv, Dh}, cuda);
  const at::Tensor v0 = at::randn({B, T, Hkv, Dh}, cuda), dy = at::randn({B, T, H, Dh}, cuda);
  at::Tensor tokens = at::randint(4, 100, {B, T}, at::kLong);
  tokens[0][100] = 1, tokens[0][101] = 1, tokens[1][700] = 1;
  const Config c = seg_config(W);
  auto run = [&](std::optional<AttnBackend> backend) {
    const at::ScalarType dt = backend ? at::kBFloat16 : at::kFloat;
    const at::Tensor q = q0.to(at::kBFloat16).to(dt).requires_grad_(true);
    const at::Tensor k = k0.to(at::kBFloat16).to(dt).requires_grad_(true);
    const at::Tensor v = v0.to(at::kBFloat16).to(dt).requires_grad_(true);
    at::Tensor y;
    if (backend) {
      const VarlenSegments s = varlen_segments(tokens, c);
      auto packed = [&](const at::Tensor& x) { return x.reshape({B * T, x.size(2), Dh}); };
      y = varlen_attention(packed(q), packed(k), packed(v), s.cu_seqlens.to(at::kCUDA), s.max_len, *backend)
              .view({B, T, H, Dh});
    } else {
      y = segment_attention(q, k, v, segments(tokens.to(at::kCUDA), c).first, W);
    }
    (y.to(at::kFloat) * dy).sum().backward();
    return std::vector<at::Tensor>{y.detach().to(at::kFloat), q.grad().to(at::kFloat), k.grad().to(at::kFloat),
                                   v.grad().to(at::kFloat)};
  };
  const auto ref = run(std::nullopt);
  for (const AttnBackend backend : {AttnBackend::flash, AttnBackend::cudnn}) {
    const auto got = run(backend);
    const char* names[] = {"out", "dq", "dk", "dv"};
    for (size_t i = 0; i < ref.size(); ++i)
      EXPECT_LE((got[i] - ref[i]).abs().max().item<double>(), i == 0 ? 3e-2 : 6e-2)
          << attn_backend_name(backend) << " " << names[i];
  }
}

}  // namespace
}  // namespace golf
