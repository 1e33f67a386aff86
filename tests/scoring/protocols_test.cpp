// scoring/protocols.h as a specification: the tilings score every prediction exactly once, sliding
// with stride = context is the plain evaluation of one row per forward, plain packs its rows and
// cuts attention only where the records do (document starts, every EVAL_SEQ_LEN of a document —
// never every TRAIN_SEQ_LEN), TTT with lr 0 is the sliding evaluation, a training TTT changes the
// score (so that comparison can fail), TTT steps once per batch of TTT_BATCH_SEQS rows, and the
// fused SGD equals the per-tensor loop.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAFunctions.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "model/fast_paths.h"
#include "model/model.h"
#include "model/varlen.h"
#include "scoring/ledger.h"
#include "scoring/protocols.h"
#include "scoring/protocols_internal.h"
#include "tests/scoring/eval_fixture.h"
#include "tests/scoring/planted.h"
#include "tests/host_reads.h"

namespace golf::scoring {
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
  for (const auto& w : planted::legacy_sliding_windows(1000, 64, 8))
    for (int64_t j = w.score_from; j < w.end; ++j) ledger.scored(j);
  const CoverageReport c = ledger.coverage();
  EXPECT_FALSE(c.ok());
  EXPECT_GT(c.multiple, 0);
  EXPECT_EQ(c.never, 0);
}

TEST(Protocols, SlidingWithStrideEqualToContextIsPlainWithOneRowPerForward) {
  test::EvalFixture f;
  Config cfg = f.cfg;
  cfg.eval_stride = cfg.eval_seq_len;
  cfg.eval_batch_seqs = 1;  // plain packs the rows of a forward: one row each keeps them apart
  auto lm = f.make_lm();
  const Totals a = plain(*lm, f.stream(), cfg, Ranks{});
  const Totals b = sliding(*lm, f.stream(), cfg, Ranks{});
  EXPECT_EQ(a.predictions, f.predictions);
  EXPECT_EQ(b.predictions, f.predictions);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_DOUBLE_EQ(a.nll, b.nll);
  EXPECT_EQ(a.windows, b.windows);
}

// The reference for score_range's deferred read: the loop it replaced, one forward per batch of
// EVAL_BATCH_SEQS windows (each its own row, padded after its end) read back at once and summed in
// scoring order. Same rows and same forward, so the totals must be equal to the last bit.
Totals per_batch_sliding(LanguageModel& lm, const Stream& s, const Config& cfg) {
  const auto windows = sliding_windows(s.predictions, cfg.eval_seq_len, cfg.eval_stride);
  Totals t;
  at::NoGradGuard no_grad;
  const auto n_windows = static_cast<int64_t>(windows.size());
  for (int64_t b0 = 0; b0 < n_windows; b0 += cfg.eval_batch_seqs) {
    const int64_t n = std::min(cfg.eval_batch_seqs, n_windows - b0);
    int64_t T = 0;
    for (int64_t i = 0; i < n; ++i) T = std::max(T, windows[b0 + i].end - windows[b0 + i].begin);
    at::Tensor in = at::zeros({n, T}, at::kLong), tg = at::zeros({n, T, 1}, at::kLong);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t t = 0; t < windows[b0 + i].end - windows[b0 + i].begin; ++t) {
        in[i][t] = s.tokens[static_cast<size_t>(windows[b0 + i].begin + t)];
        tg[i][t][0] = s.tokens[static_cast<size_t>(windows[b0 + i].begin + t + 1)];
      }
    const at::Tensor nll = (-lm.log_probs(in).gather(-1, tg)).squeeze(-1).to(at::kDouble).contiguous();
    for (int64_t i = 0; i < n; ++i) {
      const Window& w = windows[b0 + i];
      for (int64_t j = w.score_from; j < w.end; ++j) {
        t.nll += nll[i][j - w.begin].item<double>();
        t.bytes += s.bytes(j, s.tokens);
        ++t.predictions;
      }
    }
    t.windows += n;
  }
  return t;
}

