// The optimizer's fast paths (GOLF_FOREACH_OPTIM) against its plain path on the CPU, where the
// same multi-tensor kernels exist: clipping by _foreach_norm + device coefficient + _foreach_mul_,
// AdamW by _fused_adamw_ with a device learning rate, EMA by _foreach_lerp_. Two copies of one
// live model get the same gradient; after three rounds of clip, optimizer step and EMA update on
// that gradient, their weights, optimizer state and EMA must agree. (The fixed gradient isolates
// the optimizer: the twin tests already cover fast paths through full training steps.) With
// GOLF_FOREACH_OPTIM the step's learning rates and Muon momentum come from device tensors and the
// step reads nothing back to the host (tests/host_reads.h).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/cuda.h>

#include "model/fast_paths.h"
#include "model/model.h"
#include "tests/host_reads.h"
#include "tests/live_model.h"
#include "tests/test_util.h"
#include "tests/train/fast_path_setup.h"
#include "train/optim.h"

namespace golf {
namespace {

struct TrainRun {
  std::map<std::string, at::Tensor> weights, state, ema;
  std::vector<double> norms;
};

TrainRun train(bool foreach_optim, double clip) {
  Config c = test::small_model_config();
  c.grad_clip_norm = clip;
  c.adam_wd = 0.02, c.embed_wd = 0.01;  // exercise the decoupled decay in both groups
  const auto setup = test::train_setup(c, test::plain_with(&FastPaths::foreach_optim, foreach_optim));
  auto& [m, opt, ema] = *setup;
  TrainRun r;
  at::manual_seed(99);
  const at::Tensor x = at::randint(4, 300, {2, 33}, at::kLong);
  m.loss(x.narrow(1, 0, 32), x.narrow(1, 1, 32), true).backward();
  for (int64_t step = 0; step < 3; ++step) {
    r.norms.push_back(opt.clip_gradients());
    opt.step(step, step == 2 ? 0.5 : 1.0);
    ema.update(m);
  }
  r.weights = m.state();
  r.state = opt.state();
  r.ema = ema.weights();
  return r;
}

double rel(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-6)).item<double>();
}

// Tolerances: each fused kernel rounds differently from the ATen chain (lerp vs mul+add, fused
// bias corrections): ~1 ulp per step on O(1) values. The gradient norm is an fp32 sum over ~10⁵
// squares in a different order (norm of per-tensor norms vs one sum of per-tensor sums): observed
// 1.2e-6 relative, bounded here by 1e-5 (≈ √n·ε_fp32·few); the clip coefficient inherits it, so
// every clipped gradient, Adam moment and Muon update differs by ~1e-6 relative: 1e-5 relative of
// each tensor's scale (the twin tests' optimizer bar).
void expect_equal(const std::map<std::string, at::Tensor>& a, const std::map<std::string, at::Tensor>& b,
                  const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [name, t] : a) EXPECT_LE(rel(t.to(at::kDouble), b.at(name).to(at::kDouble)), 1e-5) << what << " " << name;
}

TEST(OptimizerFastPath, ForeachClipFusedAdamWAndLerpEmaEqualThePlainPath) {
  for (const double clip : {0.0, 0.3}) {  // 0.3 is below the live model's gradient norm: clipping bites
    const TrainRun plain = train(false, clip), fast = train(true, clip);
    for (size_t i = 0; i < plain.norms.size(); ++i) EXPECT_NEAR(fast.norms[i], plain.norms[i], 1e-5 * plain.norms[0]);
    if (clip > 0) {
      EXPECT_GT(plain.norms[0], clip) << "the test must clip";
    }
    expect_equal(fast.weights, plain.weights, "weights");
    expect_equal(fast.state, plain.state, "optimizer state");
    expect_equal(fast.ema, plain.ema, "ema");
  }
}

TEST(OptimizerFastPath, MuonWithDeviceScalarsEqualsTheHostScalars) {
  // Without clipping both runs see the same gradients. The device μ is the fp32 value ATen rounds
  // the host double to, so the Muon momentum is bit-identical. The weights get p·decay − update·step
  // with the same fp32 decay and step; only update·step is rounded before the subtraction, ≤ 1 ulp
  // of max|p| per step over 3 steps (plus the momentum's 1 ulp): bounded by 1e-6 relative.
  const TrainRun plain = train(false, 0.0), fast = train(true, 0.0);
  for (const char* bank : {"qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank"}) {
    const std::string key = std::string("muon_momentum/") + bank;
    EXPECT_TRUE(at::equal(fast.state.at(key), plain.state.at(key))) << key;
    EXPECT_LE(rel(fast.weights.at(bank).to(at::kDouble), plain.weights.at(bank).to(at::kDouble)), 1e-6) << bank;
    EXPECT_GT((plain.weights.at(bank) - test::live_model(test::small_model_config()).param(bank)).abs().max().item<double>(), 1e-4)
        << bank << ": Muon moved the weights";
  }
}

