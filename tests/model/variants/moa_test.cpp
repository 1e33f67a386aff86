// MoA (model/moa.h; docs/reference/seed-techniques.md §4.4): the fast forms against naive formulas
// (metric logits, segment-reset conv), the router and FiLM at init, ball pruning, the triangle
// penalty (in the training loss only), config rules, and that training reaches every parameter.
// Causality and document isolation with recurrence off and on: variant_model_test.cpp (moa_*).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <cmath>

#include "model/model.h"
#include "model/moa.h"
#include "tests/live_model.h"
#include "tests/model/variants/naive.h"
#include "tests/test_util.h"
#include "train/optim.h"

namespace golf {
namespace {

Config moa_config() {
  Config c;
  c.vocab_size = 300, c.num_layers = 4, c.model_dim = 32, c.num_heads = 4, c.num_kv_heads = 2, c.rope_dims = 4;
  c.xsa_last_n = 4, c.parallel_start_layer = 3, c.loop_start = 1, c.loop_end = 2, c.num_loops = 1;
  c.train_seq_len = 16;
  c.moa_enabled = 1, c.moa_router_hidden = 16;
  return c;
}

using test::live_model;

void copy_shared(const Model& a, Model& b) {
  at::NoGradGuard no_grad;
  const auto from = a.state();
  for (const auto& name : b.names())
    if (from.count(name) && from.at(name).sizes() == b.param(name).sizes()) b.param(name).copy_(from.at(name));
}
double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Segments with a document start inside the row: (B, T) ids and positions, as core/model segments().
std::pair<at::Tensor, at::Tensor> some_segments(int64_t B, int64_t T, int64_t seq_len) {
  Config c;
  c.train_seq_len = seq_len;
  at::Tensor tokens = at::randint(4, 300, {B, T}, at::kLong);
  tokens[0][5] = 1, tokens[0][9] = 1;
  if (B > 1) tokens[1][T / 2] = 1;
  return segments(tokens, c);
}

// ---- local conv head ----------------------------------------------------------------------------
TEST(MoaConv, EqualsConv1dRunOnEachSegmentSeparately) {
  at::manual_seed(1);
  for (const int64_t k : {1, 3, 4, 7}) {
    const auto [seg, pos] = some_segments(2, 40, 16);
    const at::Tensor x = at::randn({2, 40, 6}, at::kDouble), w = at::randn({6, k}, at::kDouble);
    EXPECT_LE(max_diff(moa::local_conv(x, w, pos), moa::local_conv_naive(x, w, seg)), 1e-12) << "k " << k;
  }
}

TEST(MoaConv, IsCausalAndForgetsTheDocumentBeforeBos) {
  at::manual_seed(2);
  const auto [seg, pos] = some_segments(1, 30, 64);  // BOS at 5 and 9
  const at::Tensor x = at::randn({1, 30, 4}), w = at::randn({4, 4});
  const at::Tensor y = moa::local_conv(x, w, pos);
  at::Tensor x2 = x.clone();
  x2[0][20] += 1.0;  // a later token
  const at::Tensor y2 = moa::local_conv(x2, w, pos);
  EXPECT_TRUE(at::equal(y.narrow(1, 0, 20), y2.narrow(1, 0, 20)));
  EXPECT_GT(max_diff(y.narrow(1, 20, 4), y2.narrow(1, 20, 4)), 1e-3);
  at::Tensor x3 = x.clone();
  x3[0][8] += 1.0;  // the last token before the BOS at 9: tokens 9, 10, 11 must not see it
  const at::Tensor y3 = moa::local_conv(x3, w, pos);
  EXPECT_TRUE(at::equal(y.narrow(1, 9, 21), y3.narrow(1, 9, 21)));
  // The planted leak: the same conv with the row's positions (no reset) does see it.
  const at::Tensor row_pos = at::arange(30, at::kLong).unsqueeze(0);
  EXPECT_GT(max_diff(moa::local_conv(x, w, row_pos).narrow(1, 9, 3), moa::local_conv(x3, w, row_pos).narrow(1, 9, 3)), 1e-3);
}

// ---- metric heads --------------------------------------------------------------------------------
struct MetricCase {
  at::Tensor q, k, v, alpha, w, seg;
};
MetricCase metric_case(at::ScalarType dtype, int64_t T) {
  const int64_t B = 2, H = 3, Dh = 5;
  const auto o = at::TensorOptions().dtype(dtype);
  const auto [seg, pos] = some_segments(B, T, 16);
  return {at::randn({B, T, H, Dh}, o), at::randn({B, T, H, Dh}, o), at::randn({B, T, H, Dh}, o),
          at::softplus(at::randn({H}, o)), at::softplus(at::randn({H, Dh}, o)), seg};
}

TEST(MoaMetric, FoldedSdpaEqualsTheNaiveMinusAlphaDistanceSoftmax) {
  at::manual_seed(3);
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-10 : 1e-5;
    for (const int64_t T : {12, 40}) {  // one block, and the blocked path (T > TRAIN_SEQ_LEN)
      const MetricCase m = metric_case(dtype, T);
      const at::Tensor bias = -at::rand({2, T, 3}, at::TensorOptions().dtype(dtype)) * 3;
      for (const std::string metric : {"l2", "cosine", "diag_mahalanobis"}) {
        for (const bool with_bias : {false, true}) {
          const at::Tensor b = with_bias ? bias : at::Tensor();
          const at::Tensor w = metric == "diag_mahalanobis" ? m.w : at::Tensor();
          const auto [qf, kf] = moa::metric_fold(m.q, m.k, m.alpha, metric, w, b);
          const at::Tensor fast =
              segment_attention(qf, kf, at::constant_pad_nd(m.v, {0, 1}), m.seg, 16, 1.0).narrow(-1, 0, 5);
          const at::Tensor naive = moa::metric_attention_naive(m.q, m.k, m.v, m.alpha, metric, w, b, m.seg);
          EXPECT_LE(max_diff(fast, naive), tol) << metric << " bias " << with_bias << " T " << T << " " << dtype;
        }
      }
      // The test can fail: l2 and cosine differ, and dropping α changes the result.
      const auto [q1, k1] = moa::metric_fold(m.q, m.k, m.alpha, "l2", {}, {});
      const at::Tensor l2 = segment_attention(q1, k1, at::constant_pad_nd(m.v, {0, 1}), m.seg, 16, 1.0).narrow(-1, 0, 5);
      EXPECT_GT(max_diff(l2, moa::metric_attention_naive(m.q, m.k, m.v, m.alpha, "cosine", {}, {}, m.seg)), 1e-3);
      EXPECT_GT(max_diff(l2, moa::metric_attention_naive(m.q, m.k, m.v, at::ones_like(m.alpha), "l2", {}, {}, m.seg)), 1e-3);
    }
  }
}

TEST(MoaMetric, DistancesMatchTheirDefinitions) {
  const at::Tensor x = at::tensor({3.0, 0.0}, at::kDouble), y = at::tensor({0.0, 4.0}, at::kDouble);
  EXPECT_DOUBLE_EQ(moa::distance(x, y, "l2", {}).item<double>(), 25.0);
  EXPECT_DOUBLE_EQ(moa::distance(x, y, "cosine", {}).item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(moa::distance(x, y, "diag_mahalanobis", at::tensor({2.0, 0.5}, at::kDouble)).item<double>(), 26.0);
}

TEST(MoaMetric, AlphaAndRadiusStayPositiveAndStartAtTheirInits) {
  Config c = moa_config();
  c.moa_ball = 1, c.moa_metric = "diag_mahalanobis", c.moa_alpha_init = 0.3;
  at::manual_seed(1);
  const Model m(c, at::kCPU);
  EXPECT_NEAR(at::softplus(m.param("blocks.0.moa.mha_alpha_raw")).min().item<double>(), 0.3, 1e-6);
  EXPECT_NEAR(at::softplus(m.param("blocks.0.moa.mqa_ball_rho")).max().item<double>(), 3.0, 1e-6);
  EXPECT_NEAR(at::softplus(m.param("blocks.0.moa.mha_metric_w_raw")).max().item<double>(), 1.0, 1e-6);
  // softplus keeps α, r and w positive for every raw value the fp32 masters can reasonably reach
  // (it underflows to 0 only below about −103).
  EXPECT_GT(at::softplus(at::tensor({-100.0f, -30.0f, 0.0f, 50.0f})).min().item<float>(), 0.0f);
}

// ---- ball pruning --------------------------------------------------------------------------------
TEST(MoaBall, InfiniteRadiusIsUnmaskedAndTheSoftBiasFollowsTheHardMask) {
  at::manual_seed(4);
  const at::Tensor k = at::randn({2, 20, 3, 5}, at::kDouble), origin = at::randn({3, 5}, at::kDouble);
  const at::Tensor huge = at::full({3}, 1e6, at::kDouble);
  EXPECT_EQ(moa::ball_bias(k, origin, huge, 10.0, 0.1).abs().max().item<double>(), 0.0);
  EXPECT_TRUE(moa::ball_keep_mask(k, origin, huge).all().item<bool>());
  const at::Tensor radius = at::full({3}, 2.2, at::kDouble);
  const at::Tensor keep = moa::ball_keep_mask(k, origin, radius);  // (B, H, T, T)
  EXPECT_TRUE(at::diagonal(keep, 0, 2, 3).all().item<bool>()) << "the diagonal is always kept";
  EXPECT_FALSE(keep.all().item<bool>()) << "some keys lie outside";
  const at::Tensor dist = (k - origin).norm(2, -1), bias = moa::ball_bias(k, origin, radius, 10.0, 0.1);
  EXPECT_GE(bias.masked_select(dist < 2.2 - 1.0).min().item<double>(), -1e-3) << "well inside: ~no penalty";
  EXPECT_LE(bias.masked_select(dist > 2.2 + 1.0).max().item<double>(), -99.0) << "well outside: ~masked";
}

// ---- triangle-inequality penalty -----------------------------------------------------------------
TEST(MoaTriangle, ZeroForTrueMetricsPositiveForSquaredL2) {
  at::manual_seed(5);
  const at::Tensor a = at::randn({500, 2, 4}, at::kDouble), b = at::randn({500, 2, 4}, at::kDouble),
                   c = at::randn({500, 2, 4}, at::kDouble);
  auto l2 = [](const at::Tensor& x, const at::Tensor& y) { return moa::distance(x, y, "l2", {}).sqrt(); };
  EXPECT_LE(at::relu(l2(a, c) - l2(a, b) - l2(b, c)).max().item<double>(), 1e-12) << "non-squared L2 is a metric";
  EXPECT_GT(moa::triangle_violation(a, b, c, "l2", {}).min().item<double>(), 0.0) << "squared L2 is not";
  // Collinear, equally spaced: d²(a, c) = 4 > 1 + 1.
  const at::Tensor p0 = at::zeros({1, 1, 3}, at::kDouble), p1 = p0 + at::tensor({1.0, 0.0, 0.0}, at::kDouble);
  EXPECT_DOUBLE_EQ(moa::triangle_violation(p0, p1, p1 * 2, "l2", {}).item<double>(), 2.0);
}

TEST(MoaTriangle, ThePenaltyEntersTheTrainingLossOnlyAndIsLinearInLambda) {
  Config c = moa_config();
  c.moa_metric = "cosine";
  const Model off = live_model(c);
  auto with_weight = [&](double lambda) {
    Config t = c;
    t.moa_ti_weight = lambda;
    Model m(t, at::kCPU);
    copy_shared(off, m);
    return m;
  };
  const Model on1 = with_weight(1e-2), on2 = with_weight(3e-2);
  const at::Tensor x = at::randint(4, 300, {2, 41}, at::kLong);
  const at::Tensor in = x.narrow(1, 0, 40), tg = x.narrow(1, 1, 40);
  at::NoGradGuard no_grad;
  const double base = off.loss(in, tg, true).item<double>();
  const double p1 = (on1.loss(in, tg, true).item<double>() - base) / 1e-2;
  const double p2 = (on2.loss(in, tg, true).item<double>() - base) / 3e-2;
  EXPECT_GT(p1, 1e-3) << "the penalty is active";
  EXPECT_NEAR(p1, p2, 1e-3 * p1);
  EXPECT_TRUE(at::equal(on1.token_losses(in, tg, true), off.token_losses(in, tg, true))) << "scoring never sees it";
  EXPECT_DOUBLE_EQ(on1.loss(in, tg, true).item<double>(), on1.loss(in, tg, true).item<double>()) << "deterministic";
}

// The forward hands the penalties out through its probes (ForwardProbes), one per layer visit and
// metric branch; loss() adds exactly λ_TI times their sum, and recording them changes no score.
TEST(MoaTriangle, ThePenaltiesAreRecordedThroughTheForwardProbes) {
  Config c = moa_config();
  c.moa_metric = "cosine", c.moa_ti_weight = 1e-2;
  const Model m = live_model(c);
  const at::Tensor x = at::randint(4, 300, {2, 41}, at::kLong);
  const at::Tensor in = x.narrow(1, 0, 40), tg = x.narrow(1, 1, 40);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> penalties;
  const ForwardProbes probes{.moa_triangle_penalties = &penalties};
  const at::Tensor recorded = m.token_losses(in, tg, true, &probes);
  EXPECT_TRUE(at::equal(recorded, m.token_losses(in, tg, true)));
  const auto [enc, dec] = m.visit_order(true);
  int64_t metric_branches = 0;
  for (const auto& b : moa::branches(c)) metric_branches += b == "mha" || b == "mqa";
  ASSERT_GT(metric_branches, 0);
  EXPECT_EQ(static_cast<int64_t>(penalties.size()), static_cast<int64_t>(enc.size() + dec.size()) * metric_branches);
  const double expected = recorded.mean().item<double>() + 1e-2 * at::stack(penalties).sum().item<double>();
  EXPECT_NEAR(m.loss(in, tg, true).item<double>(), expected, 1e-6 * std::abs(expected));
}

// ---- router and FiLM -----------------------------------------------------------------------------
TEST(MoaRouter, UniformAtInitAndAlwaysADistribution) {
  Config c = moa_config();
  at::manual_seed(6);
  const Model fresh(c, at::kCPU);
  const at::Tensor u = at::randn({2, 10, 32});
  at::NoGradGuard no_grad;
  const at::Tensor pi = fresh.moa_routing(1, u);
  ASSERT_EQ(pi.size(-1), 4);
  EXPECT_LE((pi - 0.25).abs().max().item<double>(), 1e-7);
  const Model live = live_model(c);
  const at::Tensor pl = live.moa_routing(1, u);
  EXPECT_LE((pl.sum(-1) - 1).abs().max().item<double>(), 1e-6);
  EXPECT_GT((pl - 0.25).abs().max().item<double>(), 1e-3) << "trained routers are token-wise";
}

TEST(MoaRouter, OneHotOnMhaEqualsTheMhaOnlyMixerAndFilmIsTheIdentityAtInit) {
  // All branches, router forced one-hot on mha (bias), FiLM zero, bias gate σ(c) = σ(40) ≈ 1
  //   == branches "mha" alone with bias gate 40  ==  "mha" alone with c = 3 and W_O scaled by σ(3).
  Config all = moa_config();
  Config mha = all;
  mha.moa_branches = "mha";
  Model m_all = live_model(all);
  Model m_mha(mha, at::kCPU);
  copy_shared(m_all, m_mha);
  at::NoGradGuard no_grad;
  for (int i = 0; i < all.num_layers; ++i) {
    auto p = [&](Model& m, const char* n) -> at::Tensor& { return m.param(fmt::format("blocks.{}.moa.{}", i, n)); };
    p(m_all, "router_out.weight").zero_();
    p(m_all, "router_out.bias").copy_(at::tensor({-1e4f, 0.f, -1e4f, -1e4f}));  // conv, mha, mqa, chan
    p(m_all, "film.weight").zero_();
    p(m_all, "bias_gate.weight").zero_();
    p(m_all, "bias_gate.bias").fill_(40.0);
    p(m_mha, "film.weight").zero_();
    p(m_mha, "bias_gate.weight").zero_();
    p(m_mha, "bias_gate.bias").fill_(40.0);
  }
  const at::Tensor x = at::randint(4, 300, {2, 40}, at::kLong);
  const at::Tensor ref = m_mha.logits(x, true);
  EXPECT_LE(max_diff(m_all.logits(x, true), ref), 1e-5);
  for (int i = 0; i < all.num_layers; ++i) m_mha.param(fmt::format("blocks.{}.moa.bias_gate.bias", i)).fill_(3.0);
  const at::Tensor gated = m_mha.logits(x, true);
  EXPECT_GT(max_diff(gated, ref), 1e-4) << "σ(3) ≠ 1";
  m_mha.param("qo_bank").narrow(0, all.num_layers, all.num_layers).mul_(1.0 / (1.0 + std::exp(-3.0)));
  for (int i = 0; i < all.num_layers; ++i) m_mha.param(fmt::format("blocks.{}.moa.bias_gate.bias", i)).fill_(40.0);
  EXPECT_LE(max_diff(m_mha.logits(x, true), gated), 1e-5);
}

TEST(MoaModel, IsNeutralAtInitLikeTheRecordsZeroOutputBlocks) {
  // Every branch's output matrix starts at zero (O bank, conv/chan/mqa projections) and FiLM's β
  // at zero, so a fresh MoA model's blocks add nothing: logits equal those with all blocks removed.
  Config c = moa_config();
  at::manual_seed(8);
  const Model m(c, at::kCPU);
  Config plain = c;
  plain.moa_enabled = 0;
  Model p(plain, at::kCPU);
  copy_shared(m, p);
  const at::Tensor x = at::randint(4, 300, {2, 30}, at::kLong);
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(m.logits(x, true), p.logits(x, true)));
}

// ---- config --------------------------------------------------------------------------------------
TEST(MoaConfig, ValidateRules) {
  Config c = moa_config();
  EXPECT_NO_THROW(validate(c));
  for (const char* bad : {"conv,chan", "mha,mha", "mha,attn", ""}) {
    Config b = c;
    b.moa_branches = bad;
    EXPECT_THROW(validate(b), Error) << bad;
  }
  Config b = c;
  b.moa_metric = "l1";
  EXPECT_THROW(validate(b), Error);
  b = c, b.smat_use_s = 1;
  EXPECT_THROW(validate(b), Error) << "SMAT modifies the attention MoA replaces";
  b = c, b.moa_enabled = 0, b.moa_ball = 1;
  EXPECT_THROW(validate(b), Error);
  b = c, b.moa_enabled = 0, b.moa_ti_weight = 1e-3;
  EXPECT_THROW(validate(b), Error);
  b = c, b.moa_ball_tau = 0;
  EXPECT_THROW(validate(b), Error);
  b = c, b.moa_conv_kernel = 0;
  EXPECT_THROW(validate(b), Error);
  b = c, b.moa_branches = "chan,mha";  // any order; the router uses the canonical one
  EXPECT_NO_THROW(validate(b));
  EXPECT_EQ(moa::branches(b), (std::vector<std::string>{"mha", "chan"}));
}

// ---- training ------------------------------------------------------------------------------------
TEST(MoaTraining, OneStepGivesEveryMoaParameterAGradientAndMovesIt) {
  for (const std::string metric : {"l2", "diag_mahalanobis"}) {
    Config c = moa_config();
    c.moa_metric = metric, c.moa_ball = 1, c.moa_ti_weight = 1e-2;
    Model m = live_model(c);
    std::vector<std::string> added;
    for (const auto& name : m.names())
      if (name.find(".moa.") != std::string::npos) added.push_back(name);
    const size_t per_layer = 4 + 1 + 2 + 2 + 2 + 3 + 2 * (1 + (metric == "diag_mahalanobis") + 2);
    ASSERT_EQ(added.size(), per_layer * c.num_layers) << "router 4, FiLM 1, bias gate 2, conv 2, chan 2, mqa 3, metric";
    EXPECT_EQ(m.state().count("blocks.0.attn.q_gain"), 0u) << "α replaces q_gain";
    std::map<std::string, at::Tensor> before;
    for (const auto& name : added) before[name] = m.param(name).detach().clone();
    train::Optimizer opt(m, c);
    const at::Tensor x = at::randint(4, 300, {2, 41}, at::kLong);
    m.loss(x.narrow(1, 0, 40), x.narrow(1, 1, 40), true).backward();
    for (const auto& name : added) {
      const at::Tensor& g = m.param(name).grad();
      ASSERT_TRUE(g.defined()) << name;
      EXPECT_GT(g.abs().sum().item<double>(), 0) << name << " gets no gradient";
    }
    opt.clip_gradients();
    opt.step(0, 1.0);
    for (const auto& name : added) EXPECT_GT(max_diff(m.param(name).detach(), before.at(name)), 0) << name;
  }
}

TEST(MoaTraining, AtInitEveryParameterHasAGradientTensor) {
  Config c = moa_config();
  c.moa_ball = 1, c.moa_metric = "diag_mahalanobis", c.moa_ti_weight = 1e-3;
  at::manual_seed(1);
  Model m(c, at::kCPU);
  const at::Tensor x = at::randint(4, 300, {1, 21}, at::kLong);
  m.loss(x.narrow(1, 0, 20), x.narrow(1, 1, 20), false).backward();
  for (const auto& name : m.names()) EXPECT_TRUE(m.param(name).grad().defined()) << name;
}

// ---- BigramHash table in the embedding's AdamW group ---------------------------------------------
TEST(BigramOptimizer, TheTableUsesTheEmbeddingLearningRateAndDecay) {
  Config c = moa_config();
  c.moa_enabled = 0, c.bigram_hash = 1, c.bigram_buckets = 32, c.bigram_dim = 8;
  c.scalar_lr = 0.0, c.tied_embed_lr = 0.05, c.embed_wd = 0.0;
  Model m = live_model(c);
  const at::Tensor table = m.param("bigram.embed.weight").detach().clone();
  const at::Tensor scale = m.param("bigram.scale").detach().clone();
  train::Optimizer opt(m, c);
  const at::Tensor x = at::randint(4, 300, {2, 21}, at::kLong);
  m.loss(x.narrow(1, 0, 20), x.narrow(1, 1, 20), true).backward();
  opt.step(0, 1.0);
  EXPECT_GT(max_diff(m.param("bigram.embed.weight").detach(), table), 1e-3) << "moves at TIED_EMBED_LR";
  EXPECT_TRUE(at::equal(m.param("bigram.scale").detach(), scale)) << "bigram.scale stays in the scalar group";
}

}  // namespace
}  // namespace golf
