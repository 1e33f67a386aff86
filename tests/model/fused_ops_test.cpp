// Fused elementwise ops (model/ops/fused.h) against the plain ATen chains they replace: forward and
// autograd backward in fp32 and float64, a finite-difference check of the hand-written backward
// in float64, and on a GPU the CUDA kernels against the CPU formula. Also the GOLF_* switches.
#include "model/ops/fused.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <cfloat>
#include <cstdlib>
#include <functional>

#include "model/fast_paths.h"
#include "model/model.h"
#include "tests/test_util.h"

namespace golf {
namespace {

// (forward, d(Σ y·dy)/dx) of f at x.
std::pair<at::Tensor, at::Tensor> value_and_grad(const std::function<at::Tensor(const at::Tensor&)>& f,
                                                 const at::Tensor& x0, const at::Tensor& dy) {
  const at::Tensor x = x0.clone().requires_grad_(true);
  const at::Tensor y = f(x);
  (y * dy).sum().backward();
  return {y.detach(), x.grad()};
}

double rel(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

// at::rms_norm with eps = FLT_EPSILON computes the same fp32 statistics as golf::rms_norm; the two
// differ only in rounding order: ≤ 4 ulp relative in fp32 (1e-6). golf::rms_norm takes its
// statistics in fp32 whatever the input, so in float64 the fused op is compared with the formula
// x·rsqrt(mean(x²) + ε) written out in float64 instead (1e-14).
TEST(RmsNormFused, EqualsTheChainForwardAndBackward) {
  at::manual_seed(3);
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    const double tol = dtype == at::kFloat ? 1e-6 : 1e-14;
    auto reference = [&](const at::Tensor& t) {
      if (dtype == at::kFloat) return rms_norm(t);
      return t * at::rsqrt(t.pow(2).mean(-1, /*keepdim=*/true) + static_cast<double>(FLT_EPSILON));
    };
    for (const double scale : {1.0, 1e-4, 300.0}) {  // small rows make eps matter
      const at::Tensor x = at::randn({3, 5, 48}, dtype) * scale, dy = at::randn({3, 5, 48}, dtype);
      const auto [y_ref, g_ref] = value_and_grad(reference, x, dy);
      const auto [y, g] = value_and_grad(ops::rms_norm_fused, x, dy);
      EXPECT_EQ(y.scalar_type(), dtype);
      EXPECT_LE(rel(y, y_ref), tol) << dtype << " scale " << scale;
      EXPECT_LE(rel(g, g_ref), 10 * tol) << dtype << " scale " << scale;
    }
  }
}

TEST(RmsNormFused, UsesFp32EpsilonOnAZeroRow) {
  const at::Tensor x = at::zeros({1, 8});
  EXPECT_TRUE(at::equal(ops::rms_norm_fused(x), x));
  const at::Tensor tiny = at::full({1, 4}, 1e-4);
  // 1e-4 / sqrt(1e-8 + 2^-23) ≈ 0.0345: eps must be FLT_EPSILON, not at::rms_norm's default
  EXPECT_NEAR(ops::rms_norm_fused(tiny)[0][0].item<double>(), 1e-4 / std::sqrt(1e-8 + FLT_EPSILON), 1e-6);
}

// On the CPU the op runs the chain's kernels (recomputing l in backward): forward bit-equal;
// backward the same products up to exact factors of 2, bound here at 1 ulp (rel 1e-6 fp32).
TEST(LeakyReluSq, EqualsTheChainForwardAndBackward) {
  at::manual_seed(4);
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    at::Tensor x = at::randn({4, 7, 33}, dtype);
    x[0][0][0] = 0.0;  // the kink: both give y = 0, dy/dx = 0
    const at::Tensor dy = at::randn_like(x);
    const auto [y_ref, g_ref] = value_and_grad(ops::leaky_relu_sq_reference, x, dy);
    const auto [y, g] = value_and_grad(ops::leaky_relu_sq, x, dy);
    EXPECT_TRUE(at::equal(y, y_ref)) << dtype;
    EXPECT_LE(rel(g, g_ref), dtype == at::kFloat ? 1e-6 : 1e-15) << dtype;
  }
}

TEST(LeakyReluSq, BackwardMatchesFiniteDifferencesInFloat64) {
  at::manual_seed(6);
  at::Tensor x = at::randn({40}, at::kDouble);
  x = at::where(x.abs() < 1e-2, x + 0.1, x);  // keep central differences off the kink
  const at::Tensor dy = at::randn({40}, at::kDouble);
  const at::Tensor g = value_and_grad(ops::leaky_relu_sq, x, dy).second;
  const double h = 1e-6;
  for (int64_t i = 0; i < 40; ++i) {
    at::Tensor xp = x.clone(), xm = x.clone();
    xp[i] += h, xm[i] -= h;
    const double fd = ((ops::leaky_relu_sq(xp) - ops::leaky_relu_sq(xm)) * dy).sum().item<double>() / (2 * h);
    EXPECT_NEAR(g[i].item<double>(), fd, 1e-7) << "element " << i;
  }
}

// CUDA kernels vs the CPU formula on the same values: fp32 1e-6 relative (same arithmetic, fused
// multiply-adds), bf16 one rounding of the result (2⁻⁸ relative).
TEST(LeakyReluSq, CudaKernelsEqualTheCpuFormulaOnGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(8);
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    const at::Tensor x = at::randn({3, 1000, 37}).to(dtype), dy = at::randn({3, 1000, 37}).to(dtype);
    const auto [y_cpu, g_cpu] = value_and_grad(ops::leaky_relu_sq, x.to(at::kFloat), dy.to(at::kFloat));
    const auto [y_gpu, g_gpu] = value_and_grad(ops::leaky_relu_sq, x.to(at::kCUDA), dy.to(at::kCUDA));
    const double tol = dtype == at::kFloat ? 1e-6 : 8e-3;
    EXPECT_LE(rel(y_gpu.cpu().to(at::kFloat), y_cpu), tol) << dtype;
    EXPECT_LE(rel(g_gpu.cpu().to(at::kFloat), g_cpu), tol) << dtype;
  }
}

