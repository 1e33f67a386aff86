// golf-pack plan and golf-train's preflight through their CLIs: a plan prints its table and
// writes its JSON; --fit prints a ready --set line whose plan fits; an invalid configuration is one
// clear error with nothing written; golf-train refuses a run predicted over the budget before it
// creates the run directory, and trains anyway with --allow-over-budget; the plan says how many
// embedding rows DATA_PATH's train shards let the planned training see, or that it took every row
// as seen (no shards: the larger prediction).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/shard.h"

#include "tests/test_util.h"

namespace golf {
namespace {

using test::quote;

// A small model (fast to build) of the default stack.
const std::string kSmall =
    " --set VOCAB_SIZE=1024 --set NUM_LAYERS=4 --set MODEL_DIM=128 --set NUM_LOOPS=0 --set PARALLEL_START_LAYER=2";

test::CommandResult pack(const std::string& args) { return test::run(std::string("'") + GOLF_PACK_BIN + "' " + args); }

int count_lines_with(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(PlanCli, PrintsTheTableAndWritesJson) {
  test::TempDir dir;
  const auto r = pack("plan" + kSmall + " --json " + quote(dir / "plan.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("predicted artifact"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("embedding"), std::string::npos) << r.output;
  const auto j = nlohmann::json::parse(test::read_file(dir / "plan.json"));
  EXPECT_EQ(j.at("bytes_total").get<int64_t>(), j.at("bytes_model").get<int64_t>() + j.at("bytes_code").get<int64_t>());
  EXPECT_GT(j.at("bytes_code").get<int64_t>(), 0);  // counted code is part of the total
  EXPECT_TRUE(j.at("fits").get<bool>());
}

TEST(PlanCli, FitPrintsASetLineThatFits) {
  test::TempDir dir;
  const auto r = pack("plan" + kSmall + " --set ARTIFACT_BUDGET=1000000 --fit layers --margin 20000 --json " +
                      quote(dir / "fit.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(test::read_file(dir / "fit.json"));
  const std::string set = j.at("fit").at("set").get<std::string>();
  EXPECT_NE(r.output.find(set), std::string::npos) << r.output;
  EXPECT_LE(j.at("bytes_total").get<int64_t>(), 1'000'000 - 20'000);
  // The printed line, applied, plans the same total.
  const auto again = pack("plan" + kSmall + " --set ARTIFACT_BUDGET=1000000 " + set + " --json " + quote(dir / "again.json"));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(nlohmann::json::parse(test::read_file(dir / "again.json")).at("bytes_total"), j.at("bytes_total"));
}

TEST(PlanCli, InvalidConfigurationIsOneErrorAndWritesNothing) {
  test::TempDir dir;
  for (const std::string bad : {" --set MODEL_DIM=500",        // not divisible by NUM_HEADS=8
                                " --set NOT_A_SETTING=1",      // unknown key
                                " --set COMPRESSOR=zstd"}) {   // no such compressor
    SCOPED_TRACE(bad);
    const auto r = pack("plan" + kSmall + bad + " --json " + quote(dir / "plan.json"));
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_EQ(count_lines_with(r.output, "golf-pack: error: "), 1) << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir / "plan.json"));
  }
}

TEST(PlanCli, GolfTrainRefusesARunOverTheBudget) {
  test::TempDir dir;
  const std::string run = std::string("'") + GOLF_TRAIN_BIN + "'" + kSmall + " --set OUTPUT_DIR=" +
                          quote(dir / "runs") + " --set RUN_ID=over --set ARTIFACT_BUDGET=100000" +
                          " --set DATA_PATH=" + quote(dir / "no-data");
  const auto refused = test::run(run);
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_EQ(count_lines_with(refused.output, "golf-train: error: "), 1) << refused.output;
  EXPECT_NE(refused.output.find("--allow-over-budget"), std::string::npos) << refused.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "runs")) << "nothing may be written";

  // With the flag it goes on (and then stops at the missing data, after saying it is over).
  const auto allowed = test::run(run + " --allow-over-budget");
  EXPECT_NE(allowed.output.find("plan: OVER the budget"), std::string::npos) << allowed.output;
  EXPECT_NE(allowed.output.find("plan: predicted artifact"), std::string::npos) << allowed.output;
  EXPECT_NE(allowed.output.find("plan: tokens: no fineweb_train_*.bin at DATA_PATH="), std::string::npos)
      << allowed.output;
}

TEST(PlanCli, TheEmbeddingTermReadsTheTrainShardsOrSaysItAssumedEveryRowSeen) {
  test::TempDir dir;
  std::filesystem::create_directories(dir / "data");
  std::vector<uint16_t> tokens = {shard::kBos};
  for (int i = 0; i < 20000; ++i) tokens.push_back(static_cast<uint16_t>(2 + i % 100));  // 100 of 1024 tokens
  shard::write(dir / "data" / shard::file_name("train", 0), tokens);
  const std::string base = "plan" + kSmall + " --set TRAIN_BATCH_TOKENS=1024 --set GRAD_ACCUM_STEPS=1 --set ITERATIONS=10";
  const auto none = pack(base + " --set DATA_PATH=" + quote(dir / "empty") + " --json " + quote(dir / "none.json"));
  const auto some = pack(base + " --set DATA_PATH=" + quote(dir / "data") + " --json " + quote(dir / "some.json"));
  ASSERT_EQ(none.exit_code, 0) << none.output;
  ASSERT_EQ(some.exit_code, 0) << some.output;
  EXPECT_NE(none.output.find("every embedding row taken as seen (the larger prediction)"), std::string::npos)
      << none.output;
  EXPECT_NE(some.output.find("embedding rows seen ≥ 1 times in the planned 10,250 training tokens: 101 of 1,024"),
            std::string::npos) << some.output;  // kSeenTokenCount = 1: the 100 tokens and BOS
  const auto a = nlohmann::json::parse(test::read_file(dir / "none.json"));
  const auto b = nlohmann::json::parse(test::read_file(dir / "some.json"));
  EXPECT_FALSE(a.at("coverage").at("measured").get<bool>());
  EXPECT_TRUE(b.at("coverage").at("measured").get<bool>());
  EXPECT_EQ(b.at("coverage").at("rows_seen").get<int64_t>(), 101);
  // 923 rows never seen code below the seen offset: the measured plan is the smaller one.
  EXPECT_LT(b.at("bytes_total").get<int64_t>(), a.at("bytes_total").get<int64_t>());
}

}  // namespace
}  // namespace golf
