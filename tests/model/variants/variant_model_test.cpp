// The seed variants inside the model: causality and document isolation for each one (recurrence
// off and on), what is (and is not) neutral at init, what each SMAT_ABLATION does, and that a
// training step reaches every new parameter.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <cmath>
#include <functional>

#include "model/model.h"
#include "model/variants.h"
#include "tests/live_model.h"
#include "tests/test_util.h"
#include "train/optim.h"

namespace golf {
namespace {

Config small_config() {
  Config c = test::small_model_config();
  c.bigram_buckets = 64, c.bigram_dim = 16;
  return c;
}

struct Variant {
  const char* name;
  std::function<void(Config&)> set;
};
const std::vector<Variant>& variants_under_test() {
  static const std::vector<Variant> v = {
      {"smat_s_only", [](Config& c) { c.smat_use_s = 1; }},
      {"smat_g_only", [](Config& c) { c.smat_use_g = 1; }},
      {"smat_g_only_drop", [](Config& c) { c.smat_use_g = 1, c.smat_gonly_centrality = "drop"; }},
      {"smat_full", [](Config& c) { c.smat_use_s = 1, c.smat_use_g = 1; }},
      {"smat_full_count_ds5", [](Config& c) { c.smat_use_s = 1, c.smat_use_g = 1, c.smat_centrality = "count", c.smat_dim = 5; }},
      {"value_residual", [](Config& c) { c.value_residual = 1; }},
      {"gated_attention", [](Config& c) { c.gated_attention = 1, c.attn_out_gate_enabled = 0; }},
      {"bigram", [](Config& c) { c.bigram_hash = 1; }},
      {"bigram_dim_eq_d", [](Config& c) { c.bigram_hash = 1, c.bigram_dim = 48; }},
      {"head_gate", [](Config& c) { c.head_gate_enabled = 1; }},
      // MoA (model/moa.h): every branch, each metric, ball pruning, MQA alone with the attention.
      {"moa_l2_all_branches", [](Config& c) { c.moa_enabled = 1; }},
      {"moa_cosine_ball", [](Config& c) { c.moa_enabled = 1, c.moa_metric = "cosine", c.moa_ball = 1; }},
      {"moa_mahalanobis_mqa", [](Config& c) {
         c.moa_enabled = 1, c.moa_metric = "diag_mahalanobis", c.moa_branches = "mha,mqa", c.moa_ball = 1;
       }},
      {"moa_conv_k3_chan", [](Config& c) {
         c.moa_enabled = 1, c.moa_branches = "conv,mha,chan", c.moa_conv_kernel = 3, c.moa_bias_gate = 0;
       }},
      {"moa_with_vr_bigram", [](Config& c) {
         c.moa_enabled = 1, c.value_residual = 1, c.bigram_hash = 1, c.gated_attention = 1, c.attn_out_gate_enabled = 0;
       }},
      {"all", [](Config& c) {
         c.smat_use_s = 1, c.smat_use_g = 1, c.value_residual = 1, c.gated_attention = 1, c.attn_out_gate_enabled = 0;
         c.bigram_hash = 1;
       }},
  };
  return v;
}

Config variant_config(const Variant& v) {
  Config c = small_config();
  v.set(c);
  return c;
}

using test::live_model;

// Copies every parameter b shares with a (same name) from a into b.
void copy_shared(const Model& a, Model& b) {
  at::NoGradGuard no_grad;
  const auto from = a.state();
  for (const auto& name : b.names())
    if (from.count(name)) b.param(name).copy_(from.at(name));
}
Config baseline_of(Config c) {
  c.smat_use_s = c.smat_use_g = c.value_residual = c.gated_attention = c.bigram_hash = c.moa_enabled = 0;
  c.moa_ball = c.head_gate_enabled = 0;
  c.smat_ablation = "none";
  return c;
}
double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }
at::Tensor row(std::vector<int64_t> ids) { return at::tensor(ids, at::kLong).unsqueeze(0); }

// ---- causality and document isolation, per variant ------------------------------------------------
TEST(VariantInvariants, ChangingAFutureTokenLeavesEarlierLogitsUnchanged) {
  for (const auto& v : variants_under_test()) {
    for (const int64_t doc_mask : {1, 0}) {
      Config c = variant_config(v);
      c.doc_mask = doc_mask;
      const Model m = live_model(c);
      at::Tensor x = at::randint(4, 300, {1, 50}, at::kLong);
      x[0][0] = 1, x[0][21] = 1;
      at::Tensor y = x.clone();
      y[0][37] = 5;
      at::NoGradGuard no_grad;
      for (const bool looping : {false, true}) {
        const at::Tensor before = m.logits(x, looping), after = m.logits(y, looping);
        EXPECT_TRUE(at::equal(before.narrow(1, 0, 37), after.narrow(1, 0, 37)))
            << v.name << " doc_mask " << doc_mask << " looping " << looping;
        EXPECT_GT(max_diff(before.narrow(1, 37, 13), after.narrow(1, 37, 13)), 1e-4) << v.name << ": the change must matter";
      }
    }
  }
}

TEST(VariantInvariants, ADocumentScoresTheSameAloneAsAfterAnother) {
  std::vector<int64_t> doc = {1};
  for (int i = 0; i < 29; ++i) doc.push_back(10 + (i * 37) % 250);  // longer than one 16-token segment
  std::vector<int64_t> packed = {1, 200, 201, 202, 203, 204, 205};
  packed.insert(packed.end(), doc.begin(), doc.end());
  for (const auto& v : variants_under_test()) {
    const Model m = live_model(variant_config(v));
    at::NoGradGuard no_grad;
    for (const bool looping : {false, true}) {
      const at::Tensor alone = m.logits(row(doc), looping);
      const at::Tensor after = m.logits(row(packed), looping).narrow(1, 7, static_cast<int64_t>(doc.size()));
      // Float rounding only (masked keys still change the reduction order): ~1e-5 on logits up to
      // 15 with one OpenMP thread; a leak across the BOS moves them by orders of magnitude more.
      EXPECT_LE(max_diff(alone, after), 5e-5) << v.name << " looping " << looping;
    }
  }
}

TEST(VariantInvariants, WithoutTheBosMaskTheBigramHashWouldLeakAcrossDocuments) {
  // The reserved bucket at BOS is what keeps BigramHash document-isolated: the record hash of
  // (last token of doc A, BOS) differs from doc B's start alone.
  const at::Tensor alone = variants::bigram_hash_ids(row({1, 50, 51}), 64, 1);
  const at::Tensor after = variants::bigram_hash_ids(row({1, 200, 1, 50, 51}), 64, 1).narrow(1, 2, 3);
  EXPECT_TRUE(at::equal(alone, after));
  const at::Tensor unmasked = variants::bigram_hash_ids(row({1, 200, 1, 50, 51}), 64, /*bos=*/-1).narrow(1, 2, 3);
  EXPECT_FALSE(at::equal(alone, unmasked));
}

// ---- at init: what is neutral and what is not ----------------------------------------------------
TEST(VariantInit, BigramHashAddsExactlyZeroAtInit) {
  Config c = small_config();
  c.bigram_hash = 1;
  at::manual_seed(3);
  const Model with(c, at::kCPU);
  Model without(baseline_of(c), at::kCPU);
  copy_shared(with, without);
  EXPECT_TRUE(with.param("bigram.proj.weight").abs().sum().item<double>() > 0) << "P must be non-zero (dead init)";
  const auto x = at::randint(4, 300, {2, 40}, at::kLong);
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(with.logits(x, true), without.logits(x, true)));
}