TEST(RmsNormFused, EqualsTheChainOnGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    const at::Tensor x = (at::randn({64, 512}) * 3).to(dtype).to(at::kCUDA), dy = at::randn({64, 512}).to(dtype).to(at::kCUDA);
    const auto [y_ref, g_ref] = value_and_grad([](const at::Tensor& t) { return rms_norm(t); }, x, dy);
    const auto [y, g] = value_and_grad(ops::rms_norm_fused, x, dy);
    const double tol = dtype == at::kFloat ? 1e-5 : 1.6e-2;  // bf16: 2 roundings of the output
    EXPECT_LE(rel(y.to(at::kFloat), y_ref.to(at::kFloat)), tol) << dtype;
    EXPECT_LE(rel(g.to(at::kFloat), g_ref.to(at::kFloat)), 2 * tol) << dtype;
  }
}

// ---- switches ----
struct EnvVar {  // sets a variable for one scope
  std::string name;
  EnvVar(std::string n, const char* value) : name(std::move(n)) { ::setenv(name.c_str(), value, 1); }
  ~EnvVar() { ::unsetenv(name.c_str()); }
};

TEST(FastPaths, DefaultsPickFlashOnCudaAndTheMaskedReferenceOnTheCpu) {
  EXPECT_EQ(fast_paths_from_env(true).attn, AttnBackend::flash);
  EXPECT_EQ(fast_paths_from_env(false).attn, AttnBackend::sdpa);
  const FastPaths f = fast_paths_from_env(false);
  EXPECT_TRUE(f.fused_ops && f.bank_unbind && f.foreach_optim && f.no_sync);
}

TEST(FastPaths, CudaOnlyBackendsFallBackOnTheCpu) {
  for (const char* v : {"flash", "cudnn"}) {
    EnvVar e("GOLF_ATTN", v);
    EXPECT_EQ(fast_paths_from_env(false).attn, AttnBackend::sdpa) << v;
  }
  EnvVar e("GOLF_ATTN", "cudnn");
  EXPECT_EQ(fast_paths_from_env(true).attn, AttnBackend::cudnn);
}

TEST(FastPaths, SwitchesReadZeroAndOne) {
  EnvVar a("GOLF_FUSED_OPS", "0"), b("GOLF_ATTN", "varlen_ref"), c("GOLF_NO_SYNC", "0");
  const FastPaths f = fast_paths_from_env(false);
  EXPECT_FALSE(f.fused_ops);
  EXPECT_FALSE(f.no_sync);
  EXPECT_TRUE(f.bank_unbind);
  EXPECT_EQ(f.attn, AttnBackend::varlen_ref);
  EXPECT_EQ(describe(f), "fast_paths: attn:varlen_ref fused_ops:0 bank_unbind:1 foreach_optim:1 no_sync:0 fused_qk:0 fused_mix:0 clock_sync_every:16 cuda_graphs:0");
}

TEST(FastPaths, ABadValueNamesTheVariable) {
  {
    EnvVar e("GOLF_ATTN", "fa3");
    try {
      fast_paths_from_env(true);
      FAIL() << "accepted GOLF_ATTN=fa3";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("GOLF_ATTN=fa3"), std::string::npos) << err.what();
    }
  }
  EnvVar e("GOLF_BANK_UNBIND", "yes");
  EXPECT_THROW(fast_paths_from_env(false), Error);
}

TEST(FastPaths, TheClockSyncIntervalIsAWholeNumberOfStepsAndTheNewSwitchesDefaultOff) {
  const FastPaths d = fast_paths_from_env(true);
  EXPECT_EQ(d.clock_sync_every, 16);
  EXPECT_FALSE(d.fused_qk);
  EXPECT_FALSE(d.fused_mix);
  EXPECT_FALSE(d.cuda_graphs);
  EXPECT_EQ(plain_paths().clock_sync_every, 1);
  {
    EnvVar e("GOLF_CLOCK_SYNC_EVERY", "4");
    EXPECT_EQ(fast_paths_from_env(false).clock_sync_every, 4);
  }
  for (const char* bad : {"0", "-3", "4x", "many"}) {
    EnvVar e("GOLF_CLOCK_SYNC_EVERY", bad);
    try {
      fast_paths_from_env(false);
      ADD_FAILURE() << "accepted GOLF_CLOCK_SYNC_EVERY=" << bad;
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find(std::string("GOLF_CLOCK_SYNC_EVERY=") + bad), std::string::npos) << err.what();
    }
  }
  EnvVar q("GOLF_FUSED_QK", "1"), g("GOLF_CUDA_GRAPHS", "1"), m("GOLF_FUSED_MIX", "1");
  EXPECT_TRUE(fast_paths_from_env(false).fused_qk);
  EXPECT_TRUE(fast_paths_from_env(false).fused_mix);
  EXPECT_FALSE(plain_paths().fused_mix);
  EXPECT_FALSE(fast_paths_from_env(false).cuda_graphs) << "graphs resolve to the eager step on the CPU";
  EXPECT_TRUE(fast_paths_from_env(true).cuda_graphs);
}

}  // namespace
}  // namespace golf
