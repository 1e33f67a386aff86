// The planner's embedding term as a specification (pack/plan.h, token_coverage and predict): the
// rows seen are counted over the packing loader's prefix of the train shards (each shard from its
// first BOS, whole spans of TRAIN_BATCH_TOKENS / accum + 1 tokens, ITERATIONS · accum of them), a
// plan longer than what was read scales the counts, shards that cannot be found mean every row
// seen (the larger prediction) and say so, a bad shard is one error naming it; predict codes the
// rare rows at the rare offset and the rest at the seen one.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/shard.h"
#include "pack/plan.h"
#include "train/loader.h"

namespace golf {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("golf-plan-tokens-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                        "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// 64 tokens, one step = 1 span of 8 + 1 tokens (TRAIN_BATCH_TOKENS 8, GRAD_ACCUM_STEPS 1).
Config small(const fs::path& data, int64_t iterations) {
  Config c;
  c.vocab_size = 64;
  c.data_path = data.string();
  c.train_batch_tokens = 8;
  c.grad_accum_steps = 1;
  c.iterations = iterations;
  return c;
}

// A two-layer model with a 512-token embedding `dim` wide (validated), for the rare rows' offsets.
Config two_layer_model(int64_t dim) {
  Config cfg;
  cfg.vocab_size = 512;
  cfg.num_layers = 2;
  cfg.model_dim = dim;
  cfg.num_heads = 4;
  cfg.num_kv_heads = 2;
  cfg.rope_dims = 8;
  cfg.loop_start = 0;
  cfg.loop_end = 1;
  cfg.num_loops = 1;
  cfg.parallel_start_layer = 1;
  cfg.passthrough_max_numel = 1024;
  validate(cfg);
  return cfg;
}

// The reference count: the loader's prefix taken by hand, token by token.
int64_t rows_seen_by_hand(const std::vector<std::vector<uint16_t>>& shards, int64_t span, int64_t spans,
                          int64_t vocab, int64_t seen_count) {
  std::vector<int64_t> counts(static_cast<size_t>(vocab), 0);
  for (const auto& s : shards) {
    int64_t at = std::find(s.begin(), s.end(), shard::kBos) - s.begin();
    while (spans > 0 && at + span <= static_cast<int64_t>(s.size())) {
      for (int64_t i = at; i < at + span; ++i) ++counts[s[static_cast<size_t>(i)]];
      at += span;
      --spans;
    }
  }
  return std::count_if(counts.begin(), counts.end(), [&](int64_t n) { return n >= seen_count; });
}

TEST(PlanTokens, APrefixThatMissesTokensCountsOnlyTheRowsItHolds) {
  TempDir dir;
  // Shard 0: a few tokens before the first BOS (never trained on), then tokens 0..31 repeated;
  // shard 1: tokens 32..63. A short plan reads part of shard 0 only.
  std::vector<uint16_t> s0 = {50, 51, 52, shard::kBos}, s1 = {shard::kBos};
  for (int r = 0; r < 40; ++r)
    for (uint16_t t = 0; t < 32; ++t) s0.push_back(t);
  for (int r = 0; r < 40; ++r)
    for (uint16_t t = 32; t < 64; ++t) s1.push_back(t);
  shard::write(dir.path / shard::file_name("train", 0), s0);
  shard::write(dir.path / shard::file_name("train", 1), s1);
  const std::vector<std::vector<uint16_t>> shards = {s0, s1};
  for (const int64_t steps : {1, 20, 60, 141, 142, 200}) {
    SCOPED_TRACE(steps);
    const pack::TokenCoverage c = pack::token_coverage(small(dir.path, steps), 2);
    ASSERT_TRUE(c.measured) << c.note;
    EXPECT_EQ(c.planned_tokens, steps * 9);
    EXPECT_EQ(c.rows, 64);
    // Within what the shards hold (each holds 141 or 142 whole spans): the exact prefix.
    if (c.tokens_read == c.planned_tokens) {
      EXPECT_EQ(c.rows_seen, rows_seen_by_hand(shards, 9, steps, 64, 2));
    }
  }
  // One step: the span from shard 0's first BOS, BOS 0 1 … 7: 8 rows seen, token 1 (BOS) twice;
  // 50..52 before that BOS are not read.
  EXPECT_EQ(pack::token_coverage(small(dir.path, 1), 1).rows_seen, 8);
  EXPECT_EQ(pack::token_coverage(small(dir.path, 1), 2).rows_seen, 1);
  EXPECT_EQ(pack::token_coverage(small(dir.path, 1'000'000), 1).rows_seen, 64);
}

TEST(PlanTokens, TheCountIsTheTrainingLoadersOwnPrefix) {
  // The reference: golf-train's packing Loader itself (train/loader.h), ITERATIONS batches of one
  // process, counted; shards of uneven length with text before their first BOS and ragged tails.
  TempDir dir;
  uint32_t x = 12345;
  const auto next = [&] { return x = x * 1664525u + 1013904223u; };
  for (int i = 0; i < 3; ++i) {
    std::vector<uint16_t> s = {static_cast<uint16_t>(40 + i), shard::kBos};
    const int n = 700 + 311 * i;
    for (int k = 0; k < n; ++k) s.push_back(static_cast<uint16_t>(next() % 7 ? (next() >> 8) % 24 : 24 + (next() >> 8) % 40));
    shard::write(dir.path / shard::file_name("train", i), s);
  }
  int compared = 0;
  for (const int64_t accum : {1, 3})
    for (const int64_t steps : {1, 7, 40, 90, 300}) {
      SCOPED_TRACE(::testing::Message() << "accum " << accum << ", steps " << steps);
      Config cfg = small(dir.path, steps);
      cfg.train_batch_tokens = 8 * accum;
      cfg.grad_accum_steps = accum;
      train::LoaderOptions o;
      o.data_dir = dir.path;
      o.tokens_per_rank = 8;
      o.prefetch = 0;
      auto loader = train::Loader::create("packing", o);
      std::vector<int64_t> counts(64, 0);
      for (int64_t b = 0; b < steps * accum; ++b)
        for (const uint16_t t : loader->next().tokens) ++counts[t];
      const pack::TokenCoverage c = pack::token_coverage(cfg, 3);
      if (c.tokens_read < c.planned_tokens) continue;  // past the shards: scaled, not the loader's wrap
      EXPECT_EQ(c.planned_tokens, std::accumulate(counts.begin(), counts.end(), int64_t{0}));
      EXPECT_EQ(c.rows_seen, std::count_if(counts.begin(), counts.end(), [](int64_t n) { return n >= 3; }));
      ++compared;
    }
  EXPECT_EQ(compared, 9);  // all but 300 steps × 3 (900 spans; the shards hold 336)
}

TEST(PlanTokens, APlanLongerThanTheShardsScalesTheCounts) {
  TempDir dir;
  // Token 2 once in 900 tokens, the rest 0 and 1 (and BOS): 100 spans of 9.
  std::vector<uint16_t> s = {shard::kBos};
  for (int i = 0; i < 899; ++i) s.push_back(i == 450 ? 2 : static_cast<uint16_t>(i % 2 ? 0 : 3));
  shard::write(dir.path / shard::file_name("train", 0), s);
  // The loader wraps: 1000 steps read the shard 10 times, so token 2 is seen ~10 times.
  const pack::TokenCoverage once = pack::token_coverage(small(dir.path, 100), 5);
  const pack::TokenCoverage tenfold = pack::token_coverage(small(dir.path, 1000), 5);
  EXPECT_EQ(once.tokens_read, 900);
  EXPECT_EQ(tenfold.tokens_read, 900);
  EXPECT_EQ(once.rows_seen, 2) << "0 and 3; BOS and token 2 once";
  EXPECT_EQ(tenfold.rows_seen, 4) << "BOS and token 2 expected 10 times";
}

TEST(PlanTokens, NoShardsMeansEveryRowSeenAndSaysSo) {
  TempDir dir;
  for (const fs::path& data : {dir.path, dir.path / "missing"}) {
    const pack::TokenCoverage c = pack::token_coverage(small(data, 10), 16);
    EXPECT_FALSE(c.measured);
    EXPECT_EQ(c.rows_seen, c.rows);
    EXPECT_NE(c.note.find("every embedding row taken as seen"), std::string::npos) << c.note;
    EXPECT_NE(c.note.find(data.string()), std::string::npos) << c.note;
  }
  shard::write(dir.path / shard::file_name("train", 0), std::vector<uint16_t>(100, 5));
  Config coprime = small(dir.path, 10);
  coprime.loader = "coprime";
  const pack::TokenCoverage c = pack::token_coverage(coprime, 16);
  EXPECT_FALSE(c.measured);
  EXPECT_NE(c.note.find("LOADER=coprime"), std::string::npos) << c.note;
}

TEST(PlanTokens, ABadShardIsOneErrorNamingIt) {
  TempDir dir;
  const fs::path bad = dir.path / shard::file_name("train", 0);
  std::ofstream(bad, std::ios::binary) << std::string(1030, 'x');
  try {
    pack::token_coverage(small(dir.path, 10), 16);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad.string()), std::string::npos) << e.what();
  }
  std::vector<uint16_t> s = {shard::kBos, 70};  // id ≥ VOCAB_SIZE 64
  s.resize(100, 3);
  shard::write(bad, s);
  EXPECT_THROW(pack::token_coverage(small(dir.path, 10), 16), Error);
}

