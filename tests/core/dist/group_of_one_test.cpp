// The distributed optimizer step (Parallel Muon: reduce-scatter, sharded Newton–Schulz, all-gather;
// all-reduced AdamW gradients) through a real process group of one rank — NCCL on CUDA, Gloo on the
// CPU — equals the single-process step. At world size 1 every collective is an identity (the mean
// of one value), so the two steps compute the same arithmetic on the same inputs: the only allowed
// difference is kernel-level nondeterminism, far below what any routing bug (a shard applied to
// the wrong matrices, a missing or doubled update, a lost gradient) produces — one step moves the
// banks by lr·scale·|update| ≈ 1e-2.
#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <cstdlib>

#include "core/dist/comm.h"
#include "tests/live_model.h"
#include "tests/test_util.h"
#include "train/optim.h"

namespace golf {
namespace {

// Weights after one clipped optimizer step from the live model's weights on `tokens` (B, T+1).
std::map<std::string, at::Tensor> one_step(at::Device device, dist::Comm* comm, const at::Tensor& tokens) {
  const Config cfg = test::small_model_config();
  Model cpu_model = test::live_model(cfg);
  Model model(cfg, device);
  model.load_state(cpu_model.state());
  train::Optimizer opt(model, cfg, comm);
  const at::Tensor batch = tokens.to(device);
  const int64_t T = batch.size(1) - 1;
  model.loss(batch.narrow(1, 0, T), batch.narrow(1, 1, T), /*looping=*/true).backward();
  opt.clip_gradients();
  opt.step(/*step=*/0, /*lr_mul=*/1.0);
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, p] : model.state()) out[name] = p.detach().to(at::kCPU, at::kDouble);
  return out;
}

class GroupOfOne : public ::testing::TestWithParam<std::string> {};

TEST_P(GroupOfOne, DistributedStepEqualsThePlainStep) {
  const bool cuda = GetParam() == "cuda";
  if (cuda && !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const at::Device device = cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv("MASTER_PORT", std::to_string(test::free_port()).c_str(), 1);
  dist::Comm comm(dist::World{}, device, std::chrono::seconds(60), /*group_of_one=*/true);
  ASSERT_TRUE(comm.distributed());
  ASSERT_EQ(comm.backend(), cuda ? "nccl" : "gloo");

  at::manual_seed(11);
  at::Tensor tokens = at::randint(4, test::small_model_config().vocab_size, {2, 49}, at::kLong);
  tokens.index_put_({0, 20}, 1);  // a document boundary inside row 0
  const auto plain = one_step(device, nullptr, tokens);
  const auto grouped = one_step(device, &comm, tokens);
  const Config cfg = test::small_model_config();
  const Model start = test::live_model(cfg);
  for (const auto& [name, p] : plain) {
    const double moved = (p - start.param(name).detach().to(at::kDouble)).abs().max().item<double>();
    const double diff = (grouped.at(name) - p).abs().max().item<double>();
    ASSERT_FALSE(std::isnan(diff)) << name;
    // Every parameter moved in the step (so equality is not vacuous), and both steps moved it alike.
    EXPECT_GT(moved, 1e-5) << name << " did not move";
    EXPECT_LE(diff, 1e-6) << name << ": |grouped − plain| " << diff << " (the step moved it by " << moved << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, GroupOfOne, ::testing::Values("cpu", "cuda"));

}  // namespace
}  // namespace golf
