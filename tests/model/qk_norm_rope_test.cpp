// QK-RMSNorm + partial RoPE + q gain as one op (model/ops/qk_norm_rope.h) against the unfused chain
// it replaces: forward and both gradients (x and the gain) in fp32 and float64, central finite
// differences of the hand-written backward in float64, and on a GPU the CUDA kernels against the
// CPU op on the same values.
#include "model/ops/qk_norm_rope.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/cuda.h>

#include <cfloat>

#include "core/error.h"
#include "tests/test_util.h"

namespace golf {
namespace {

// RoPE tables as model/model.cpp builds them: positions (B, T) → cos, sin (B, T, 1, r/2).
std::pair<at::Tensor, at::Tensor> tables(int64_t B, int64_t T, int64_t r, at::ScalarType dtype) {
  const at::Tensor pos = at::randint(0, 3 * T, {B, T}, at::kLong).to(at::kDouble);
  const at::Tensor inv_freq = at::pow(10000.0, at::arange(r / 2, at::kDouble) * (-2.0 / static_cast<double>(r)));
  const at::Tensor ang = pos.unsqueeze(-1) * inv_freq;
  return {ang.cos().unsqueeze(2).to(dtype), ang.sin().unsqueeze(2).to(dtype)};
}

struct Grads {
  at::Tensor y, dx, dgain;
};
Grads run(bool fused, const at::Tensor& x0, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain0,
          int64_t r, const at::Tensor& dy) {
  const at::Tensor x = x0.clone().requires_grad_(true);
  const at::Tensor gain = gain0.defined() ? gain0.clone().requires_grad_(true) : at::Tensor();
  const at::Tensor y = fused ? ops::qk_norm_rope(x, cos, sin, gain, r) : ops::qk_norm_rope_reference(x, cos, sin, gain, r);
  (y * dy).sum().backward();
  return {y.detach(), x.grad(), gain.defined() ? gain.grad() : at::Tensor()};
}

double rel(const at::Tensor& a, const at::Tensor& b) {
  return ((a.to(at::kDouble) - b.to(at::kDouble)).abs().max() / b.to(at::kDouble).abs().max().clamp_min(1e-30))
      .item<double>();
}

// Shapes: the record head (Dh 64, RoPE on 16 dims), full RoPE, and a head dim that is not a
// multiple of the warp (48, RoPE 8); with the gain (q) and without (k).
struct Shape {
  int64_t H, Dh, r;
};
const Shape kShapes[] = {{4, 64, 16}, {2, 64, 64}, {3, 48, 8}};

// Tolerances: fp32 — the op takes n = x·inv once in fp32 and rotates, the chain rounds n, then
// each RoPE product; both ≈ a few ulp (1e-6 relative of the largest value); gradients through the
// norm's mean(dn ⊙ n) term sum Dh products in another order (1e-5). float64: 1e-13 (same
// formulas; the chain's RMS statistics are taken in float64 there too).
TEST(QkNormRope, EqualsTheChainForwardAndBothGradients) {
  at::manual_seed(13);
  for (const auto dtype : {at::kFloat, at::kDouble})
    for (const Shape& sh : kShapes)
      for (const bool with_gain : {true, false}) {
        const double tol = dtype == at::kFloat ? 1e-6 : 1e-13;
        const at::Tensor x = at::randn({2, 7, sh.H, sh.Dh}, dtype) * 3, dy = at::randn({2, 7, sh.H, sh.Dh}, dtype);
        const auto [cos, sin] = tables(2, 7, sh.r, dtype);
        const at::Tensor gain = with_gain ? at::rand({sh.H}, dtype) + 1.0 : at::Tensor();
        const Grads a = run(true, x, cos, sin, gain, sh.r, dy), b = run(false, x, cos, sin, gain, sh.r, dy);
        const std::string what = fmt::format("{} H{} Dh{} r{} gain {}", c10::toString(dtype), sh.H, sh.Dh, sh.r, with_gain);
        EXPECT_EQ(a.y.scalar_type(), dtype) << what;
        EXPECT_LE(rel(a.y, b.y), tol) << what;
        EXPECT_LE(rel(a.dx, b.dx), 10 * tol) << what;
        if (with_gain) {
          EXPECT_LE(rel(a.dgain, b.dgain), 10 * tol) << what;
        }
      }
}

// The hand-written backward against central differences of the forward (float64, h = 1e-6:
// truncation ≈ h²·|f'''| and cancellation ≈ 1e-16/h, both ≪ 1e-7).
TEST(QkNormRope, BackwardMatchesFiniteDifferencesInFloat64) {
  at::manual_seed(14);
  const int64_t H = 2, Dh = 12, r = 8;
  const at::Tensor x = at::randn({1, 3, H, Dh}, at::kDouble), dy = at::randn({1, 3, H, Dh}, at::kDouble);
  const auto [cos, sin] = tables(1, 3, r, at::kDouble);
  const at::Tensor gain = at::rand({H}, at::kDouble) + 0.5;
  const Grads g = run(true, x, cos, sin, gain, r, dy);
  auto f = [&](const at::Tensor& xv, const at::Tensor& gv) {
    return (ops::qk_norm_rope(xv, cos, sin, gv, r) * dy).sum().item<double>();
  };
  const double h = 1e-6;
  const at::Tensor xf = x.reshape({-1});
  for (int64_t i = 0; i < xf.numel(); ++i) {
    at::Tensor xp = x.clone(), xm = x.clone();
    xp.view({-1})[i] += h, xm.view({-1})[i] -= h;
    EXPECT_NEAR(g.dx.reshape({-1})[i].item<double>(), (f(xp, gain) - f(xm, gain)) / (2 * h), 1e-7) << "x " << i;
  }
  for (int64_t i = 0; i < H; ++i) {
    at::Tensor gp = gain.clone(), gm = gain.clone();
    gp[i] += h, gm[i] -= h;
    EXPECT_NEAR(g.dgain[i].item<double>(), (f(x, gp) - f(x, gm)) / (2 * h), 1e-7) << "gain " << i;
  }
}

TEST(QkNormRope, AZeroRowStaysZeroAndTheRestIsOnlyNormed) {
  // ε keeps a zero row finite; dims ≥ r are the normed values times the gain, untouched by RoPE.
  const auto [cos, sin] = tables(1, 2, 4, at::kFloat);
  at::Tensor x = at::randn({1, 2, 1, 8});
  x[0][0].zero_();
  const at::Tensor gain = at::full({1}, 2.0);
  const at::Tensor y = ops::qk_norm_rope(x, cos, sin, gain, 4);
  EXPECT_TRUE(at::equal(y[0][0], at::zeros({1, 8})));
  const at::Tensor n = x[0][1] * at::rsqrt(x[0][1].square().mean() + FLT_EPSILON);
  EXPECT_LE(rel(y[0][1].narrow(-1, 4, 4), 2 * n.narrow(-1, 4, 4)), 1e-6);
}

TEST(QkNormRope, BadShapesAreErrors) {
  const auto [cos, sin] = tables(1, 2, 4, at::kFloat);
  const at::Tensor x = at::randn({1, 2, 3, 8});
  EXPECT_THROW(ops::qk_norm_rope(x, cos, sin, at::ones({2}), 4), c10::Error);   // gain per head
  EXPECT_THROW(ops::qk_norm_rope(x, cos, sin, at::Tensor(), 6), c10::Error);    // tables for r = 4
  EXPECT_THROW(ops::qk_norm_rope(x.flatten(2), cos, sin, at::Tensor(), 4), c10::Error);
}

// CUDA kernels vs the CPU op on the same values. fp32: the same arithmetic in another summation
// order (warp shuffles) and with fused multiply-adds: 1e-5 relative. bf16 storage: one rounding of
// each output (2⁻⁸) on both sides of the comparison's inputs → 8e-3 for y; the gradients add
// the rounding of dy·g before the reduction: 1.6e-2.
TEST(QkNormRope, CudaKernelsEqualTheCpuOpOnGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(15);
  for (const auto dtype : {at::kFloat, at::kBFloat16})
    for (const Shape& sh : kShapes)
      for (const bool with_gain : {true, false}) {
        const at::Tensor x = (at::randn({3, 333, sh.H, sh.Dh}) * 3).to(dtype), dy = at::randn({3, 333, sh.H, sh.Dh}).to(dtype);
        const auto [cos, sin] = tables(3, 333, sh.r, dtype);
        const at::Tensor gain = with_gain ? (at::rand({sh.H}) + 1.0).to(dtype) : at::Tensor();
        auto f32 = [](const at::Tensor& t) { return t.defined() ? t.to(at::kFloat) : t; };
        auto gpu = [](const at::Tensor& t) { return t.defined() ? t.to(at::kCUDA) : t; };
        const Grads c = run(true, f32(x), f32(cos), f32(sin), f32(gain), sh.r, f32(dy));
        const Grads g = run(true, gpu(x), gpu(cos), gpu(sin), gpu(gain), sh.r, gpu(dy));
        const std::string what = fmt::format("{} H{} Dh{} r{} gain {}", c10::toString(dtype), sh.H, sh.Dh, sh.r, with_gain);
        const double tol = dtype == at::kFloat ? 1e-5 : 8e-3;
        EXPECT_EQ(g.y.scalar_type(), dtype) << what;
        EXPECT_LE(rel(g.y.cpu(), c.y), tol) << what;
        EXPECT_LE(rel(g.dx.cpu(), c.dx), 2 * tol) << what;
        if (with_gain) {
          EXPECT_LE(rel(g.dgain.cpu(), c.dgain), 2 * tol) << what;
        }
      }
}

}  // namespace
}  // namespace golf
