// golf-train through its CLI on a tiny model and real text (Tiny Shakespeare shards made with
// golf-data): resume reproduces an uninterrupted run bit for bit, a non-finite loss stops the run
// naming the step and keeps the last good checkpoint, runs are never overwritten, and the run
// directory is readable from Python.
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <set>

#include "core/config.h"
#include "core/shard.h"

#include "tests/test_util.h"

namespace golf {
namespace {

using test::quote;

class GolfTrainCli : public test::SharedSetupSuite<GolfTrainCli> {
 public:
  static std::string setup_command(const std::filesystem::path& folder) {
    return test::tiny_shakespeare_corpus_command(folder, GOLF_DATA_BIN);
  }

 protected:
  // A tiny model that still has every part: recurrence, two-lane layers, gates.
  static std::string env(const std::string& run_id, const std::string& extra = "") {
    return "env DATA_PATH=" + quote(*dir / "data") + " TOKENIZER_PATH=" + quote(*dir / "tok.model") +
           " OUTPUT_DIR=" + quote(*dir / "runs") + " RUN_ID=" + run_id +
           " VOCAB_SIZE=512 NUM_LAYERS=4 MODEL_DIM=32 NUM_HEADS=2 NUM_KV_HEADS=1 ROPE_DIMS=8 LOOP_START=1 LOOP_END=2"
           " NUM_LOOPS=1 PARALLEL_START_LAYER=3 TRAIN_SEQ_LEN=64 TRAIN_BATCH_TOKENS=512 GRAD_ACCUM_STEPS=2"
           " MAX_WALLCLOCK_SECONDS=0 ITERATIONS=12 WARMUP_STEPS=1 VAL_LOSS_EVERY=6 VAL_MAX_TOKENS=4096"
           " VAL_BATCH_TOKENS=2048 TRAIN_LOG_EVERY=1 CHECKPOINT_EVERY=5 GPTQ_CALIBRATION_BATCHES=2 " + extra + " ";
  }
  static test::CommandResult train(const std::string& run_id, const std::string& extra = "", const std::string& args = "") {
    return test::run(env(run_id, extra) + "'" + GOLF_TRAIN_BIN + "' " + args);
  }
  static std::vector<nlohmann::json> events(const std::string& run_id, const std::string& kind) {
    std::vector<nlohmann::json> out;
    std::ifstream in(*dir / "runs" / run_id / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j["event"] == kind) out.push_back(j);
    }
    return out;
  }
};

TEST_F(GolfTrainCli, LogsTheResolvedConfigFirstAndTheRecordsLineFormat) {
  const auto r = train("format");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string log = test::read_file(*dir / "runs" / "format" / "train.log");
  EXPECT_TRUE(log.starts_with("RUN_ID")) << "the resolved config comes first: " << log.substr(0, 200);
  EXPECT_NE(log.find("step:12/12 train_loss:"), std::string::npos);
  EXPECT_NE(log.find("step:6/12 val_loss:"), std::string::npos);
  EXPECT_NE(log.find(" val_bpb:"), std::string::npos);
  EXPECT_NE(log.find("layer_loop:enabled step:5"), std::string::npos) << "35% of 12 steps";
  EXPECT_NE(log.find("post_ema val_loss:"), std::string::npos);
  const auto check = test::run_reference("check_run_dir.py", quote(*dir / "runs" / "format"));
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST_F(GolfTrainCli, ResumeReproducesTheUninterruptedLossesBitForBit) {
  ASSERT_EQ(train("resume").exit_code, 0);
  const auto first = events("resume", "train");  // steps 1..12; the last checkpoint is step 10
  ASSERT_EQ(first.size(), 12u);
  const auto r = train("resume", "", "--resume " + quote(*dir / "runs" / "resume"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from step 10"), std::string::npos) << r.output;
  const auto all = events("resume", "train");
  ASSERT_EQ(all.size(), 14u) << "steps 11 and 12 again";
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(all[12 + k]["step"], first[10 + k]["step"]);
    EXPECT_EQ(all[12 + k]["train_loss"].get<double>(), first[10 + k]["train_loss"].get<double>()) << "step " << 11 + k;
  }
  const auto vals = events("resume", "val");
  EXPECT_EQ(vals.back()["val_loss"].get<double>(), vals[vals.size() - 2]["val_loss"].get<double>())
      << "the final validation is the same";
}

TEST_F(GolfTrainCli, NonFiniteLossStopsNamingTheStepAndKeepsTheLastGoodCheckpoint) {
  // An absurd embedding learning rate blows the weights up within a few steps.
  const auto r = train("nan", "TIED_EMBED_LR=1e30 MATRIX_LR=1e30 CHECKPOINT_EVERY=1 WARMUP_STEPS=0");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("non-finite train_loss"), std::string::npos) << r.output;
  std::ifstream in(*dir / "runs" / "nan" / "checkpoint" / "state.json");
  ASSERT_TRUE(in) << "a checkpoint of the last good step must remain";
  const auto state = nlohmann::json::parse(in);
  const auto at = r.output.find("at step ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(state["step"].get<int>() + 1, std::stoi(r.output.substr(at + 8))) << "checkpoint = the step before";
}

// --print-config --stage S [--json]: the stage's settings only (the list scripts/golf_pipeline.py
// reads), with --json each as {value, stages, help} from core/config.cpp's tables.
TEST(GolfTrainPrintConfig, StageAndJsonPrintTheStageTable) {
  const std::string bin = std::string("'") + GOLF_TRAIN_BIN + "'";
  const auto plain = test::run(bin + " --print-config --stage eval --set TTT_LR=0.25");
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  const auto values = nlohmann::json::parse(plain.output);
  std::vector<std::string> keys;
  for (const auto& [k, v] : values.items()) keys.push_back(k);
  const auto expected = stage_fields("eval");
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()), std::set<std::string>(expected.begin(), expected.end()));
  EXPECT_EQ(values["TTT_LR"], 0.25);
  EXPECT_FALSE(values.contains("NUM_LAYERS"));

  const auto detailed = test::run(bin + " --print-config --stage model --json");
  ASSERT_EQ(detailed.exit_code, 0) << detailed.output;
  const auto table = nlohmann::json::parse(detailed.output);
  EXPECT_EQ(table.size(), stage_fields("model").size());
  EXPECT_EQ(table["NUM_LAYERS"]["value"], 11);
  EXPECT_EQ(table["NUM_LAYERS"]["stages"], nlohmann::json({"model", "train"}));
  EXPECT_EQ(table["ROPE_DIMS"]["help"], "rotated dims per head");

  const auto all = nlohmann::json::parse(test::run(bin + " --print-config --json").output);
  EXPECT_EQ(all.size(), config_fields().size());

  const auto bad = test::run(bin + " --print-config --stage evaluation");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("unknown stage \"evaluation\""), std::string::npos) << bad.output;
  const auto alone = test::run(bin + " --stage eval");
  EXPECT_EQ(alone.exit_code, 1);
  EXPECT_NE(alone.output.find("--stage and --json go with --print-config"), std::string::npos) << alone.output;
}

