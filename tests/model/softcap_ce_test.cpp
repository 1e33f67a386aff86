// The softcap + cross-entropy loss head: the ATen reference against the formula written out in
// float64, its gradient against the analytic one, and (on a GPU) the fused kernel against the
// reference in fp32 and bf16. Also: torch and sentencepiece live in one process (both carry
// protobuf symbols).
#include "model/ops/softcap_ce.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include "core/tokenizer.h"
#include "tests/test_util.h"

namespace golf {
namespace {

constexpr double kCap = 15.0;

struct Batch {
  at::Tensor z, targets;
};
Batch random_batch(int64_t rows, int64_t vocab, at::ScalarType dtype, at::Device device) {
  at::manual_seed(1234);
  // Raw logits spread well past the cap, so tanh saturates for some of them.
  at::Tensor z = (at::randn({rows, vocab}, at::kDouble) * 20.0).to(device).to(dtype);
  at::Tensor targets = at::randint(vocab, {rows}, at::TensorOptions().dtype(at::kLong)).to(device);
  return {z, targets};
}

TEST(SoftcapCe, ReferenceEqualsTheFormulaInFloat64) {
  const auto b = random_batch(7, 300, at::kFloat, at::kCPU);
  const at::Tensor loss = ops::softcap_cross_entropy_reference(b.z, b.targets, kCap);
  const at::Tensor c = kCap * at::tanh(b.z.to(at::kDouble) / kCap);
  for (int64_t i = 0; i < 7; ++i) {
    const double lse = at::logsumexp(c[i], 0).item<double>();
    const double want = lse - c[i][b.targets[i].item<int64_t>()].item<double>();
    EXPECT_NEAR(loss[i].item<double>(), want, 1e-5 * std::max(1.0, std::abs(want))) << "row " << i;
  }
}

TEST(SoftcapCe, ReferenceGradientEqualsTheAnalyticGradient) {
  const auto b = random_batch(5, 64, at::kDouble, at::kCPU);
  const at::Tensor z = b.z.clone().requires_grad_(true);
  const at::Tensor w = at::rand({5}, at::kDouble);  // arbitrary upstream gradient per row
  (ops::softcap_cross_entropy(z, b.targets, kCap).to(at::kDouble) * w).sum().backward();
  const at::Tensor th = at::tanh(b.z / kCap);
  const at::Tensor p = at::softmax(kCap * th, 1);
  const at::Tensor onehot = at::one_hot(b.targets, 64).to(at::kDouble);
  const at::Tensor want = (p - onehot) * (1 - th * th) * w.unsqueeze(1);
  EXPECT_TRUE(at::allclose(z.grad(), want, 1e-5, 1e-6)) << (z.grad() - want).abs().max();
}

// R29's fused CE (model-and-training.md §1.10) works with ẑ = 60·σ(z/15) = 30·tanh(z/30) + 30 and
// drops the constant; with LOGIT_SOFTCAP=30 golf's head computes the same loss and gradient.
TEST(SoftcapCe, EqualsTheRecordsSigmoidFormAtCap30) {
  const auto b = random_batch(9, 257, at::kDouble, at::kCPU);
  const at::Tensor z = b.z.clone().requires_grad_(true);
  const at::Tensor ours = ops::softcap_cross_entropy_reference(z.to(at::kFloat), b.targets, 30.0).to(at::kDouble);
  const at::Tensor zhat = 60 * at::sigmoid(b.z / 15);
  const at::Tensor theirs = at::logsumexp(zhat, 1) - zhat.gather(1, b.targets.unsqueeze(1)).squeeze(1);
  EXPECT_TRUE(at::allclose(ours, theirs, 1e-5, 1e-5));
  ours.sum().backward();
  const at::Tensor sig = at::sigmoid(b.z / 15);
  const at::Tensor onehot = at::zeros_like(b.z).scatter_(1, b.targets.unsqueeze(1), 1.0);
  const at::Tensor dz = (at::softmax(zhat, 1) - onehot) * 60 * sig * (1 - sig) / 15;
  EXPECT_TRUE(at::allclose(z.grad(), dz, 1e-5, 1e-5));
}

TEST(SoftcapCe, FusedKernelMatchesReferenceOnGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    const auto b = random_batch(64, 8192, dtype, at::kCUDA);
    at::Tensor loss, dz;
    ops::softcap_cross_entropy_cuda(b.z, b.targets, kCap, loss, dz);
    const at::Tensor z_ref = b.z.clone().requires_grad_(true);
    const at::Tensor loss_ref = ops::softcap_cross_entropy_reference(z_ref, b.targets, kCap);
    loss_ref.sum().backward();
    const double tol = dtype == at::kFloat ? 1e-5 : 1e-2;
    EXPECT_TRUE(at::allclose(loss, loss_ref, tol, tol)) << "loss, dtype " << dtype;
    EXPECT_TRUE(at::allclose(dz.to(at::kFloat), z_ref.grad().to(at::kFloat), tol, tol * 1e-2)) << "dz, dtype " << dtype;
  }
}

// The autograd backward scales the kernel's dz in place by the upstream gradient: it must equal the
// out-of-place fp32 product rounded once (bit-equal), for an arbitrary per-row upstream gradient.
TEST(SoftcapCe, InPlaceBackwardScalingEqualsTheOutOfPlaceProductOnGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    const auto b = random_batch(64, 8192, dtype, at::kCUDA);
    const at::Tensor w = at::rand({64}, at::TensorOptions().device(at::kCUDA));
    const at::Tensor z = b.z.clone().requires_grad_(true);
    (ops::softcap_cross_entropy(z, b.targets, kCap) * w).sum().backward();
    at::Tensor loss, dz;
    ops::softcap_cross_entropy_cuda(b.z, b.targets, kCap, loss, dz);
    const at::Tensor want = (dz.to(at::kFloat) * w.unsqueeze(1)).to(dtype);
    EXPECT_TRUE(at::equal(z.grad(), want)) << dtype;
  }
}

TEST(SoftcapCe, TorchAndSentencepieceShareAProcess) {
  GOLF_REQUIRE_FILE(test::challenge_tokenizer());
  const auto tokenizer = Tokenizer::load(test::challenge_tokenizer());
  const auto ids = tokenizer.encode("Hello world");
  const at::Tensor t = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()));
  EXPECT_EQ(t.numel(), static_cast<int64_t>(ids.size()));
  EXPECT_GT(t.max().item<int64_t>(), 259);
}

}  // namespace
}  // namespace golf
