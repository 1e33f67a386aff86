// eval/protocols.h as a specification: the tilings score every prediction exactly once, sliding
// with stride = context is the plain evaluation, TTT with lr 0 is the sliding evaluation, and a
// training TTT changes the score (so that comparison can fail).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "eval/ledger.h"
#include "eval/protocols.h"
#include "tests/eval/eval_fixture.h"

namespace golf::eval {
namespace {

TEST(Tiling, SlidingWindowsCoverEveryPredictionOnceAndMatchTheFormula) {
  for (const int64_t M : {1, 7, 63, 64, 65, 200, 1000})
    for (const int64_t L : {8, 64})
      for (const int64_t s : {1, 3, 8, 64}) {
        if (s > L) continue;
        const auto windows = sliding_windows(M, L, s);
        std::vector<int> hits(static_cast<size_t>(M), 0);
        for (const auto& w : windows) {
          ASSERT_LE(w.end - w.begin, L);
          ASSERT_LE(w.begin, w.score_from);
          if (&w != &windows.front()) {
            ASSERT_GE(w.score_from - w.begin, std::min(L - s, w.end - w.begin)) << "every later window keeps its context";
          }
          for (int64_t j = w.score_from; j < w.end; ++j) ++hits[static_cast<size_t>(j)];
        }
        for (int64_t j = 0; j < M; ++j) ASSERT_EQ(hits[static_cast<size_t>(j)], 1) << "M=" << M << " L=" << L << " s=" << s << " j=" << j;
        EXPECT_EQ(static_cast<int64_t>(windows.size()), expected_sliding_windows(M, L, s));
      }
}

TEST(Tiling, TheEarlyImplementationScoresTheTailTwice) {
  Ledger ledger(1000);
  for (const auto& w : legacy_sliding_windows(1000, 64, 8))
    for (int64_t j = w.score_from; j < w.end; ++j) ledger.scored(j);
  const CoverageReport c = ledger.coverage();
  EXPECT_FALSE(c.ok());
  EXPECT_GT(c.multiple, 0);
  EXPECT_EQ(c.never, 0);
}

TEST(Protocols, SlidingWithStrideEqualToContextIsPlain) {
  test::EvalFixture f;
  Config cfg = f.cfg;
  cfg.eval_stride = cfg.eval_seq_len;
  auto lm = f.make_lm();
  const Totals a = plain(*lm, f.stream(), cfg, Ranks{});
  const Totals b = sliding(*lm, f.stream(), cfg, Ranks{});
  EXPECT_EQ(a.predictions, f.predictions);
  EXPECT_EQ(b.predictions, f.predictions);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_DOUBLE_EQ(a.nll, b.nll);
  EXPECT_EQ(a.windows, b.windows);
}

TEST(Protocols, SlidingScoresWithMoreContextThanPlain) {
  test::EvalFixture f;
  auto lm = f.make_lm();
  const Totals a = plain(*lm, f.stream(), f.cfg, Ranks{});
  const Totals b = sliding(*lm, f.stream(), f.cfg, Ranks{});
  EXPECT_EQ(a.predictions, b.predictions);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_NE(a.nll, b.nll);  // different context per prediction, so different numbers
  EXPECT_GT(b.windows, a.windows);
}

TEST(Protocols, TttWithZeroLearningRateIsSliding) {
  test::EvalFixture f;
  auto lm = f.make_lm();
  const Totals s = sliding(*lm, f.stream(), f.cfg, Ranks{});
  TttOptions o = TttOptions::from(f.cfg);
  o.lr = 0;
  auto fresh = f.make_lm();
  Ledger ledger(f.predictions);
  const Totals t = ttt(*fresh, f.stream(), f.cfg, o, Ranks{}, {&ledger});
  EXPECT_EQ(t.predictions, s.predictions);
  EXPECT_EQ(t.bytes, s.bytes);
  EXPECT_NEAR(t.nll, s.nll, 1e-9 * s.nll);
  EXPECT_GT(t.chunks, 2);
  EXPECT_GT(ledger.updates().updates, 0) << "the TTT path ran its optimizer steps (with lr 0)";
  EXPECT_TRUE(ledger.coverage().ok());
}

TEST(Protocols, TttThatLearnsChangesTheScore) {
  test::EvalFixture f;
  auto lm = f.make_lm();
  const Totals s = sliding(*lm, f.stream(), f.cfg, Ranks{});
  TttOptions o = TttOptions::from(f.cfg);
  o.lr = 0.05;
  auto fresh = f.make_lm();
  const Totals t = ttt(*fresh, f.stream(), f.cfg, o, Ranks{});
  EXPECT_EQ(t.predictions, s.predictions);
  EXPECT_GT(std::abs(t.nll - s.nll), 1e-6 * s.nll);
}

TEST(Protocols, FrozenBlocksKeepTheirWeightsUnderTtt) {
  test::EvalFixture f;
  f.cfg.ttt_freeze_blocks = 1;
  auto lm = f.make_lm();
  auto& model = dynamic_cast<ModelLM&>(*lm).model();
  const at::Tensor qo = model.param("qo_bank").detach().clone();
  const at::Tensor gain0 = model.param("blocks.0.attn.q_gain").detach().clone();
  const at::Tensor gain1 = model.param("blocks.1.attn.q_gain").detach().clone();
  TttOptions o = TttOptions::from(f.cfg);
  o.lr = 0.05;
  ttt(*lm, f.stream(), f.cfg, o, Ranks{});
  const int64_t L = f.cfg.num_layers;
  EXPECT_TRUE(at::equal(model.param("qo_bank")[0], qo[0]));
  EXPECT_TRUE(at::equal(model.param("qo_bank")[L], qo[L]));
  EXPECT_TRUE(at::equal(model.param("blocks.0.attn.q_gain"), gain0));
  EXPECT_FALSE(at::equal(model.param("qo_bank")[1], qo[1]));
  EXPECT_FALSE(at::equal(model.param("blocks.1.attn.q_gain"), gain1));
}

}  // namespace
}  // namespace golf::eval