TEST_F(GolfTrainCli, ShippedConfigsResolveAndValidate) {
  const auto r = test::run(std::string("'") + GOLF_TRAIN_BIN + "' --print-config --config " +
                           quote(std::filesystem::path(GOLF_SOURCE_DIR) / "train" / "configs" / "pr1880.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["PARALLEL_MODE"], "gptj");
  EXPECT_EQ(j["DOC_MASK"], 0);
  EXPECT_EQ(j["LOADER"], "coprime");
  EXPECT_EQ(j["MATRIX_LR"], 0.022);
}

TEST_F(GolfTrainCli, AnExistingRunIsNeverOverwritten) {
  ASSERT_EQ(train("once").exit_code, 0);
  const std::string before = test::read_file(*dir / "runs" / "once" / "train.log");
  const auto r = train("once");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
  EXPECT_EQ(test::read_file(*dir / "runs" / "once" / "train.log"), before);
}

TEST_F(GolfTrainCli, ConfigErrorsAreOneClearMessage) {
  auto r = train("bad1", "", "--set MATRX_LR=0.1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("MATRIX_LR"), std::string::npos) << r.output;
  r = train("bad2", "NUM_HEADS=3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("NUM_HEADS=3"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(*dir / "runs" / "bad2")) << "nothing is written for a bad config";
  r = train("bad3", "DATA_PATH=/nonexistent");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(*dir / "runs" / "bad3"));
}

}  // namespace
}  // namespace golf

namespace golf {
namespace {

// Cross-entropy (nats/token) of the val stream under the train stream's unigram distribution
// (add-one smoothed): what a model that ignores context achieves.
double unigram_cross_entropy(const std::filesystem::path& data, int vocab) {
  std::vector<double> counts(static_cast<size_t>(vocab), 1.0);
  double total = vocab;
  for (const auto& f : shard::list(data, "train"))
    for (const uint16_t t : shard::read_tokens(f)) counts[t] += 1, total += 1;
  double nll = 0;
  int64_t n = 0;
  for (const auto& f : shard::list(data, "val")) {
    const auto tokens = shard::read_tokens(f);
    for (size_t i = 1; i < tokens.size(); ++i, ++n) nll -= std::log(counts[tokens[i]] / total);
  }
  return nll / static_cast<double>(n);
}

// The CI smoke run: a small model on Tiny Shakespeare for a couple of hundred steps must learn
// far more than token frequencies — its val loss ends at least 1 nat below the unigram
// cross-entropy (that is, it predicts e ≈ 2.7× better per token than frequencies alone).
// Validation packs VAL_BATCH_TOKENS / TRAIN_SEQ_LEN = 8 rows per forward: the CPU's masked
// attention costs the square of the packed length.
TEST_F(GolfTrainCli, SmokeRunOnTinyShakespeareLearnsWellBeyondUnigram) {
  const auto r = train("smoke",
                       "NUM_LAYERS=6 MODEL_DIM=96 NUM_HEADS=4 NUM_KV_HEADS=2 LOOP_START=2 LOOP_END=3 PARALLEL_START_LAYER=4"
                       " TRAIN_SEQ_LEN=256 TRAIN_BATCH_TOKENS=4096 GRAD_ACCUM_STEPS=1 ITERATIONS=200 WARMUP_STEPS=2"
                       " VAL_LOSS_EVERY=100 VAL_MAX_TOKENS=0 VAL_BATCH_TOKENS=2048 TRAIN_LOG_EVERY=50 CHECKPOINT_EVERY=0"
                       " MUON_MOMENTUM_WARMUP_STEPS=50");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double unigram = unigram_cross_entropy(*dir / "data", 512);
  const auto vals = events("smoke", "val");
  ASSERT_GE(vals.size(), 3u);
  const double first = vals.front()["val_loss"].get<double>(), last = vals.back()["val_loss"].get<double>();
  std::printf("smoke: val_loss %.4f (step 0) -> %.4f (step 200), val_bpb %.4f; unigram cross-entropy %.4f; ln(512) %.4f\n",
              first, last, vals.back()["val_bpb"].get<double>(), unigram, std::log(512.0));
  EXPECT_LT(last, unigram - 1.0);
}

}  // namespace
}  // namespace golf
