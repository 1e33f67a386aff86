// scoring/compliance.h as a specification: every check passes on the real model and protocols, and
// FAILS on its planted violation — a model that peeks at the next token (C1), an unnormalised
// softmax (C2), an evaluator that trains before scoring (C3), the double-scored tail of the early
// sliding implementation (C4), a SmearGate without the BOS mask (document isolation), and a byte
// table that charges "▁" twice (bytes).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/byte_table.h"
#include "core/tokenizer.h"
#include "scoring/compliance.h"
#include "tests/scoring/eval_fixture.h"
#include "tests/scoring/planted.h"
#include "tests/test_util.h"

namespace golf::scoring {
namespace {

// The real model, but position t's distribution leans towards token t + 1: a C1 violation.
class PeekingLM : public LanguageModel {
 public:
  explicit PeekingLM(std::unique_ptr<LanguageModel> inner) : inner_(std::move(inner)) {}
  at::Tensor log_probs(const at::Tensor& inputs) override {
    const at::Tensor lp = inner_->log_probs(inputs);  // (B, T, V)
    const int64_t T = inputs.size(1);
    at::Tensor bias = at::zeros_like(lp);
    bias.narrow(1, 0, T - 1).scatter_(-1, inputs.narrow(1, 1, T - 1).unsqueeze(-1), 3.0);
    return at::log_softmax(lp + bias, -1);
  }
  at::Tensor loss(const at::Tensor& i, const at::Tensor& t) override { return inner_->loss(i, t); }
  std::vector<at::Tensor> trainable() override { return inner_->trainable(); }
  at::Device device() const override { return inner_->device(); }

 private:
  std::unique_ptr<LanguageModel> inner_;
};

// Raw logits scored as if they were log-probabilities: a C2 violation.
class UnnormalizedLM : public LanguageModel {
 public:
  explicit UnnormalizedLM(std::unique_ptr<LanguageModel> inner) : inner_(std::move(inner)) {}
  at::Tensor log_probs(const at::Tensor& inputs) override { return inner_->log_probs(inputs) + 0.5; }
  at::Tensor loss(const at::Tensor& i, const at::Tensor& t) override { return inner_->loss(i, t); }
  std::vector<at::Tensor> trainable() override { return inner_->trainable(); }
  at::Device device() const override { return inner_->device(); }