TEST(PlanTokens, PredictCodesRareRowsAtTheRareOffset) {
  const Config cfg = two_layer_model(64);
  // Rare rows at −1.5 − 0.25 · ln(steps), steps clamped to [10, 40]. Named brotli so that its
  // long-training term applies beyond 40 steps (to the seen rows only).
  const pack::SizeModel m{"brotli", -0.25, 0.5, 0.5, 0.5, -1.5, -0.25, 0.0, 10, 40, 1, 1, 1.0, 1.0, 1.0, 1.0, 1.0, 0};
  pack::Plan all = pack::layout(pack::model_shapes(cfg), cfg);
  pack::predict(all, m, 0);
  pack::Plan some = all;
  some.coverage.measured = true;
  some.coverage.rows = 512;
  some.coverage.rows_seen = 200;
  some.coverage.steps = 20;
  pack::predict(some, m, 0);
  const auto emb = std::find_if(all.tensors.begin(), all.tensors.end(),
                                [](const pack::PlannedTensor& t) { return t.group == "embedding"; });
  ASSERT_NE(emb, all.tensors.end());
  ASSERT_EQ(emb->shape[0], 512);
  // 312 rare rows of 64 codes each cost 1.25 + 0.25 · ln 20 bits/code less than at the seen offset.
  EXPECT_NEAR(all.gptq_code_bytes - some.gptq_code_bytes, 312.0 * 64 * (1.25 + 0.25 * std::log(20.0)) / 8, 1e-6);
  // Steps below 10 are clamped; beyond the calibrated 40 the line continues. (From 40 steps on, the
  // long-training term lowers every seen code as well, so each is compared with every row seen at
  // the same steps.)
  for (const auto& [steps, at] : std::vector<std::pair<int64_t, double>>{{1, 10}, {10, 10}, {40, 40}, {400, 400}}) {
    pack::Plan p = some, every_row_seen = all;
    p.coverage.steps = every_row_seen.coverage.steps = steps;
    pack::predict(p, m, 0);
    pack::predict(every_row_seen, m, 0);
    EXPECT_NEAR(every_row_seen.gptq_code_bytes - p.gptq_code_bytes,
                312.0 * 64 * (1.25 + 0.25 * std::log(at) + pack::long_training_offset("brotli", steps, 40)) / 8, 1e-6)
        << steps;
  }
  // Far beyond: the line would go below zero bits; each rare code is floored at 0 bits.
  {
    pack::Plan p = some, every_row_seen = all;
    p.coverage.steps = every_row_seen.coverage.steps = int64_t{1} << 40;
    pack::predict(p, m, 0);
    pack::predict(every_row_seen, m, 0);
    const int qmax = (1 << (emb->bits - 1)) - 1;
    const double h = pack::rounded_gaussian_bits(qmax / emb->clip_sigmas, qmax);
    ASSERT_LT(m.rare_offset(p.coverage.steps, 64), -h);
    EXPECT_NEAR(every_row_seen.gptq_code_bytes - p.gptq_code_bytes,
                312.0 * 64 * (h + m.embedding_offset + pack::long_training_bits_per_code("brotli")) / 8, 1e-6);
  }
  // Every row seen, or coverage not measured: the same prediction.
  pack::Plan seen = all;
  seen.coverage.measured = true;
  seen.coverage.rows = seen.coverage.rows_seen = 512;
  pack::predict(seen, m, 0);
  EXPECT_EQ(seen.artifact_bytes, all.artifact_bytes);
}