// score_range keeps the scored values on the device and reads them once per range; with the
// varlen attention glue the protocols also pass their host rows for cu_seqlens (ModelLM), where
// the reference above lets the model derive them from its own copy of the tokens.
TEST(Protocols, SlidingTotalsAreBitIdenticalToAPerBatchRead) {
  test::EvalFixture f;
  for (const AttnBackend attn : {AttnBackend::sdpa, AttnBackend::varlen_ref}) {
    auto model = std::make_shared<Model>(f.cfg, at::kCPU);
    model->load_state(f.weights);
    FastPaths paths = model->fast_paths();
    paths.attn = attn;
    model->set_fast_paths(paths);
    ModelLM lm(model, f.cfg);
    const Totals a = sliding(lm, f.stream(), f.cfg, Ranks{});
    const Totals b = per_batch_sliding(lm, f.stream(), f.cfg);
    EXPECT_EQ(a.nll, b.nll) << attn_backend_name(attn);
    EXPECT_EQ(a.predictions, b.predictions);
    EXPECT_EQ(a.bytes, b.bytes);
    EXPECT_EQ(a.windows, b.windows);
  }
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

// Where prediction j's document starts inside a forward that begins at `from`: the last BOS at or
// before j, else `from`.
int64_t document_start(const std::vector<uint16_t>& tokens, int64_t from, int64_t j, int64_t bos) {
  for (int64_t p = j; p > from; --p)
    if (tokens[static_cast<size_t>(p)] == bos) return p;
  return from;
}

// Per-prediction nll from one forward over tokens [start, j] for each j (the reference). The model
// cuts that row every EVAL_SEQ_LEN tokens (the SmearGate still reads the token before a cut, as the
// records' packed forward does).
double reference_nll(LanguageModel& lm, const std::vector<uint16_t>& tokens, int64_t start, int64_t j) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> row(tokens.begin() + start, tokens.begin() + j + 1);
  const at::Tensor lp = lm.log_probs(at::from_blob(row.data(), {1, j + 1 - start}, at::kLong));
  return -lp[0][j - start][tokens[static_cast<size_t>(j + 1)]].item<double>();
}

TEST(Protocols, PlainPacksItsRowsAndCutsOnlyAtDocumentStartsAndEveryEvalSeqLen) {
  // Rows of 32 in forwards of 4 rows: a row that begins mid-document keeps that document's context
  // (up to 32 tokens from the document start, then a cut), as the records' eval_val. TRAIN_SEQ_LEN
  // = 8 must not cut anything.
  test::EvalFixture f;
  const auto ref_lm = f.make_lm();  // the reference: TRAIN_SEQ_LEN = EVAL_SEQ_LEN = 32
  f.cfg.train_seq_len = 8;
  auto lm = f.make_lm();
  std::vector<double> nll(static_cast<size_t>(f.predictions), std::nan(""));
  Hooks h;
  h.nll = &nll;
  const Totals t = plain(*lm, f.stream(), f.cfg, Ranks{}, h);
  EXPECT_EQ(t.predictions, f.predictions);
  const int64_t L = f.cfg.eval_seq_len, pack = f.cfg.eval_batch_seqs * L;
  double worst = 0;
  int64_t mid_document_rows = 0;
  for (int64_t j = 0; j < f.predictions; ++j) {
    const int64_t from = j / pack * pack;
    if (j % L == 0 && j % pack != 0 && f.tokens[static_cast<size_t>(j)] != f.cfg.bos_token_id) ++mid_document_rows;
    const double ref = reference_nll(*ref_lm, f.tokens, document_start(f.tokens, from, j, f.cfg.bos_token_id), j);
    worst = std::max(worst, std::abs(ref - nll[static_cast<size_t>(j)]));
  }
  EXPECT_GT(mid_document_rows, 2) << "the fixture has rows that begin mid-document";
  EXPECT_LE(worst, 1e-5);
}

TEST(Protocols, SlidingCutsOnlyAtDocumentStartsNeverEveryTrainSeqLen) {
  test::EvalFixture f;
  const auto ref_lm = f.make_lm();  // the reference: TRAIN_SEQ_LEN = EVAL_SEQ_LEN = 32
  f.cfg.train_seq_len = 8;          // shorter than the windows (32): evaluation must not cut at 8
  auto lm = f.make_lm();
  std::vector<double> nll(static_cast<size_t>(f.predictions), std::nan(""));
  Hooks h;
  h.nll = &nll;
  sliding(*lm, f.stream(), f.cfg, Ranks{}, h);
  double worst = 0;
  for (const auto& w : sliding_windows(f.predictions, f.cfg.eval_seq_len, f.cfg.eval_stride))
    for (int64_t j = w.score_from; j < w.end; ++j) {
      const int64_t start = document_start(f.tokens, w.begin, j, f.cfg.bos_token_id);
      worst = std::max(worst, std::abs(reference_nll(*ref_lm, f.tokens, start, j) - nll[static_cast<size_t>(j)]));
    }
  EXPECT_LE(worst, 1e-5);
}