TEST(VariantInit, GatedAttentionScalesEachHeadBySigmoidFourNotOne) {
  Config c = small_config();
  c.gated_attention = 1, c.attn_out_gate_enabled = 0;
  Model ga = live_model(baseline_of(c));  // live weights for the shared parameters
  Model with(c, at::kCPU);
  copy_shared(ga, with);  // ga has no gate params; `with` keeps W = 0, b = 4
  EXPECT_TRUE(at::equal(with.param("blocks.0.attn.attn_gate.bias"), at::full({4}, 4.0)));
  Model scaled = live_model(baseline_of(c));
  {  // y·σ(4) then W_O  ==  y then σ(4)·W_O
    at::NoGradGuard no_grad;
    const double g = 1.0 / (1.0 + std::exp(-4.0));
    EXPECT_NEAR(g, 0.9820138, 1e-7);
    scaled.param("qo_bank").narrow(0, c.num_layers, c.num_layers).mul_(g);
  }
  const auto x = at::randint(4, 300, {2, 40}, at::kLong);
  at::NoGradGuard no_grad;
  const at::Tensor out = with.logits(x, true);
  EXPECT_LE(max_diff(out, scaled.logits(x, true)), 1e-5);
  EXPECT_GT(max_diff(out, ga.logits(x, true)), 1e-4) << "σ(4) ≠ 1: not the identity";
  for (int i = 0; i < c.num_layers; ++i) with.param(fmt::format("blocks.{}.attn.attn_gate.bias", i)).fill_(40.0);
  EXPECT_LE(max_diff(with.logits(x, true), ga.logits(x, true)), 1e-6) << "b → ∞ gives the baseline";
}