TEST(PlanTokens, TheShippedModelsNeverPredictLessForSeenRows) {
  // The safe direction for golf-train's refusal: a run that sees every token (a GPU-scale run)
  // must not be predicted below one that sees few.
  for (const std::string& c : pack::calibrated_compressors()) {
    const pack::SizeModel& m = pack::size_model(c);
    for (const int64_t steps : {1, 10, 35, 20000})
      for (const int64_t dim : {64, 128, 512, 4096})
        EXPECT_GE(m.embedding_offset, m.rare_offset(steps, dim)) << c << " " << steps << " " << dim;
  }
}

// The never-seen rows' offset depends on the embedding's width: a + b · ln(steps) + c · ln(dim), each
// clamped to the calibrated runs. Wider rows repeat less (the shared drift is smaller against each
// row's own noise), so c > 0 for Brotli, whose LZ matches need whole repeated codes (measured: 10-step
// runs' never-seen rows −0.07 bits/code at 256 wide, −0.00 at 384; 14 steps at 128 wide −1.06).
TEST(PlanTokens, RareRowsCostMoreTheWiderTheRow) {
  const pack::SizeModel m{"test", -0.25, 0.5, 0.5, 0.5, -4.0, -0.25, 0.5, 10, 40, 128, 512, 1.0, 1.0, 1.0, 1.0, 1.0, 0};
  EXPECT_NEAR(m.rare_offset(20, 256), -4.0 - 0.25 * std::log(20.0) + 0.5 * std::log(256.0), 1e-12);
  EXPECT_EQ(m.rare_offset(20, 64), m.rare_offset(20, 128));     // clamped: no extrapolation
  EXPECT_EQ(m.rare_offset(20, 4096), m.rare_offset(20, 512));
  EXPECT_LT(m.rare_offset(20, 128), m.rare_offset(20, 512));
  EXPECT_EQ(m.rare_offset(1, 256), m.rare_offset(10, 256));     // below the calibrated steps: clamped
  EXPECT_NEAR(m.rare_offset(400, 128), -4.0 - 0.25 * std::log(400.0) + 0.5 * std::log(128.0), 1e-12);  // beyond: the line
  pack::SizeModel capped = m;  // never above the seen rows' offset
  capped.embedding_offset = -2.0;
  EXPECT_EQ(capped.rare_offset(20, 512), -2.0);
  EXPECT_EQ(capped.rare_offset(20, 128), m.rare_offset(20, 128));
  // Through predict(): the same rows rare, the embedding 64 vs 128 wide (dims clamped to [64, 128]).
  const pack::SizeModel w{"test", 0.0, 0.0, 0.0, 0.0, -3.0, 0.0, 0.5, 10, 10, 64, 128, 1.0, 1.0, 1.0, 1.0, 1.0, 0};
  double rare_bits[2];
  for (int i = 0; i < 2; ++i) {
    const Config c = two_layer_model(i == 0 ? 64 : 128);
    pack::Plan p = pack::layout(pack::model_shapes(c), c), every_row_seen = p;
    p.coverage.measured = true;
    p.coverage.rows = 512;
    p.coverage.rows_seen = 200;
    p.coverage.steps = 10;
    pack::predict(p, w, 0);
    pack::predict(every_row_seen, w, 0);
    rare_bits[i] = 8 * (every_row_seen.gptq_code_bytes - p.gptq_code_bytes) / (312.0 * c.model_dim);  // saved per rare code
    EXPECT_NEAR(rare_bits[i], 3.0 - 0.5 * std::log(static_cast<double>(c.model_dim)), 1e-9) << c.model_dim;
  }
  EXPECT_NEAR(rare_bits[0] - rare_bits[1], 0.5 * std::log(2.0), 1e-9);
  // The shipped models carry the measured sign: wider rows, smaller saving. Brotli's always; golf's
  // since its format-2 coder codes a referenced row with the reference's codes as contexts (own
  // offsets −2.28 at 14 steps × 128 wide, −1.44 / −1.28 at 10 steps × 256 / 384).
  for (const char* name : {"brotli", "golf"}) {
    const pack::SizeModel& shipped = pack::size_model(name);
    EXPECT_GT(shipped.embedding_rare_dim_slope, 0) << name;
    EXPECT_GT(shipped.rare_offset(14, 512), shipped.rare_offset(14, 128)) << name;
  }
}

