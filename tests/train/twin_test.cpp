// The C++ model and optimizers against the PyTorch twin (tests/reference/golf_model.py), tensor
// by tensor: the twin writes its debug state (weights, inputs, logits, loss, gradients, one
// optimizer step, 20 training steps) and this test recomputes every one of them in C++.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "model/model.h"
#include "core/tensor_io.h"
#include "tests/test_util.h"
#include "train/optim.h"

namespace golf {
namespace {

// Largest |a - b| relative to the largest |b| of the tensor (llm.c-style per-tensor check).
double relative_max_error(const at::Tensor& a, const at::Tensor& b) {
  const double scale = std::max(b.abs().max().item<double>(), 1e-12);
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() / scale;
}

// The debug state is written once per test run by the ctest fixture `twin_debug_state`
// (tests/reference/make_debug_state.py into GOLF_TWIN_DIR).
class Twin : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::filesystem::path file = std::filesystem::path(GOLF_TWIN_DIR) / (GetParam() + ".safetensors");
    ASSERT_TRUE(std::filesystem::exists(file)) << file << " is missing: run the twin_debug_state test first";
    std::map<std::string, std::string> meta;
    state = load_tensors(file, &meta);
    config = config_from_json(nlohmann::json::parse(meta.at("config")));
    model = std::make_unique<Model>(config, at::kCPU);
    model->load_state(prefixed("weights/"));
  }
  std::map<std::string, at::Tensor> prefixed(const std::string& prefix) const {
    std::map<std::string, at::Tensor> out;
    for (const auto& [k, v] : state)
      if (k.starts_with(prefix)) out[k.substr(prefix.size())] = v;
    return out;
  }
  std::map<std::string, at::Tensor> state;
  Config config;
  std::unique_ptr<Model> model;
};

TEST_P(Twin, LogitsEqualWithAndWithoutRecurrence) {
  at::NoGradGuard no_grad;
  for (const bool looping : {false, true}) {
    const at::Tensor ours = model->logits(state.at("tokens"), looping);
    const at::Tensor ref = state.at(looping ? "logits_loop" : "logits_noloop");
    ASSERT_EQ(ours.sizes(), ref.sizes());
    const double err = (ours - ref).abs().max().item<double>();
    EXPECT_LE(err, 1e-5) << "looping " << looping << ": max |Δlogit| " << err;
  }
}

TEST_P(Twin, LossAndEveryGradientEqual) {
  const at::Tensor loss = model->loss(state.at("tokens"), state.at("targets"), true);
  loss.backward();
  EXPECT_NEAR(loss.item<double>(), state.at("loss").item<double>(), 1e-5);
  for (const auto& [name, ref] : prefixed("grad/")) {
    const at::Tensor& g = model->param(name).grad();
    ASSERT_TRUE(g.defined()) << name;
    EXPECT_LE(relative_max_error(g, ref), 1e-4) << "gradient of " << name;
  }
}

TEST_P(Twin, OneMuonAndAdamWStepEqual) {
  // Start from the twin's own gradients: AdamW's first step is nearly lr·sign(g), which would turn
  // 1e-9 differences in near-zero gradients into lr-sized ones and test the model, not the optimizer.
  for (const auto& [name, g] : prefixed("grad/")) model->param(name).mutable_grad() = g.clone();
  train::Optimizer opt(*model, config);
  opt.clip_gradients();
  opt.step(/*step=*/0, /*lr_mul=*/1.0);
  for (const auto& [name, ref] : prefixed("step1/")) {
    const double err = (model->param(name).detach() - ref).abs().max().item<double>();
    EXPECT_LE(err, 1e-5) << "after one step: " << name;
  }
}

TEST_P(Twin, TwentyTrainingStepsGiveTheSameLosses) {
  train::Optimizer opt(*model, config);
  const at::Tensor batches = state.at("train_tokens");  // (S, B, T+1)
  const at::Tensor ref = state.at("train_losses");
  const int64_t steps = batches.size(0), T = batches.size(2) - 1;
  for (int64_t step = 0; step < steps; ++step) {
    const double frac = static_cast<double>(step) / static_cast<double>(steps);
    opt.zero_grad();
    const at::Tensor batch = batches[step];
    const at::Tensor loss =
        model->loss(batch.narrow(1, 0, T), batch.narrow(1, 1, T), frac >= config.enable_looping_at);
    loss.backward();
    opt.clip_gradients();
    opt.step(step, train::lr_multiplier(frac, config));
    EXPECT_NEAR(loss.item<double>(), ref[step].item<double>(), 1e-4) << "step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, Twin, ::testing::Values("default", "variant", "frontier", "seed_variants", "smat_g_only", "moa"));

}  // namespace
}  // namespace golf