TEST(OptimizerFastPath, MuonWithDeviceScalarsEqualsTheHostScalarsOnGpu) {
  // The same comparison on the card (bf16 Muon momentum and Newton–Schulz, fp32 masters): one
  // fixed gradient (computed once on the CPU, so the backward's nondeterminism cannot enter) copied
  // into both runs. The momentum update is the same bf16 arithmetic with the same fp32 μ: bit-equal;
  // the weights differ only by update·step's rounding: 1e-6 relative, the CPU bound.
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const Config c = test::small_model_config();
  Model live = test::live_model(c);
  const at::Tensor x = at::randint(4, 300, {2, 33}, at::kLong);
  live.loss(x.narrow(1, 0, 32), x.narrow(1, 1, 32), true).backward();
  std::map<std::string, at::Tensor> out[2];
  for (const bool foreach_optim : {false, true}) {
    FastPaths f = fast_paths_from_env(true);
    f.foreach_optim = foreach_optim;
    const auto setup = test::train_setup(c, f, at::kCUDA);  // live_model(c)'s weights, as `live`
    auto& [m, opt, ema] = *setup;
    for (int64_t step = 0; step < 3; ++step) {
      for (const auto& name : m.names()) m.param(name).mutable_grad() = live.param(name).grad().to(at::kCUDA);
      opt.step(step, step == 2 ? 0.5 : 1.0);
    }
    for (const auto& [k, v] : opt.state()) out[foreach_optim][k] = v.cpu();
    for (const auto& [k, v] : m.state()) out[foreach_optim][k] = v.cpu();
  }
  for (const char* bank : {"qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank"}) {
    const std::string key = std::string("muon_momentum/") + bank;
    EXPECT_TRUE(at::equal(out[1].at(key), out[0].at(key))) << key;
    EXPECT_LE(rel(out[1].at(bank).to(at::kDouble), out[0].at(bank).to(at::kDouble)), 1e-6) << bank;
  }
}

TEST(OptimizerFastPath, TheStepReadsNothingBackToTheHost) {
  // clip, optimizer step (Muon and AdamW, step index and schedule changing) and EMA, as golf-train
  // runs them: with GOLF_FOREACH_OPTIM no value is read back; the plain path reads the norm
  // (which also shows the recorder sees reads).
  for (const bool foreach_optim : {true, false}) {
    Config c = test::small_model_config();
    c.grad_clip_norm = 0.3;
    const auto setup = test::train_setup(c, test::plain_with(&FastPaths::foreach_optim, foreach_optim));
    auto& [m, opt, ema] = *setup;
    const at::Tensor x = at::randint(4, 300, {1, 17}, at::kLong);
    m.loss(x.narrow(1, 0, 16), x.narrow(1, 1, 16), true).backward();
    test::HostReads reads;
    for (int64_t step = 0; step < 2; ++step) {
      opt.clip_gradients_async();
      opt.step(step, step == 0 ? 1.0 : 0.5);
      ema.update(m);
    }
    const std::vector<std::string> seen = reads.stop();
    if (foreach_optim)
      EXPECT_TRUE(seen.empty()) << "first read: " << seen.front();
    else
      EXPECT_FALSE(seen.empty()) << "the plain path's clip reads the norm";
  }
}

TEST(OptimizerFastPath, AsyncClipReturnsTheNormAsADeviceTensor) {
  Config c = test::small_model_config();
  c.grad_clip_norm = 0.3;
  Model m = test::live_model(c);
  train::Optimizer opt(m, c);
  const at::Tensor x = at::randint(4, 300, {1, 17}, at::kLong);
  m.loss(x.narrow(1, 0, 16), x.narrow(1, 1, 16), false).backward();
  double before = 0;
  for (const auto& name : m.names()) before += m.param(name).grad().pow(2).sum().item<double>();
  const at::Tensor norm = opt.clip_gradients_async();
  EXPECT_EQ(norm.dim(), 0);
  EXPECT_NEAR(norm.item<double>(), std::sqrt(before), 1e-5 * std::sqrt(before));
  double after = 0;
  for (const auto& name : m.names()) after += m.param(name).grad().pow(2).sum().item<double>();
  EXPECT_NEAR(std::sqrt(after), std::min(0.3, std::sqrt(before)), 1e-5);
}

TEST(OptimizerFastPath, ResumedFusedAdamContinuesFromTheCheckpointedStep) {
  // The device step counts follow adam_steps through state()/load_state().
  const Config c = test::small_model_config();
  Model a = test::live_model(c), b = test::live_model(c);
  train::Optimizer oa(a, c), ob(b, c);
  const at::Tensor x = at::randint(4, 300, {1, 17}, at::kLong);
  for (Model* m : {&a, &b}) m->loss(x.narrow(1, 0, 16), x.narrow(1, 1, 16), false).backward();
  oa.step(0, 1.0), oa.step(1, 1.0);
  ob.load_state(oa.state());
  b.load_state(a.state());
  oa.step(2, 1.0), ob.step(2, 1.0);
  for (const auto& name : a.names()) EXPECT_TRUE(at::equal(a.param(name), b.param(name))) << name;
}

}  // namespace
}  // namespace golf
