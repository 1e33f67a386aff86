// golf-pack's model side with QuantGate and LQER (pack/pack_model.h): the gate matrices become int8
// per row, the LQER_TOP_K matrices with the largest ‖W − Ŵ‖_F get factors X.lqA / X.lqB (format
// version 2), the dequantizer adds Â·B̂, and bad settings are one clear error before any work.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "model/model.h"
#include "artifact/artifact.h"
#include "pack/pack_model.h"
#include "tests/live_model.h"
#include "tests/test_util.h"

namespace golf {
namespace {

// The frontier stack in small: sparse attention gate, round-to-nearest (no Hessians needed), a
// low passthrough threshold so that every bank matrix is quantized.
Config small_frontier() {
  Config c = test::small_model_config();
  c.attn_out_gate_enabled = 0, c.sparse_attn_gate_enabled = 1;
  c.gptq_enabled = 0, c.passthrough_max_numel = 1000;
  return c;
}

artifact::TensorMap weights_of(const Model& m) {
  artifact::TensorMap w;
  for (const auto& [name, p] : m.state()) w[name] = p.detach().clone();
  return w;
}

double distance(const at::Tensor& a, const at::Tensor& b) { return (a.to(at::kDouble) - b.to(at::kDouble)).norm().item<double>(); }

TEST(PackLqer, TopKMatricesGetFactorsThatShrinkTheirError) {
  Config c = small_frontier();
  const artifact::TensorMap w = weights_of(test::live_model(c));
  const auto plain = pack::quantize_model(w, {}, c);
  c.lqer_enabled = 1, c.lqer_top_k = 2, c.lqer_rank = 4;
  const auto lq = pack::quantize_model(w, {}, c);

  // The two matrices with the largest ‖W − Ŵ‖_F got factors, no other did.
  std::vector<std::pair<double, std::string>> errors;
  std::vector<std::string> corrected;
  for (const auto& t : lq.tensors) {
    if (t.frob_error > 0) errors.emplace_back(t.frob_error, t.name);
    if (t.lqer) corrected.push_back(t.name);
  }
  ASSERT_GE(errors.size(), 3u);
  std::sort(errors.rbegin(), errors.rend());
  std::sort(corrected.begin(), corrected.end());
  std::vector<std::string> top = {errors[0].second, errors[1].second};
  std::sort(top.begin(), top.end());
  EXPECT_EQ(corrected, top);
  int factors = 0;
  for (const auto& t : lq.artifact.tensors)
    if (t.kind == artifact::Tensor::Kind::Grouped) ++factors;
  EXPECT_EQ(factors, 4);
  EXPECT_EQ(lq.artifact.tensors.size(), plain.artifact.tensors.size() + 4);

  // Through the file: version 2, the same tensors back, and the dequantized weights of the
  // corrected matrices closer to the originals than without LQER (all others identical).
  const auto file = artifact::serialize(lq.artifact);
  EXPECT_EQ(file[4], 2);
  EXPECT_EQ(artifact::serialize(plain.artifact)[4], 1);
  const artifact::Artifact back = artifact::deserialize(file);
  const auto deq = artifact::unbank(artifact::dequantize_model(back), c);
  const auto deq_plain = artifact::unbank(artifact::dequantize_model(plain.artifact), c);
  const auto original = artifact::unbank(w, c);
  for (const auto& [name, t] : deq_plain) {
    if (std::find(top.begin(), top.end(), name) != top.end()) {
      const double before = distance(t, original.at(name)), after = distance(deq.at(name), original.at(name));
      // (These random weights leave a nearly white error: rank 4 removes only a few percent of it.)
      EXPECT_LT(after, before) << name << ": " << before << " → " << after;
      const auto& report = *std::find_if(lq.tensors.begin(), lq.tensors.end(), [&](auto& r) { return r.name == name; });
      EXPECT_NEAR(report.frob_error, before, 0.02 * before);  // before bf16 rounding vs after
      EXPECT_LT(report.lqer_frob_error, report.frob_error);
    } else {
      EXPECT_TRUE(at::equal(deq.at(name), t)) << name;
    }
  }
  // The dequantized weights load into the model the artifact's config describes.
  Config stored;
  artifact::dequantize_model(back, &stored);
  Model rebuilt(stored, at::kCPU);
  artifact::load_model_weights(rebuilt, artifact::dequantize_model(back));
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::isfinite(rebuilt.logits(at::randint(4, c.vocab_size, {1, 20}, at::kLong), true)).all().item<bool>());
}

TEST(PackLqer, RankLargerThanAMatrixIsOneClearErrorBeforeAnyWork) {
  Config c = small_frontier();
  c.lqer_enabled = 1, c.lqer_rank = 25;  // kv matrices are 24 × 48
  const artifact::TensorMap w = weights_of(test::live_model(c));
  const std::string msg = test::error_of([&] { pack::quantize_model(w, {}, c); });
  EXPECT_NE(msg.find("LQER_RANK=25 exceeds min(rows, cols) = 24 of blocks.0.attn.c_k.weight (24x48)"), std::string::npos)
      << msg;
}

TEST(PackLqer, FactorsWithoutTheirPairOrTheirMatrixAreRefused) {
  Config c = small_frontier();
  c.lqer_enabled = 1, c.lqer_top_k = 1;
  const auto lq = pack::quantize_model(weights_of(test::live_model(c)), {}, c);
  artifact::Artifact lone = lq.artifact;
  std::erase_if(lone.tensors, [](const artifact::Tensor& t) { return t.name.ends_with(".lqB"); });
  EXPECT_NE(test::error_of([&] { artifact::dequantize_model(lone); }).find("without"), std::string::npos);
  artifact::Artifact orphan = lq.artifact;
  for (auto& t : orphan.tensors)
    if (t.name.ends_with(".lqA") || t.name.ends_with(".lqB")) t.name = "nothing" + t.name.substr(t.name.size() - 4);
  EXPECT_NE(test::error_of([&] { artifact::dequantize_model(orphan); }).find("belongs to no tensor 'nothing'"),
            std::string::npos);
}

TEST(PackQuantGate, SparseGateWeightsAreInt8PerRowOnlyWhenAsked) {
  Config c = small_frontier();
  const artifact::TensorMap w = weights_of(test::live_model(c));
  auto kind_of = [](const pack::QuantizeResult& r, const std::string& name) {
    return std::find_if(r.artifact.tensors.begin(), r.artifact.tensors.end(), [&](auto& t) { return t.name == name; });
  };
  const auto off = pack::quantize_model(w, {}, c);
  EXPECT_EQ(kind_of(off, "blocks.0.attn.attn_gate_w")->kind, artifact::Tensor::Kind::Float16);
  c.gated_attn_quant_gate = 1;
  const auto on = pack::quantize_model(w, {}, c);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string name = fmt::format("blocks.{}.attn.attn_gate_w", i);
    const auto t = kind_of(on, name);
    ASSERT_EQ(t->kind, artifact::Tensor::Kind::Quantized) << name;
    EXPECT_EQ(t->bits, 8);
    EXPECT_EQ(t->scales.size(), static_cast<size_t>(c.num_heads));
    // Within half a step of each row's scale after the round trip.
    const at::Tensor back = artifact::dequantize_model(artifact::deserialize(artifact::serialize(on.artifact))).at(name);
    const at::Tensor orig = w.at(name);
    const at::Tensor row_max = orig.abs().amax(1, true);  // + the bf16 cast of evaluation (2^-9 relative)
    EXPECT_TRUE(((back - orig).abs() <= row_max / 127 * 0.5 * 1.01 + row_max / 256).all().item<bool>()) << name;
  }
}

}  // namespace
}  // namespace golf