 private:
  std::unique_ptr<LanguageModel> inner_;
};

TEST(Causality, PassesForSlidingAndTtt) {
  test::EvalFixture f;
  const LmFactory make = [&] { return f.make_lm(); };
  for (const char* protocol : {"sliding", "ttt"}) {
    const CheckResult r = check_causality(make, f.tokens, f.table, f.cfg, causality_probe(protocol, f.cfg, f.predictions), 1e-6);
    EXPECT_EQ(r.status, "PASS") << r.detail;
    EXPECT_EQ(r.detail.find(" 0 later scores changed"), std::string::npos) << "perturbations must take effect: " << r.detail;
  }
}

TEST(Causality, FailsForAModelThatPeeksAtTheNextToken) {
  test::EvalFixture f;
  const LmFactory make = [&] { return std::make_unique<PeekingLM>(f.make_lm()); };
  const CheckResult r = check_causality(make, f.tokens, f.table, f.cfg, causality_probe("sliding", f.cfg, f.predictions), 1e-6);
  EXPECT_EQ(r.status, "FAIL") << r.detail;
}

TEST(Causality, FailsForAnEvaluatorThatTrainsBeforeScoring) {
  test::EvalFixture f;
  const LmFactory make = [&] { return f.make_lm(); };
  planted::TrainBeforeScore train_first;
  const auto probe = planted::observed(causality_probe("ttt", f.cfg, f.predictions), train_first);
  const CheckResult r = check_causality(make, f.tokens, f.table, f.cfg, probe, 1e-6);
  EXPECT_EQ(r.status, "FAIL") << r.detail;
}

TEST(Normalization, PassesForTheModelAndFailsForAnUnnormalisedSoftmax) {
  test::EvalFixture f;
  auto lm = f.make_lm();
  const CheckResult ok = check_normalization(*lm, f.tokens, f.cfg);
  EXPECT_EQ(ok.status, "PASS") << ok.detail;
  UnnormalizedLM bad(f.make_lm());
  const CheckResult r = check_normalization(bad, f.tokens, f.cfg);
  EXPECT_EQ(r.status, "FAIL") << r.detail;
}

TEST(ScoreBeforeUpdate, TheLedgerOfScoreFirstTttPassesAndTrainBeforeScoreFails) {
  test::EvalFixture f;
  for (const bool plant : {false, true}) {
    auto lm = f.make_lm();
    planted::TrainBeforeScore train_first;
    Ledger ledger(f.predictions);
    Hooks hooks{&ledger};
    if (plant) hooks.observer = &train_first;
    ttt(*lm, f.stream(), f.cfg, TttOptions::from(f.cfg), Ranks{}, hooks);
    const CheckResult r = check_score_before_update(ledger.updates(), true);
    EXPECT_EQ(r.status, plant ? "FAIL" : "PASS") << r.detail;
    EXPECT_TRUE(ledger.coverage().ok()) << "both still score every prediction once";
  }
}

TEST(ScoreBeforeUpdate, NoTttMeansNoUpdates) {
  const CheckResult r = check_score_before_update(UpdateReport{}, false);
  EXPECT_EQ(r.status, "PASS");
}

TEST(SinglePass, PassesForTheProtocolsAndFailsForTheDoubleScoredTail) {
  test::EvalFixture f;
  auto lm = f.make_lm();
  const int64_t expected = expected_sliding_windows(f.predictions, f.cfg.eval_seq_len, f.cfg.eval_stride);
  std::vector<CoverageEntry> good, bad;
  for (const bool legacy : {false, true}) {
    Ledger ledger(f.predictions);
    const Totals t = legacy ? planted::legacy_sliding(*lm, f.stream(), f.cfg, {&ledger})
                            : sliding(*lm, f.stream(), f.cfg, Ranks{}, {&ledger});
    (legacy ? bad : good).push_back({"sliding", ledger.coverage(), t.windows, expected});
  }
  EXPECT_EQ(check_single_pass(good).status, "PASS") << check_single_pass(good).detail;
  const CheckResult r = check_single_pass(bad);
  EXPECT_EQ(r.status, "FAIL") << r.detail;
  EXPECT_NE(r.detail.find("more than once"), std::string::npos) << r.detail;
}

TEST(DocumentIsolation, PassesWithTheBosMaskAndFailsWithoutIt) {
  test::EvalFixture f;
  auto lm = f.make_lm();
  const CheckResult ok = check_document_isolation(*lm, f.tokens, f.cfg, 1e-5);
  EXPECT_EQ(ok.status, "PASS") << ok.detail;
  f.cfg.smear_bos_mask = 0;  // the PR #1797 leak: SmearGate blends doc A's last token into B's BOS
  auto leaky = f.make_lm();
  const CheckResult r = check_document_isolation(*leaky, f.tokens, f.cfg, 1e-5);
  EXPECT_EQ(r.status, "FAIL") << r.detail;
}

TEST(ByteRecount, EqualsDecodingAndCatchesADoubleCountedSpace) {
  GOLF_REQUIRE_FILE(test::challenge_tokenizer());
  const Tokenizer tok = Tokenizer::load(test::challenge_tokenizer());
  const ByteTable table = ByteTable::build(tok, 8192);
  std::vector<uint16_t> tokens;
  for (const char* doc : {"The quick brown fox jumps over the lazy dog.", "  Deux documents, ça suffit : 42 € !",
                          "A third one\nwith a newline and émojis 🙂."}) {
    tokens.push_back(static_cast<uint16_t>(tok.bos_id()));
    for (const int id : tok.encode(doc)) tokens.push_back(static_cast<uint16_t>(id));
  }
  const int64_t M = static_cast<int64_t>(tokens.size()) - 1;
  const CheckResult ok = check_byte_recount(tokens, M, table, tok);
  EXPECT_EQ(ok.status, "PASS") << ok.detail;
  // A stream that starts mid-document (no BOS first) is counted the same way by both.
  const std::vector<uint16_t> tail(tokens.begin() + 3, tokens.end());
  const CheckResult mid = check_byte_recount(tail, static_cast<int64_t>(tail.size()) - 1, table, tok);
  EXPECT_EQ(mid.status, "PASS") << mid.detail;

  ByteTable doubled = table;  // PRs #1545/#1576: +1 for "▁" in the table on top of the runtime +1
  for (size_t id = 0; id < doubled.base_bytes.size(); ++id)
    if (doubled.leading_space[id]) ++doubled.base_bytes[id];
  const CheckResult r = check_byte_recount(tokens, M, doubled, tok);
  EXPECT_EQ(r.status, "FAIL") << r.detail;
}

}  // namespace
}  // namespace golf::scoring
