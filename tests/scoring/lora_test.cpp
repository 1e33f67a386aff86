// LoRA TTT and phased TTT (scoring/protocols.h) as a specification: the LoRA-augmented forward is the
// base forward when B = 0 (bit for bit) and equals an independent Python implementation otherwise;
// documents and the queue follow the records; with lr 0 each chunk is scored by the base model on
// its document window; every prediction is scored once; phases train on already-scored documents;
// and the compliance checks FAIL on each planted violation (train a chunk before scoring it, LoRA
// state leaking across documents, an unscored document in a global SGD phase).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <numeric>

#include "model/model.h"
#include "core/tensor_io.h"
#include "scoring/compliance.h"
#include "scoring/protocols.h"
#include "tests/scoring/eval_fixture.h"
#include "tests/scoring/planted.h"
#include "tests/test_util.h"

namespace golf::scoring {
namespace {

LoraOptions small_options(const Config& cfg) {
  LoraOptions o = LoraOptions::from(cfg, cfg.seed);
  o.rank = 4;
  o.alpha = 8;
  o.chunk = 8;
  o.seq_len = cfg.eval_seq_len;
  o.batch_size = 4;
  o.lr = 0.01;
  o.weight_decay = 0.5;
  o.prefix_docs = 8;
  o.num_phases = 2;
  o.global_chunk_tokens = 32;
  o.global_lr = 0.01;
  return o;
}

// Random deltas at every site of every visit and the head; B scaled by b_scale (0: B = 0).
// The forward of a LoRA delta over segments cut every seq_len_cut tokens (no cu_seqlens).
ForwardOptions lora_forward(int64_t seq_len_cut, const LoraDelta* lora) {
  ForwardOptions o;
  o.seq_len_cut = seq_len_cut;
  o.lora = lora;
  return o;
}

LoraDelta random_delta(const Model& m, int64_t rows, int64_t r, double b_scale, double scale) {
  const ModelConfig& c = m.config();
  const int64_t d = c.model_dim, kv = c.num_kv_heads * (d / c.num_heads);
  const auto [enc, dec] = m.visit_order(c.num_loops > 0);
  auto pair = [&](int64_t in, int64_t out) {
    return LoraPair{at::randn({rows, r, in}) / std::sqrt(static_cast<double>(in)), at::randn({rows, out, r}) * b_scale, scale};
  };
  LoraDelta delta;
  for (size_t v = 0; v < enc.size() + dec.size(); ++v)
    delta.visits.push_back({pair(d, d), pair(d, kv), pair(d, kv), pair(d, d), pair(d, d)});
  delta.head = pair(d, c.vocab_size);
  return delta;
}

TEST(LoraForward, ZeroBIsBitEqualToTheBaseForward) {
  test::EvalFixture f;
  auto lm = f.make_lm();
  const Model& m = dynamic_cast<ModelLM&>(*lm).model();
  at::NoGradGuard no_grad;
  at::manual_seed(3);
  at::Tensor x = at::randint(4, f.cfg.vocab_size, {3, 40}, at::kLong);
  x.index_put_({0, 10}, f.cfg.bos_token_id);
  const LoraDelta delta = random_delta(m, 3, 4, /*b_scale=*/0.0, 2.0);
  for (const bool looping : {false, true}) {
    const at::Tensor base = m.logits(x, looping, nullptr, lora_forward(32, nullptr));
    const at::Tensor with = m.logits(x, looping, nullptr, lora_forward(32, &delta));
    EXPECT_TRUE(at::equal(base, with)) << "looping " << looping;
  }
  const LoraDelta live = random_delta(m, 3, 4, 0.1, 2.0);
  EXPECT_GT((m.logits(x, true, nullptr, lora_forward(32, &live)) - m.logits(x, true, nullptr, lora_forward(32, nullptr))).abs().max().item<double>(), 1e-3)
      << "a non-zero B changes the output (so the comparison above can fail)";
}

TEST(LoraForward, EqualsTheIndependentPythonImplementation) {
  test::EvalFixture f;
  auto lm = f.make_lm();
  const Model& m = dynamic_cast<ModelLM&>(*lm).model();
  at::NoGradGuard no_grad;
  at::manual_seed(4);
  at::Tensor x = at::randint(4, f.cfg.vocab_size, {2, 30}, at::kLong);
  x.index_put_({0, 0}, f.cfg.bos_token_id);
  x.index_put_({1, 12}, f.cfg.bos_token_id);
  const double scale = 1.5;
  const LoraDelta delta = random_delta(m, 2, 3, 0.3, scale);
  test::TempDir dir;
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, p] : m.state()) out["weights/" + name] = p.detach();
  out["tokens"] = x;
  for (size_t v = 0; v < delta.visits.size(); ++v) {
    const LoraVisit& lv = delta.visits[v];
    const std::pair<const char*, const LoraPair*> sites[] = {{"q", &lv.q}, {"k", &lv.k}, {"v", &lv.v}, {"o", &lv.o}, {"mlp", &lv.mlp}};
    for (const auto& [site, p] : sites) {
      out[fmt::format("lora/{}/{}/a", v, site)] = p->a;
      out[fmt::format("lora/{}/{}/b", v, site)] = p->b;
    }
  }
  out["lora/head/a"] = delta.head.a;
  out["lora/head/b"] = delta.head.b;
  save_tensors(dir.path() / "in.safetensors", out,
               {{"config", to_json(f.cfg).dump()}, {"scale", fmt::format("{}", scale)}, {"looping", "1"}});
  const auto r = test::run_reference("lora_reference.py", test::quote(dir.path() / "in.safetensors") + " " +
                                                              test::quote(dir.path() / "out.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const at::Tensor ref = load_tensors(dir.path() / "out.safetensors").at("logits");
  // The Python twin cuts segments every TRAIN_SEQ_LEN: the same cut here.
  const at::Tensor ours = m.logits(x, true, nullptr, lora_forward(f.cfg.train_seq_len, &delta));
  ASSERT_EQ(ours.sizes(), ref.sizes());
  const double err = (ours - ref).abs().max().item<double>();
  EXPECT_LE(err, 1e-5) << "max |Δlogit| " << err;
  EXPECT_GT((ours - m.logits(x, true, nullptr, lora_forward(f.cfg.train_seq_len, nullptr))).abs().max().item<double>(), 1e-3);
}

TEST(LoraTtt, DocumentsTileThePredictionsAndTheQueueIsTheRecords) {
  test::EvalFixture f;
  const auto docs = documents(f.stream(), f.cfg.bos_token_id);
  ASSERT_GT(docs.size(), 5u);
  int64_t next = 0;
  for (const auto& d : docs) {
    EXPECT_EQ(d.begin, next);
    EXPECT_GT(d.end, d.begin);
    if (d.begin > 0) {
      EXPECT_EQ(f.tokens[static_cast<size_t>(d.begin)], f.cfg.bos_token_id);
    }
    if (d.end < f.predictions) {
      EXPECT_EQ(f.tokens[static_cast<size_t>(d.end)], f.cfg.bos_token_id) << "ends at (and predicts) the next BOS";
    }
    next = d.end;
  }
  EXPECT_EQ(next, f.predictions);
  const auto queue = lora_queue(docs, 4);
  std::vector<int64_t> seen;
  for (size_t b = 0; b < queue.size(); ++b) {
    for (size_t i = 1; i < queue[b].size(); ++i)
      EXPECT_LE(docs[static_cast<size_t>(queue[b][i - 1])].predictions(), docs[static_cast<size_t>(queue[b][i])].predictions());
    if (b > 0) {
      EXPECT_GE(docs[static_cast<size_t>(queue[b - 1].back())].predictions(), docs[static_cast<size_t>(queue[b].back())].predictions())
          << "longest batches first";
    }
    seen.insert(seen.end(), queue[b].begin(), queue[b].end());
  }
  std::sort(seen.begin(), seen.end());
  std::vector<int64_t> all(docs.size());
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(seen, all);
}

TEST(LoraTtt, WithZeroLearningRateEachChunkIsScoredByTheBaseModelOnItsDocumentWindow) {
  test::EvalFixture f;
  LoraOptions o = small_options(f.cfg);
  o.lr = 0;
  o.seq_len = 16;  // shorter than some documents: windows slide inside them
  auto lm = f.make_lm();
  std::vector<double> nll(static_cast<size_t>(f.predictions), std::nan(""));
  Ledger ledger(f.predictions);
  const Totals t = lora_ttt(*lm, f.stream(), f.cfg, o, Ranks{}, {&ledger, &nll});
  EXPECT_EQ(t.predictions, f.predictions);
  EXPECT_TRUE(ledger.coverage().ok()) << ledger.coverage().describe();
  EXPECT_GT(ledger.updates().updates, 0);
  // Reference: prediction j in chunk [a, e) of its document scored from tokens [max(begin, e − 16), e).
  auto ref_lm = f.make_lm();
  at::NoGradGuard no_grad;
  double worst = 0;
  for (const auto& d : documents(f.stream(), f.cfg.bos_token_id))
    for (int64_t a = d.begin; a < d.end; a += o.chunk) {
      const int64_t e = std::min(a + o.chunk, d.end), w = std::max(d.begin, e - o.seq_len);
      std::vector<int64_t> row(f.tokens.begin() + w, f.tokens.begin() + e);
      const at::Tensor lp = ref_lm->log_probs(at::from_blob(row.data(), {1, e - w}, at::kLong));
      for (int64_t j = a; j < e; ++j) {
        const double ref = -lp[0][j - w][f.tokens[static_cast<size_t>(j + 1)]].item<double>();
        worst = std::max(worst, std::abs(ref - nll[static_cast<size_t>(j)]));
      }
    }
  EXPECT_LE(worst, 1e-5);
}

TEST(LoraTtt, LearningChangesTheScoreAndEveryUpdateUsesScoredPredictions) {
  test::EvalFixture f;
  LoraOptions o = small_options(f.cfg);
  auto still = f.make_lm();
  LoraOptions zero = o;
  zero.lr = 0;
  const Totals base = lora_ttt(*still, f.stream(), f.cfg, zero, Ranks{});
  for (const bool phased : {false, true}) {
    o.phased = phased;
    auto lm = f.make_lm();
    Ledger ledger(f.predictions);
    const Totals t = lora_ttt(*lm, f.stream(), f.cfg, o, Ranks{}, {&ledger});
    EXPECT_EQ(t.predictions, f.predictions);
    EXPECT_EQ(t.bytes, base.bytes);
    EXPECT_GT(std::abs(t.nll - base.nll), 1e-6 * base.nll) << "phased " << phased;
    EXPECT_TRUE(ledger.coverage().ok()) << ledger.coverage().describe();
    EXPECT_EQ(check_score_before_update(ledger.updates(), true).status, "PASS") << ledger.updates().describe();
    if (phased) {
      EXPECT_EQ(t.phases, 2);
      EXPECT_GT(t.global_steps, 0);
    }
  }
}

TEST(LoraTtt, ARankLargerThanALayerIsOneClearError) {
  test::EvalFixture f;
  LoraOptions o = small_options(f.cfg);
  o.rank = 17;  // K/V: 32 → 16
  try {
    validate_lora(f.cfg, o);
    FAIL() << "accepted a rank larger than the K/V projection";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TTT_LORA_RANK=17"), std::string::npos) << e.what();
  }
  o.rank = 16;
  EXPECT_NO_THROW(validate_lora(f.cfg, o));
}

// ---- compliance on planted violations -------------------------------------------------------
TEST(LoraCompliance, TrainingAChunkBeforeScoringItFailsScoreBeforeUpdate) {
  test::EvalFixture f;
  for (const bool phased : {false, true}) {
    LoraOptions o = small_options(f.cfg);
    o.phased = phased;
    planted::TrainBeforeScore train_first;
    auto lm = f.make_lm();
    Ledger ledger(f.predictions);
    Hooks hooks{&ledger};
    hooks.observer = &train_first;
    lora_ttt(*lm, f.stream(), f.cfg, o, Ranks{}, hooks);
    const CheckResult r = check_score_before_update(ledger.updates(), true);
    EXPECT_EQ(r.status, "FAIL") << r.detail;
    EXPECT_TRUE(ledger.coverage().ok()) << "still scores every prediction once";
  }
}

TEST(LoraCompliance, AnUnscoredDocumentInAGlobalSgdPhaseFailsScoreBeforeUpdate) {
  test::EvalFixture f;
  LoraOptions o = small_options(f.cfg);
  o.phased = true;
  o.lr = 0;  // the LoRA steps are legal either way: only the phase can fail
  planted::UnscoredInPhase unscored;
  auto lm = f.make_lm();
  Ledger ledger(f.predictions);
  Hooks hooks{&ledger};
  hooks.observer = &unscored;
  lora_ttt(*lm, f.stream(), f.cfg, o, Ranks{}, hooks);
  const CheckResult r = check_score_before_update(ledger.updates(), true);
  EXPECT_EQ(r.status, "FAIL") << r.detail;
}

TEST(LoraCompliance, DocumentIsolationPassesAndFailsWhenLoraStateLeaksAcrossDocuments) {
  test::EvalFixture f;
  const LmFactory make = [&] { return f.make_lm(); };
  LoraOptions o = small_options(f.cfg);
  const CheckResult ok = check_lora_document_isolation(make, f.tokens, f.table, f.cfg, o, 1e-5);
  EXPECT_EQ(ok.status, "PASS") << ok.detail;
  const CheckResult r = check_lora_document_isolation(make, f.tokens, f.table, f.cfg, planted::leaking_lora(o), 1e-5);
  EXPECT_EQ(r.status, "FAIL") << r.detail;
}

TEST(LoraCompliance, CausalityHoldsInStreamAndQueueOrderForLoraAndInQueueOrderForPhased) {
  test::EvalFixture f;
  const LmFactory make = [&] { return f.make_lm(); };
  for (const bool phased : {false, true}) {
    LoraOptions o = small_options(f.cfg);
    o.phased = phased;
    const CheckResult r = check_causality(make, f.tokens, f.table, f.cfg, lora_causality_probe(f.cfg, f.tokens, f.predictions, o), 1e-6);
    EXPECT_EQ(r.status, "PASS") << r.detail;
    EXPECT_NE(r.detail.find("queue order"), std::string::npos) << r.detail;
    EXPECT_NE(r.detail.find("stream order"), std::string::npos) << r.detail;
    EXPECT_EQ(r.detail.find(" 0 later scores changed"), std::string::npos) << r.detail;
  }
  // A carried across batches: later documents see earlier ones.
  const LoraOptions leak = planted::leaking_lora(small_options(f.cfg));
  const CheckResult r = check_causality(make, f.tokens, f.table, f.cfg, lora_causality_probe(f.cfg, f.tokens, f.predictions, leak), 1e-6);
  EXPECT_EQ(r.status, "FAIL") << r.detail;
}

}  // namespace
}  // namespace golf::scoring
namespace golf::scoring {
// A document of two predictions (its first chunk is trained on, its second scored) beside a long
// one: the case the CLI fixture's first document hits.
TEST(LoraCompliance, DocumentIsolationWithATwoPredictionDocument) {
  test::EvalFixture f;
  const LmFactory make = [&] { return f.make_lm(); };
  LoraOptions o = small_options(f.cfg);
  std::vector<uint16_t> t = {1, 7};
  for (int i = 0; i < 27; ++i) t.push_back(static_cast<uint16_t>(i == 0 ? 1 : 4 + (i * 7) % 50));
  t.push_back(1);
  t.push_back(9);
  t.push_back(1);
  {
    const CheckResult ok = check_lora_document_isolation(make, t, f.table, f.cfg, o, 1e-5);
    EXPECT_EQ(ok.status, "PASS") << ok.detail;
  }
}
}  // namespace golf::scoring