// γ = 1 at init: bitwise the baseline. γ_h scales head h's output only: γ = ½ on every head equals
// the baseline with W_O halved (exact in fp32), and γ on one head moves the logits.
TEST(VariantInit, HeadGateIsTheIdentityAtInitAndScalesEachHeadsOutput) {
  Config c = small_config();
  c.head_gate_enabled = 1;
  const Model base = live_model(baseline_of(c));
  Model gated(c, at::kCPU);
  copy_shared(base, gated);
  EXPECT_TRUE(at::equal(gated.param("blocks.0.attn.head_gate"), at::ones({c.num_heads})));
  const auto x = at::randint(4, 300, {2, 40}, at::kLong);
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(gated.logits(x, true), base.logits(x, true)));
  Model halved = live_model(baseline_of(c));
  halved.param("qo_bank").narrow(0, c.num_layers, c.num_layers).mul_(0.5);
  for (int i = 0; i < c.num_layers; ++i) gated.param(fmt::format("blocks.{}.attn.head_gate", i)).fill_(0.5);
  EXPECT_LE(max_diff(gated.logits(x, true), halved.logits(x, true)), 1e-6);
  for (int i = 0; i < c.num_layers; ++i) gated.param(fmt::format("blocks.{}.attn.head_gate", i)).fill_(1.0);
  gated.param("blocks.2.attn.head_gate")[1].fill_(0.0);  // silence one head of one layer
  EXPECT_GT(max_diff(gated.logits(x, true), base.logits(x, true)), 1e-4);
}

TEST(VariantInit, ValueResidualWithZeroOneIsBitwiseTheBaselineAndHalfHalfIsNot) {
  Config c = small_config();
  c.value_residual = 1;
  Model vr = live_model(c);
  Model base(baseline_of(c), at::kCPU);
  copy_shared(vr, base);
  const auto x = at::randint(4, 300, {2, 40}, at::kLong);
  at::NoGradGuard no_grad;
  EXPECT_EQ(vr.state().count("blocks.0.attn.vr_lambda"), 0u) << "layer 0 owns no lambdas (it is v0)";
  for (int i = 1; i < c.num_layers; ++i) vr.param(fmt::format("blocks.{}.attn.vr_lambda", i)).copy_(at::tensor({0.0f, 1.0f}));
  EXPECT_TRUE(at::equal(vr.logits(x, true), base.logits(x, true)));
  for (int i = 1; i < c.num_layers; ++i) vr.param(fmt::format("blocks.{}.attn.vr_lambda", i)).fill_(0.5);
  EXPECT_GT(max_diff(vr.logits(x, true), base.logits(x, true)), 1e-4);
}

TEST(VariantInit, SmatGateAloneScalesValuesBySigmoidThree) {
  // G = σ(β) = σ(3) everywhere at init (w_g = 0, μ = 0); XSA is invariant to the value scale, so
  // the model equals the baseline with W_V scaled by σ(3).
  Config c = small_config();
  c.smat_use_g = 1;
  Model base = live_model(baseline_of(c));
  Model g(c, at::kCPU);
  copy_shared(base, g);
  at::NoGradGuard no_grad;
  base.param("kv_bank").narrow(0, c.num_layers, c.num_layers).mul_(1.0 / (1.0 + std::exp(-3.0)));
  const auto x = at::randint(4, 300, {2, 40}, at::kLong);
  EXPECT_LE(max_diff(g.logits(x, true), base.logits(x, true)), 1e-5);
}

