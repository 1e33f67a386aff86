// Record parity (issue 14 §1): three places where golf differed from the record code, each pinned
// by a test that fails on the old behaviour.
//   1. U-Net skip at the first two-lane visit: the lanes are made from x first, the skip goes into
//      lane 0 only (golf used to inject into x and copy it into both lanes).
//   2. Polar Express with more Newton–Schulz steps than coefficient tuples: refused (golf used to
//      reuse the last tuple; the records never run more steps than tuples).
//   3. PARALLEL_START_LAYER=0 means "no parallel layers" (golf used to make every layer parallel).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "model/model.h"
#include "tests/live_model.h"
#include "tests/test_util.h"
#include "train/optim.h"

namespace golf {
namespace {

using test::live_model;

// The MLP input of a layer is what the Hessian collector records as blocks.{i}.mlp.fc.weight
// (its XᵀX), the attention input as blocks.{i}.attn.c_q.weight.
std::map<std::string, at::Tensor> collected_inputs(const Model& m, const at::Tensor& tokens, bool looping) {
  at::NoGradGuard no_grad;
  HessianCollector h;
  const ForwardProbes probes{.hessians = &h};
  m.logits(tokens, looping, &probes);
  return h.sums;
}

TEST(ParityLaneOrder, FirstTwoLaneVisitsMlpLaneDoesNotReadTheSkip) {
  // small_model_config: 6 layers, two-lane from layer 4. Loop off: decoder [3, 4, 5]; decoder
  // position 1 (layer 4, the first two-lane visit) receives skip row 1. Loop on: decoder
  // [3, 2, 3, 4, 5]; layer 4 is position 3 and receives skip row 3.
  const Config c = test::small_model_config();
  for (const bool looping : {false, true}) {
    const int row = looping ? 3 : 1;
    const Model a = live_model(c);
    Model b = live_model(c);
    {
      at::NoGradGuard no_grad;
      b.param("skip_weights")[row].mul_(3.0).add_(0.5);  // only the skip into layer 4 changes
    }
    const auto tokens = at::randint(4, c.vocab_size, {2, 40}, at::kLong);
    const auto ha = collected_inputs(a, tokens, looping), hb = collected_inputs(b, tokens, looping);
    // Lane 1 (the MLP lane) of layer 4's first visit is x from before the skip: unchanged.
    EXPECT_TRUE(at::equal(ha.at("blocks.4.mlp.fc.weight"), hb.at("blocks.4.mlp.fc.weight")))
        << "looping " << looping << ": layer 4's MLP lane read the skip";
    // The skip is live: it reaches lane 0 (the attention input) and, through the lane mixing,
    // layer 5's MLP lane.
    EXPECT_FALSE(at::allclose(ha.at("blocks.4.attn.c_q.weight"), hb.at("blocks.4.attn.c_q.weight")));
    EXPECT_FALSE(at::allclose(ha.at("blocks.5.mlp.fc.weight"), hb.at("blocks.5.mlp.fc.weight")));
  }
}

TEST(ParityPolarExpress, MoreStepsThanCoefficientTuplesAreRefused) {
  Config c;
  c.muon_polar_express = 1;
  c.muon_backend_steps = 6;
  const std::string msg = test::error_of([&] { validate(c); });
  EXPECT_NE(msg.find("MUON_BACKEND_STEPS=6 exceeds the 5 Polar Express coefficient tuples"), std::string::npos) << msg;
  const at::Tensor g = at::randn({2, 8, 16});
  const std::string ns = test::error_of([&] { train::newton_schulz(g, 6, true); });
  EXPECT_NE(ns.find("MUON_BACKEND_STEPS=6 exceeds the 5 Polar Express"), std::string::npos) << ns;
  // Five steps (the table) and the classic iteration at any count stay valid.
  c.muon_backend_steps = 5;
  EXPECT_NO_THROW(validate(c));
  c.muon_polar_express = 0, c.muon_backend_steps = 9;
  EXPECT_NO_THROW(validate(c));
  EXPECT_NO_THROW(train::newton_schulz(g, 9, false));
}

TEST(ParityParallelStart, ZeroMeansNoParallelLayers) {
  Config zero = test::small_model_config();
  zero.parallel_start_layer = 0;
  for (int64_t i = 0; i < zero.num_layers; ++i) EXPECT_FALSE(is_parallel_layer(zero, i)) << i;
  Config four = test::small_model_config();
  EXPECT_FALSE(is_parallel_layer(four, 3));
  EXPECT_TRUE(is_parallel_layer(four, 4));
  // The whole model: PARALLEL_START_LAYER=0 computes what PARALLEL_MODE=none computes.
  Config none = zero;
  none.parallel_mode = "none";
  const Model ref = live_model(none);
  Model m = live_model(zero);
  m.load_state([&] {
    auto s = ref.state();
    for (const char* extra : {"parallel_post_lambdas", "parallel_resid_lambdas"}) s[extra] = m.param(extra);
    return s;
  }());
  const auto tokens = at::randint(4, zero.vocab_size, {2, 40}, at::kLong);
  at::NoGradGuard no_grad;
  for (const bool looping : {false, true})
    EXPECT_TRUE(at::equal(m.logits(tokens, looping), ref.logits(tokens, looping))) << "looping " << looping;
}

}  // namespace
}  // namespace golf