TEST(Protocols, TttStepsOncePerBatchOfRowsPerRank) {
  // 128-prediction chunks = 4 rows of 32; TTT_BATCH_SEQS 1, 3 and 4 give 4, 2 and 1 steps per epoch.
  test::EvalFixture f;
  f.cfg.ttt_chunk_tokens = 128;
  const int64_t K = (f.predictions + 127) / 128;  // 3 chunks, the last not trained on
  std::map<int64_t, double> nll;
  for (const auto& [batch, steps] : std::vector<std::pair<int64_t, int64_t>>{{1, 4}, {3, 2}, {4, 1}}) {
    TttOptions o = TttOptions::from(f.cfg);
    o.batch_seqs = batch;
    o.lr = 0.02;
    auto lm = f.make_lm();
    Ledger ledger(f.predictions);
    const Totals t = ttt(*lm, f.stream(), f.cfg, o, Ranks{}, {&ledger});
    EXPECT_EQ(ledger.updates().updates, (K - 1) * o.epochs * steps) << "TTT_BATCH_SEQS=" << batch;
    EXPECT_TRUE(ledger.updates().ok());
    nll[batch] = t.nll;
  }
  EXPECT_GT(std::abs(nll[1] - nll[4]), 1e-6 * nll[4]) << "more, smaller steps train differently";
}

TEST(Protocols, FusedSgdEqualsThePerTensorLoop) {
  test::EvalFixture f;
  std::vector<double> nll[2];
  std::map<std::string, at::Tensor> weights[2];
  for (const int fused : {0, 1}) {
    TttOptions o = TttOptions::from(f.cfg);
    o.lr = 0.05;
    o.grad_clip = 0.05;  // small enough that the clip acts
    o.sgd = fused ? TttOptions::Sgd::fused : TttOptions::Sgd::loop;
    auto lm = f.make_lm();
    nll[fused].assign(static_cast<size_t>(f.predictions), 0);
    Hooks h;
    h.nll = &nll[fused];
    ttt(*lm, f.stream(), f.cfg, o, Ranks{}, h);
    weights[fused] = dynamic_cast<ModelLM&>(*lm).model().state();
  }
  double worst_nll = 0, worst_w = 0;
  for (size_t j = 0; j < nll[0].size(); ++j) worst_nll = std::max(worst_nll, std::abs(nll[0][j] - nll[1][j]));
  for (const auto& [name, w] : weights[0]) worst_w = std::max(worst_w, (w - weights[1].at(name)).abs().max().item<double>());
  EXPECT_LE(worst_nll, 1e-5);
  EXPECT_LE(worst_w, 1e-5);
  EXPECT_GT((weights[0].at("qo_bank") - f.weights.at("qo_bank")).abs().max().item<double>(), 1e-4) << "the weights moved";
}

TEST(Protocols, FusedSgdStepReadsNothingBackToTheHost) {
  // TTT's global SGD (score-first TTT and phased TTT's global phase both step detail::Sgd): the
  // fused step clips and updates on the device; the per-tensor loop reads each norm to the host
  // (which also shows that the recorder sees reads).
  for (const bool fused : {true, false}) {
    at::manual_seed(3);
    std::vector<at::Tensor> params{at::randn({4, 5}), at::randn({7})}, grads{at::randn({4, 5}), at::randn({7})};
    detail::Sgd sgd(params, fused ? TttOptions::Sgd::fused : TttOptions::Sgd::loop);
    test::HostReads reads;
    sgd.step(grads, 0.1, 0.9, 0.05);
    sgd.step(grads, 0.05, 0.9, 0.05);
    EXPECT_EQ(reads.stop().empty(), fused) << (fused ? "fused" : "loop");
  }
}

// The fixture's model on `device` with every fast path and a varlen attention backend (varlen_ref
// on the CPU, the default flash on CUDA).
std::unique_ptr<ModelLM> fast_lm(const test::EvalFixture& f, at::Device device) {
  auto model = std::make_shared<Model>(f.cfg, device);
  model->load_state(f.weights);
  FastPaths fp = fast_paths_from_env(device.is_cuda());
  if (!device.is_cuda()) fp.attn = AttnBackend::varlen_ref;
  fp.fused_ops = fp.bank_unbind = fp.fused_qk = fp.fused_mix = true;
  model->set_fast_paths(fp);
  return std::make_unique<ModelLM>(model, f.cfg);
}