// Rows seen kSeenTokenCount … kSeenOftenCount − 1 times (session 8): golf codes them −0.27 … −0.40
// bits/code below H on all six calibration runs (plan_embedding_rows.json), well below the seen
// rows' offset; a model with mid_class plans them at embedding_mid_offset (plus the long-training
// term, as the seen rows), one without at embedding_offset.
TEST(PlanTokens, RowsSeenFewTimesCodeAtTheMidOffset) {
  const Config cfg = two_layer_model(64);
  pack::SizeModel m{"test", -0.25, 0.5, 0.5, 0.5, -1.5, 0.0, 0.0, 10, 40, 1, 1, 1.0, 1.0, 1.0, 1.0, 1.0, 0};
  m.mid_class = true;
  m.embedding_mid_offset = -0.75;
  pack::Plan plan = pack::layout(pack::model_shapes(cfg), cfg);
  plan.coverage.measured = true;
  plan.coverage.rows = 512;
  plan.coverage.rows_seen = 400;        // 112 rare
  plan.coverage.rows_seen_often = 150;  // 250 seen 1–15 times
  plan.coverage.steps = 20;
  pack::Plan without_mid = plan;
  pack::predict(plan, m, 0);
  pack::SizeModel no_mid = m;
  no_mid.mid_class = false;
  pack::predict(without_mid, no_mid, 0);
  // 250 rows of 64 codes each at −0.75 instead of −0.25: 0.5 bits/code less.
  EXPECT_NEAR(without_mid.gptq_code_bytes - plan.gptq_code_bytes, 250.0 * 64 * 0.5 / 8, 1e-6);
  // The sign matters: a mid offset above the seen one plans more.
  pack::SizeModel flipped = m;
  flipped.embedding_mid_offset = 0.25;
  pack::Plan up = plan;
  pack::predict(up, flipped, 0);
  EXPECT_NEAR(up.gptq_code_bytes - without_mid.gptq_code_bytes, 250.0 * 64 * 0.5 / 8, 1e-6);
  // Every row seen often (a GPU-scale run, or no shards): the class is empty.
  pack::Plan often = plan, often_no_mid = plan;
  often.coverage.rows_seen_often = often_no_mid.coverage.rows_seen_often = 400;
  pack::predict(often, m, 0);
  pack::predict(often_no_mid, no_mid, 0);
  EXPECT_EQ(often.artifact_bytes, often_no_mid.artifact_bytes);
}

