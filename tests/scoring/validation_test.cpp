// tests/scoring/validation_test.cpp — training-time validation (and golf-pack --val, which calls the
// same Validation) is golf-eval's plain protocol configured with the training settings: one scorer.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <memory>

#include "core/byte_table.h"
#include "core/error.h"
#include "core/shard.h"
#include "core/tokenizer.h"
#include "scoring/protocols.h"
#include "scoring/val_data.h"
#include "tests/live_model.h"
#include "tests/test_util.h"
#include "scoring/validation.h"

namespace golf {
namespace {

// Val shards of 5 rows of 16 predictions with a few documents, and the settings to score them.
struct ValFixture {
  test::TempDir dir;
  Config cfg = test::small_model_config();
  ValFixture() {
    at::manual_seed(5);
    at::Tensor ids = at::randint(2, 8192, {5 * 16 + 1}, at::kInt);
    ids[0] = 1, ids[20] = 1, ids[47] = 1;  // BOS: documents across row boundaries
    const std::vector<uint16_t> tokens(ids.data_ptr<int32_t>(), ids.data_ptr<int32_t>() + ids.numel());
    shard::write(dir / "fineweb_val_000000.bin", tokens);
    cfg.vocab_size = 8192;
    cfg.data_path = dir.path().string();
    cfg.tokenizer_path = test::challenge_tokenizer().string();
  }
};

TEST(Validation, IsGolfEvalsPlainConfiguredAlike) {
  // VAL_BATCH_SIZE = 32 tokens, one accumulation step: 2 rows of TRAIN_SEQ_LEN = 16 per forward.
  // golf-eval's plain with EVAL_SEQ_LEN = 16 and EVAL_BATCH_SEQS = 2, through its own read of the
  // shards: the same bits.
  ValFixture f;
  f.cfg.val_batch_tokens = 32, f.cfg.grad_accum_steps = 1;
  ASSERT_EQ(scoring::Validation::rows_per_forward(f.cfg, 1), 2);
  const auto model = std::make_shared<Model>(test::live_model(f.cfg));
  for (const bool looping : {false, true}) {
    const scoring::ValidationResult v = scoring::Validation(f.cfg).evaluate(*model, looping);

    Config e = f.cfg;
    e.eval_seq_len = 16, e.eval_batch_seqs = 2;
    const scoring::ValData val = scoring::load_val(e);
    const ByteTable table = ByteTable::build(Tokenizer::load(e.tokenizer_path), 8192);
    const scoring::Stream stream{val.tokens, val.predictions, &table, {}, {}};
    scoring::ModelLM lm(model, e, looping);
    const scoring::Totals t = scoring::plain(lm, stream, e, scoring::Ranks{});
    EXPECT_EQ(v.predictions, 80);
    EXPECT_EQ(v.predictions, t.predictions);
    EXPECT_EQ(v.bytes, t.bytes);
    EXPECT_EQ(v.loss, t.loss()) << "looping " << looping;
    EXPECT_EQ(v.bpb, t.bpb()) << "looping " << looping;
  }
}

TEST(Validation, ScoresThroughAReadOnlyModelAdapter) {
  // Validation holds a const Model&: its ModelLM runs forwards only, and every call that would
  // change the model (TTT's parameters, frozen-block gradients) refuses instead.
  ValFixture f;
  const Model model = test::live_model(f.cfg);
  Config e = f.cfg;
  e.eval_seq_len = 16, e.ttt_freeze_blocks = 2;  // the cut the plain forward below uses
  scoring::ModelLM lm(model, e, true);
  const at::Tensor x = at::randint(2, 8192, {1, 16}, at::kLong);
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(lm.log_probs(x), at::log_softmax(model.logits(x, true), -1)));
  EXPECT_THROW(lm.trainable(), Error);
  EXPECT_THROW(lm.model(), Error);
  EXPECT_THROW(lm.after_backward(), Error);
}

TEST(Validation, RowsPerForwardSplitTheBatchOverRanksAndAccumulationAsTheRecords) {
  // The records: VAL_BATCH_SIZE / (world × grad-accumulation steps) tokens per forward, with
  // accumulation 8 / world by default: 65,536 tokens (32 rows of 2048) on 1 or 8 GPUs.
  Config c;
  c.val_batch_tokens = 524288, c.train_seq_len = 2048, c.grad_accum_steps = 0;
  EXPECT_EQ(scoring::Validation::rows_per_forward(c, 1), 32);
  EXPECT_EQ(scoring::Validation::rows_per_forward(c, 8), 32);
  c.grad_accum_steps = 1;
  EXPECT_EQ(scoring::Validation::rows_per_forward(c, 1), 256);
  EXPECT_EQ(scoring::Validation::rows_per_forward(c, 8), 32);
  c.val_batch_tokens = 1024;  // less than one row: one row per forward
  EXPECT_EQ(scoring::Validation::rows_per_forward(c, 1), 1);
}

TEST(Validation, OneRowPerForwardIsTheSumOfTheRowsTokenLosses) {
  // VAL_BATCH_SIZE = TRAIN_SEQ_LEN: each row alone in its forward (attention cut at the row start
  // and at each BOS), so the score is Σ over rows of the model's own fused cross-entropy, summed
  // here in float64 with the bytes counted from the byte table.
  ValFixture f;
  f.cfg.val_batch_tokens = 16, f.cfg.grad_accum_steps = 1;
  const Model model = test::live_model(f.cfg);
  const scoring::ValidationResult v = scoring::Validation(f.cfg).evaluate(model, true);

  const scoring::ValData val = scoring::load_val(f.cfg, 16, "TRAIN_SEQ_LEN");
  const ByteTable table = ByteTable::build(Tokenizer::load(f.cfg.tokenizer_path), 8192);
  std::vector<int64_t> ids(val.tokens.begin(), val.tokens.end());
  const at::Tensor stream = at::tensor(ids, at::kLong);
  at::NoGradGuard no_grad;
  double nll = 0;
  int64_t bytes = 0;
  for (int64_t r = 0; r < 5; ++r) {
    const at::Tensor x = stream.narrow(0, r * 16, 17).unsqueeze(0);  // (1, 17)
    nll += model.token_losses(x.narrow(1, 0, 16), x.narrow(1, 1, 16), true).to(at::kDouble).sum().item<double>();
    for (int64_t j = r * 16; j < (r + 1) * 16; ++j) bytes += table.bytes(val.tokens[j], val.tokens[j + 1]);
  }
  EXPECT_EQ(v.bytes, bytes);
  EXPECT_NEAR(v.loss, nll / 80, 1e-6);
  EXPECT_NEAR(v.bpb, nll / (std::log(2.0) * static_cast<double>(bytes)), 1e-6);
}

TEST(Validation, ARowShorterThanTrainSeqLenIsOneClearError) {
  ValFixture f;
  f.cfg.train_seq_len = 128;  // 81 tokens: not one row of 128 predictions
  try {
    scoring::Validation v(f.cfg);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than one TRAIN_SEQ_LEN=128 row"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace golf