// One scored batch and two TTT steps as the protocols run them: rows built on the host and copied
// from pinned memory without blocking, their segment bounds passed with them (host_rows); the loss
// backward, the frozen blocks' rows zeroed, the fused SGD with the cosine lr changing between steps.
void eval_forward_and_ttt_steps(const test::EvalFixture& f, ModelLM& lm, detail::Sgd& sgd, bool host_rows) {
  const int64_t L = f.cfg.eval_seq_len;
  const at::Device device = lm.device();
  std::vector<int64_t> rows(f.tokens.begin(), f.tokens.begin() + 2 * L + 1);
  const at::Tensor host = at::from_blob(rows.data(), {2, L}, at::kLong);
  const at::Tensor host_targets = at::from_blob(rows.data() + 1, {2, L}, at::kLong);
  auto copy = [&](const at::Tensor& t) { return device.is_cuda() ? t.pin_memory().to(device, /*non_blocking=*/true) : t; };
  const at::Tensor inputs = copy(host), targets = copy(host_targets);
  const at::Tensor given = host_rows ? host : at::Tensor();
  {
    at::NoGradGuard no_grad;
    lm.log_probs_of_rows(inputs, given);  // a scored batch (sliding windows, TTT's scoring pass)
  }
  for (const double lr : {0.05, 0.025}) {
    for (auto& p : sgd.params)
      if (p.mutable_grad().defined()) p.mutable_grad().zero_();
    lm.loss_of_rows(inputs, targets, given).backward();
    lm.after_backward();
    std::vector<at::Tensor> grads;
    for (auto& p : sgd.params) grads.push_back(p.mutable_grad().defined() ? p.mutable_grad() : at::zeros_like(p));
    sgd.step(grads, lr, 0.9, 1.0);
  }
}

TEST(Protocols, TheEvalForwardAndTttStepsReadNothingBackToTheHost) {
  // What capturing eval and TTT batches in CUDA graphs needs (issue 13): with the rows' segment
  // bounds given from the host, the scoring forward, the TTT loss forward + backward and the fused
  // SGD step (device lr) read no device value back. The only calls the recorder sees are those of
  // varlen_segments on the host rows themselves (host data, once per forward: 3 forwards), which
  // it cannot tell from device reads on the CPU. Without host rows the varlen forward copies the
  // tokens back to derive the bounds: the recorder sees more.
  test::EvalFixture f;
  f.cfg.ttt_freeze_blocks = 1;  // after_backward's row zeroing runs too
  std::vector<std::string> host_side;  // what varlen_segments of one batch of host rows records
  {
    const at::Tensor rows = at::randint(4, 60, {2, f.cfg.eval_seq_len}, at::kLong);
    const ModelConfig model_config = f.cfg;
    test::HostReads reads;
    varlen_segments(rows, model_config, 64, f.cfg.eval_seq_len);
    host_side = reads.stop();
  }
  std::vector<std::string> expected;
  for (int forward = 0; forward < 3; ++forward) expected.insert(expected.end(), host_side.begin(), host_side.end());
  for (const bool host_rows : {true, false}) {
    auto lm = fast_lm(f, at::kCPU);
    detail::Sgd sgd(lm->trainable(), TttOptions::Sgd::fused);
    test::HostReads reads;
    eval_forward_and_ttt_steps(f, *lm, sgd, host_rows);
    const std::vector<std::string> seen = reads.stop();
    if (host_rows)
      EXPECT_EQ(seen, expected) << "reads beyond varlen_segments on the host rows";
    else
      EXPECT_GT(seen.size(), expected.size()) << "the fallback reads the tokens";
  }
}

TEST(Protocols, TheEvalForwardAndTttStepsDoNotSyncOnGpu) {
  // The same batch and steps on the card under PyTorch's sync debug mode "error" (throws at any
  // blocking device→host copy, .item() or stream synchronisation), after one warm-up round.
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  test::EvalFixture f;
  f.cfg.ttt_freeze_blocks = 1;
  auto lm = fast_lm(f, at::kCUDA);
  detail::Sgd sgd(lm->trainable(), TttOptions::Sgd::fused);
  eval_forward_and_ttt_steps(f, *lm, sgd, true);
  torch::cuda::synchronize();
  c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
  EXPECT_NO_THROW(eval_forward_and_ttt_steps(f, *lm, sgd, true));
  c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
  torch::cuda::synchronize();
  for (const auto& p : sgd.params) EXPECT_TRUE(p.isfinite().all().item<bool>());
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
}  // namespace golf::scoring