// The more often a row was trained, the closer its codes are to H: never-seen rows (c_rare) below
// rows seen 1–15 times (c_mid) below rows seen often (c_seen). Measured per run: mid − seen −0.27 …
// −0.40 bits/code on format 1, c_mid −0.51 … −0.73 on format 3 (c_seen −0.05); c_rare −1.35 …
// −2.66 over the calibrated steps and widths.
TEST(PlanTokens, TheShippedGolfModelPlansRowsSeenFewTimesBelowTheSeenRows) {
  const pack::SizeModel& golf = pack::size_model("golf");
  ASSERT_TRUE(golf.mid_class);
  EXPECT_LT(golf.embedding_mid_offset, golf.embedding_offset - 0.2);
  for (const int64_t steps : {golf.rare_steps_lo, golf.rare_steps_hi})
    for (const int64_t dim : {golf.rare_dims_lo, golf.rare_dims_hi})
      EXPECT_GT(golf.embedding_mid_offset, golf.rare_offset(steps, dim)) << steps << " steps, " << dim << " wide";
  EXPECT_FALSE(pack::size_model("brotli").mid_class);  // Brotli's drift with steps: c_seen for them
  EXPECT_EQ(pack::size_model("brotli").mid_offset(), pack::size_model("brotli").embedding_offset);
}