// ---- SMAT_ABLATION ---------------------------------------------------------------------------------
struct Ablated {
  Config c;
  Model full, ablated;
};
// The same live full-SMAT weights, without and with an ablation.
Ablated smat_pair(const std::string& ablation, const std::string& centrality = "seq") {
  Config c = small_config();
  c.smat_use_s = 1, c.smat_use_g = 1, c.smat_centrality = centrality;
  Config a = c;
  a.smat_ablation = ablation;
  Model full = live_model(c);
  Model ablated(a, at::kCPU);
  copy_shared(full, ablated);
  return {c, std::move(full), std::move(ablated)};
}
void set_each_layer(Model& m, const char* what, double value) {
  at::NoGradGuard no_grad;
  for (int i = 0; i < m.config().num_layers; ++i) m.param(fmt::format("blocks.{}.attn.{}", i, what)).fill_(value);
}
const at::Tensor& batch() {
  static const at::Tensor x = [] {
    at::manual_seed(99);
    at::Tensor t = at::randint(4, 300, {2, 40}, at::kLong);
    t[0][11] = 1;
    return t;
  }();
  return x;
}

TEST(SmatAblation, Lambda0RemovesOnlyTheLogitBias) {
  auto [c, full, ablated] = smat_pair("lambda0");
  at::NoGradGuard no_grad;
  const at::Tensor none = full.logits(batch(), true), out = ablated.logits(batch(), true);
  EXPECT_GT(max_diff(out, none), 1e-4);
  set_each_layer(full, "smat_lambda_raw", -200.0);  // λ = softplus(−200) = 0; μ·c in the gate untouched
  EXPECT_LE(max_diff(out, full.logits(batch(), true)), 1e-5);
}

TEST(SmatAblation, NoSRemovesTheBiasAndTheCentrality) {
  auto [c, full, ablated] = smat_pair("no_s");
  at::NoGradGuard no_grad;
  const at::Tensor out = ablated.logits(batch(), true);
  set_each_layer(full, "smat_lambda_raw", -200.0);
  EXPECT_GT(max_diff(out, full.logits(batch(), true)), 1e-4) << "no_s ≠ lambda0: c_j still fed the gate there";
  set_each_layer(full, "smat_mu", 0.0);
  EXPECT_LE(max_diff(out, full.logits(batch(), true)), 1e-5);
}

TEST(SmatAblation, RandomSUsesTheSeededProjectionInPlaceOfWs) {
  auto [c, full, ablated] = smat_pair("random_s", "count");
  at::NoGradGuard no_grad;
  const at::Tensor out = ablated.logits(batch(), true);
  EXPECT_GT(max_diff(out, full.logits(batch(), true)), 1e-4);
  for (int i = 0; i < c.num_layers; ++i)
    full.param(fmt::format("blocks.{}.attn.smat_ws.weight", i)).copy_(variants::smat_random_projection(12, 48, i));
  EXPECT_LE(max_diff(out, full.logits(batch(), true)), 1e-5);
}

TEST(SmatAblation, GOneForcesTheGateToOne) {
  auto [c, full, ablated] = smat_pair("g_one");
  at::NoGradGuard no_grad;
  const at::Tensor out = ablated.logits(batch(), true);
  EXPECT_GT(max_diff(out, full.logits(batch(), true)), 1e-4);
  set_each_layer(full, "smat_gate.bias", 1e4);  // σ(…+10⁴) = 1
  EXPECT_LE(max_diff(out, full.logits(batch(), true)), 1e-5);
}

TEST(SmatAblation, GMeanUsesCalibratedPerLayerConstants) {
  auto [c, full, ablated] = smat_pair("g_mean");
  at::NoGradGuard no_grad;
  EXPECT_THROW(ablated.logits(batch(), true), Error) << "uncalibrated g_mean must not silently run";
  at::manual_seed(5);
  const std::vector<double> means = ablated.calibrate_smat_gate_means({at::randint(4, 300, {2, 40}, at::kLong)}, true);
  ASSERT_EQ(means.size(), static_cast<size_t>(c.num_layers));
  for (const double m : means) EXPECT_TRUE(m > 0 && m < 1) << m;
  EXPECT_GT(std::abs(means[0] - means[1]), 1e-6) << "per layer, not one global constant";
  const at::Tensor out = ablated.logits(batch(), true);
  // Equal to a gate with w_g = 0, μ = 0, β_ℓ = logit(Ḡ_ℓ).
  set_each_layer(full, "smat_gate.weight", 0.0);
  set_each_layer(full, "smat_mu", 0.0);
  for (int i = 0; i < c.num_layers; ++i)
    full.param(fmt::format("blocks.{}.attn.smat_gate.bias", i)).fill_(std::log(means[i] / (1 - means[i])));
  EXPECT_LE(max_diff(out, full.logits(batch(), true)), 1e-5);
}