// golf's never-seen rows flatten with steps (format-2 coder: own offsets −2.02 at 23 steps and −2.03
// at 35, −2.95 at 205): c_rare is linear in a power of steps (rare_steps_power; golf's is −2, chosen
// over −0.25 … −3 and ln on the six runs, scripts/bench/plan_calibrate.py), which tends to the
// intercept as steps grow, where ln(steps) (power 0, brotli) keeps falling.
TEST(PlanTokens, RareRowsStepVariableIsAPowerOrTheLog) {
  pack::SizeModel m{"test", 0.0, 0.5, 0.5, 0.5, -3.0, 6.0, 0.0, 10, 40, 1, 1, 1.0, 1.0, 1.0, 1.0, 1.0, 0};
  m.rare_steps_power = -0.5;
  EXPECT_NEAR(m.rare_offset(25, 1), -3.0 + 6.0 / 5.0, 1e-12);
  EXPECT_NEAR(m.rare_offset(400, 1), -3.0 + 6.0 / 20.0, 1e-12);  // beyond the calibrated 40: the curve
  EXPECT_EQ(m.rare_offset(1, 1), m.rare_offset(10, 1));           // below: clamped
  EXPECT_GT(m.rare_offset(1'000'000, 1), -3.0);                   // never below the intercept
  m.rare_steps_power = 0;
  m.embedding_rare_slope = -0.25;
  EXPECT_NEAR(m.rare_offset(25, 1), -3.0 - 0.25 * std::log(25.0), 1e-12);
  const pack::SizeModel& golf = pack::size_model("golf");
  EXPECT_EQ(golf.rare_steps_power, -2.0);
  EXPECT_GT(golf.embedding_rare_slope, 0);  // more steps, fewer bits: the slope on 1/steps² is positive
  EXPECT_LT(golf.rare_offset(205, 128), golf.rare_offset(35, 128));
  EXPECT_EQ(pack::size_model("brotli").rare_steps_power, 0);
}

TEST(PlanTokens, RowsSeenOftenCountedBesideRowsSeen) {
  TempDir dir;
  std::vector<uint16_t> s = {shard::kBos};
  for (int i = 0; i < 899; ++i) s.push_back(static_cast<uint16_t>(i < 5 ? 2 : i < 8 ? 4 : i % 2 ? 0 : 3));
  shard::write(dir.path / shard::file_name("train", 0), s);
  const pack::TokenCoverage c = pack::token_coverage(small(dir.path, 100), 1, 4);
  EXPECT_EQ(c.rows_seen, 5) << "BOS, 0, 2, 3, 4";
  EXPECT_EQ(c.rows_seen_often, 3) << "0, 3 and token 2 (5 times); not BOS (once) or 4 (3 times)";
  EXPECT_EQ(c.often_count, 4);
  EXPECT_NE(c.note.find("≥ 4 times: 3"), std::string::npos) << c.note;
  const pack::TokenCoverage alone = pack::token_coverage(small(dir.path, 100), 1);  // no often count
  EXPECT_EQ(alone.rows_seen_often, alone.rows_seen);
}

}  // namespace
}  // namespace golf