TEST(SmatAblation, Lambda0WithGOneIsBitwiseTheBaselineModel) {
  // W_s, λ_raw, w_g, μ, β all present but bypassed: the plain attention module, bit for bit.
  auto [c, full, both] = smat_pair("lambda0,g_one");
  Model base(baseline_of(c), at::kCPU);
  copy_shared(full, base);
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(both.logits(batch(), true), base.logits(batch(), true)));
  for (const char* one : {"lambda0", "g_one"}) {  // either alone keeps the other part
    Config a = c;
    a.smat_ablation = one;
    Model m(a, at::kCPU);
    copy_shared(full, m);
    EXPECT_GT(max_diff(m.logits(batch(), true), base.logits(batch(), true)), 1e-4) << one;
  }
}

TEST(SmatAblation, IsAConfigErrorWhereThePartIsMissing) {
  Config c = small_config();
  c.smat_ablation = "lambda0";
  EXPECT_THROW(validate(c), Error);
  c.smat_use_g = 1;  // gate only: lambda0 has nothing to remove
  EXPECT_THROW(validate(c), Error);
  c.smat_ablation = "no_s";  // the gate's centrality is there to remove
  EXPECT_NO_THROW(validate(c));
  c.smat_gonly_centrality = "drop";
  EXPECT_THROW(validate(c), Error);
  c.smat_ablation = "g_one";
  EXPECT_NO_THROW(validate(c));
  c.smat_ablation = "shuffle";
  EXPECT_THROW(validate(c), Error);
  c.smat_ablation = "g_one,g_mean";
  EXPECT_THROW(validate(c), Error);
  c.smat_use_s = 1, c.smat_ablation = "lambda0,g_one";
  EXPECT_NO_THROW(validate(c));
  Config g = small_config();
  g.gated_attention = 1;  // ATTN_OUT_GATE_ENABLED=1 by default: exclusive output gates
  EXPECT_THROW(validate(g), Error);
}

// ---- training reaches every new parameter --------------------------------------------------------
TEST(VariantTraining, OneStepGivesEveryVariantParameterAGradientAndMovesIt) {
  Config c = variant_config(variants_under_test().back());  // all variants
  Model m = live_model(c);
  std::vector<std::string> added;
  const Model plain(baseline_of(c), at::kCPU);
  for (const auto& name : m.names())
    if (std::find(plain.names().begin(), plain.names().end(), name) == plain.names().end()) added.push_back(name);
  ASSERT_EQ(added.size(), 6u * 5 + 5 + 2 * 6 + 3) << "W_s, λ_raw, w_g, β, μ; vr_lambda (layers ≥ 1); gate W, b; bigram";
  std::map<std::string, at::Tensor> before;
  for (const auto& name : added) before[name] = m.param(name).detach().clone();
  train::Optimizer opt(m, c);
  const at::Tensor x = at::randint(4, 300, {2, 41}, at::kLong);
  const at::Tensor loss = m.loss(x.narrow(1, 0, 40), x.narrow(1, 1, 40), true);
  loss.backward();
  for (const auto& name : added) {
    const at::Tensor& g = m.param(name).grad();
    ASSERT_TRUE(g.defined()) << name;
    EXPECT_GT(g.abs().sum().item<double>(), 0) << name << " gets no gradient";
    EXPECT_FALSE(train::is_matrix_param(name)) << name << " (AdamW scalar group)";
  }
  opt.clip_gradients();
  opt.step(0, 1.0);
  for (const auto& name : added) EXPECT_GT(max_diff(m.param(name).detach(), before.at(name)), 0) << name << " did not move";
}

TEST(VariantTraining, AtInitEveryVariantParameterHasAGradientTensor) {
  // The AdamW step refuses parameters without a gradient: every created parameter must be used,
  // also at init (zero O/down banks) and with recurrence off.
  Config c = variant_config(variants_under_test().back());
  at::manual_seed(1);
  Model m(c, at::kCPU);
  const at::Tensor x = at::randint(4, 300, {1, 21}, at::kLong);
  m.loss(x.narrow(1, 0, 20), x.narrow(1, 1, 20), false).backward();
  for (const auto& name : m.names()) EXPECT_TRUE(m.param(name).grad().defined()) << name;
}

}  // namespace
}  // namespace golf
