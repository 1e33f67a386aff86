// golf-eval end to end on a real (tiny) golf-train run packed by golf-pack: the records' log lines,
// eval.json with plain / sliding / TTT results and every compliance check passing on the real
// model, agreement with golf-pack's --val score, and bad inputs (a training shard as
// DATA_PATH, a changed model setting, a corrupt artifact) as one clear error with no output.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <map>

#include "core/config.h"
#include "eval/golf_eval.h"
#include "tests/report_json.h"
#include "tests/test_util.h"

namespace golf {
namespace {

using test::quote;

class GolfEvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    GOLF_REQUIRE_FILE(test::tiny_shakespeare());
    ASSERT_TRUE(std::filesystem::exists(run_dir() / "final_model.golf"))
        << "the eval_run fixture (tests/eval/make_eval_run.sh) did not produce " << run_dir();
  }
  static std::filesystem::path fixture() { return GOLF_EVAL_FIXTURE_DIR; }
  // The val directory holds the paragraph documents (and, as a trap, a copy of a training shard,
  // which golf-eval must never open).
  // The settings of every evaluation here (environment variables of golf-eval; run_eval's environment).
  static std::map<std::string, std::string> settings(const std::string& data_path = "") {
    return {{"TOKENIZER_PATH", (fixture() / "tok.model").string()},
            {"VAL_MAX_TOKENS", "4096"},
            {"DATA_PATH", data_path.empty() ? (fixture() / "val").string() : data_path},
            {"EVAL_SEQ_LEN", "128"},
            {"EVAL_STRIDE", "32"},
            {"EVAL_BATCH_SEQS", "8"},
            {"TTT_CHUNK_TOKENS", "1024"},
            {"TTT_EPOCHS", "1"}};
  }
  static std::filesystem::path run_dir() { return fixture() / "runs" / "tiny"; }
  static test::CommandResult eval(const std::string& args, const std::string& data_path = "") {
    std::string command = "env";
    for (const auto& [key, value] : settings(data_path)) command += " " + key + "=" + quote(value);
    return test::run(command + " '" + GOLF_EVAL_BIN + "' " + args);
  }
  test::TempDir dir;  // this test's outputs
};

nlohmann::json read_json(const std::filesystem::path& p) { return nlohmann::json::parse(test::read_file(p)); }

TEST_F(GolfEvalCli, ScoresPlainSlidingAndTttWithEveryComplianceCheckPassing) {
  const auto out = dir.path() / "eval.json";
  const auto r = eval(quote(run_dir() / "final_model.golf") + " --ttt --out " + quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* line : {"quantized val_loss:", "quantized_sliding_window val_loss:", "quantized_ttt val_loss:",
                           "ttt_sliding:start chunks=", "final_ttt_exact val_loss:", "training data is never read"})
    EXPECT_NE(r.output.find(line), std::string::npos) << line << "\n" << r.output;

  const auto j = read_json(out);
  EXPECT_EQ(j["train_data_read"], false);
  for (const auto& f : j["val_files"]) EXPECT_NE(f.get<std::string>().find("fineweb_val_"), std::string::npos) << f;
  const auto& res = j["results"];
  const int64_t M = 4096 / 128 * 128;
  for (const char* p : {"plain", "sliding", "ttt"}) {
    EXPECT_EQ(res[p]["tokens"], M) << p;
    EXPECT_EQ(res[p]["bytes"], res["plain"]["bytes"]) << p;
    EXPECT_GT(res[p]["val_bpb"].get<double>(), 0.5) << p;
  }
  EXPECT_EQ(res["sliding"]["windows"], (M - 96 + 31) / 32);  // ⌈(M − C) / s⌉, C = 128 − 32
  EXPECT_EQ(res["ttt"]["chunks"], 4);
  EXPECT_EQ(j["final"]["protocol"], "ttt");
  EXPECT_EQ(j["final"]["val_bpb"], res["ttt"]["val_bpb"]);
  EXPECT_GT(j["bytes_code"].get<int64_t>(), 10000);
  EXPECT_EQ(j["bytes_total"].get<int64_t>(), j["bytes_model"].get<int64_t>() + j["bytes_code"].get<int64_t>());

  std::vector<std::string> checks;
  for (const auto& c : j["compliance"]) {
    checks.push_back(c["check"]);
    EXPECT_EQ(c["status"], "PASS") << c["check"] << ": " << c["detail"];
  }
  EXPECT_EQ(checks, (std::vector<std::string>{"causality", "causality", "normalization", "score_before_update",
                                              "single_pass", "document_isolation", "byte_recount"}));
}

// golf-eval's main only parses, prints and writes: run_eval with the same options gives the report
// the CLI wrote, key for key and value for value (timings aside).
TEST_F(GolfEvalCli, RunEvalGivesTheReportTheCliWrote) {
  const auto out = dir.path() / "eval.json";
  const auto r = eval(quote(run_dir() / "final_model.golf") + " --ttt --repo-root " + quote(GOLF_SOURCE_DIR) +
                      " --out " + quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  eval::EvalOptions options;
  options.artifact = run_dir() / "final_model.golf";
  options.out = out;
  options.ttt = true;
  options.repo_root = GOLF_SOURCE_DIR;
  options.sources.environment = current_environment();
  for (const auto& [key, value] : settings()) options.sources.environment[key] = value;
  const eval::EvalReport report = eval::run_eval(options);
  EXPECT_TRUE(report.main_rank);
  EXPECT_EQ(report.out, out);
  EXPECT_TRUE(report.all_passed());
  EXPECT_EQ(report.final_result().name, "ttt");
  test::expect_same_report(report.to_json(), read_json(out), {"seconds", "time"});
}

// eval.json has the keys of the report schema (what scripts/ may read): all of them but the
// alternatives this run does not take (a source tree is there, a plain tokenizer, SGD TTT). The
// settings under config and results.ttt.settings come from the settings table, not the report.
TEST_F(GolfEvalCli, EvalJsonHoldsTheReportSchemasKeys) {
  const auto printed = test::run(std::string("'") + GOLF_EVAL_BIN + "' --print-report-schema");
  ASSERT_EQ(printed.exit_code, 0) << printed.output;
  const nlohmann::json schema = eval::eval_report_schema();
  EXPECT_EQ(nlohmann::json::parse(printed.output), schema);

  const auto out = dir.path() / "eval.json";
  const auto r = eval(quote(run_dir() / "final_model.golf") + " --ttt --no-plain --no-sliding --out " + quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto report_keys = [](const nlohmann::json& j) {
    std::set<std::string> keys;
    for (const auto& k : test::key_paths(j))
      if (!k.starts_with("config.") && !k.starts_with("results.ttt.settings.")) keys.insert(k);
    return keys;
  };
  const std::set<std::string> written = report_keys(read_json(out)), all = report_keys(schema);
  std::set<std::string> not_written;
  for (const auto& k : all)
    if (!written.contains(k)) not_written.insert(k);
  for (const auto& k : written) EXPECT_TRUE(all.contains(k)) << k << " is not in the report schema";
  const std::set<std::string> other_runs = {
      "bytes_code_error", "val_sidecar_files", "results.plain", "results.plain.val_loss", "results.plain.val_bpb",
      "results.plain.tokens", "results.plain.bytes", "results.plain.seconds", "results.plain.windows",
      "results.sliding", "results.sliding.val_loss", "results.sliding.val_bpb", "results.sliding.tokens",
      "results.sliding.bytes", "results.sliding.seconds", "results.sliding.windows", "results.sliding.stride",
      "results.ttt.documents", "results.ttt.batches", "results.ttt.phases", "results.ttt.global_steps",
      "results.ttt.updates"};
  EXPECT_EQ(not_written, other_runs);
}

TEST_F(GolfEvalCli, PlainEqualsTheIndependentScorerOfGolfPack) {
  // golf-pack --val scores the same artifact with train/validation — golf-eval's plain protocol on
  // golf-pack's own decode of the artifact, rows of TRAIN_SEQ_LEN = 128, VAL_BATCH_SIZE / 128 =
  // 4096 rows per forward (all 32 here); golf-eval's plain configured alike, through its own read
  // of the artifact, must agree.
  const auto out = dir.path() / "plain.json";
  const auto r = eval(quote(run_dir() / "final_model.golf") + " --no-sliding --set EVAL_BATCH_SEQS=4096 --out " + quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto mine = read_json(out)["results"]["plain"];
  const auto packed = read_json(run_dir() / "final_model.golf.json")["quantized"];
  EXPECT_NEAR(mine["val_bpb"].get<double>(), packed["val_bpb"].get<double>(), 1e-6);
  EXPECT_NEAR(mine["val_loss"].get<double>(), packed["val_loss"].get<double>(), 1e-6);
  EXPECT_TRUE(read_json(out)["compliance"].empty()) << "compliance runs with --ttt or --check-compliance";
}

TEST_F(GolfEvalCli, TwoRanksScoreWhatOneRankScores) {
  // The same evaluation on one process and on two (Gloo): windows and TTT rows split in halves,
  // sums, bitmap, ledger and TTT gradients merged across ranks.
  const auto one = dir.path() / "one.json", two = dir.path() / "two.json";
  const std::string args = quote(run_dir() / "final_model.golf") + " --ttt --no-plain --out ";
  const auto r1 = eval(args + quote(one) + " --no-compliance");
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  const auto r2 = eval(args + quote(two) + " --nproc 2");
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  const auto a = read_json(one), b = read_json(two);
  EXPECT_EQ(b["time"]["world_size"], 2);
  for (const char* p : {"sliding", "ttt"}) {
    EXPECT_EQ(a["results"][p]["tokens"], b["results"][p]["tokens"]) << p;
    EXPECT_EQ(a["results"][p]["bytes"], b["results"][p]["bytes"]) << p;
    EXPECT_EQ(a["results"][p]["windows"], b["results"][p]["windows"]) << p;
  }
  EXPECT_NEAR(a["results"]["sliding"]["val_bpb"].get<double>(), b["results"]["sliding"]["val_bpb"].get<double>(), 1e-9);
  // TTT's updates add the two halves' gradients in another order: equal to float rounding.
  EXPECT_NEAR(a["results"]["ttt"]["val_bpb"].get<double>(), b["results"]["ttt"]["val_bpb"].get<double>(), 1e-5);
  for (const auto& c : b["compliance"]) EXPECT_EQ(c["status"], "PASS") << c["check"] << ": " << c["detail"];
  EXPECT_FALSE(b["compliance"].empty());
}

TEST_F(GolfEvalCli, LoraAndPhasedTttOnTwoRanksEqualOneRank) {
  // The queue's batches go to ranks round-robin; phases start at fixed points of the queue: one
  // process and two score the same documents with the same states (global SGD sums the two
  // halves' gradients in another order: equal to float rounding).
  std::string sets;
  for (const char* kv : {"TTT_LORA_RANK=4", "TTT_CHUNK_SIZE=16", "TTT_EVAL_SEQ_LEN=128", "TTT_BATCH_SIZE=4", "TTT_LORA_LR=0.003",
                         "PHASED_TTT_PREFIX_DOCS=12", "PHASED_TTT_NUM_PHASES=2", "GLOBAL_TTT_CHUNK_TOKENS=256", "GLOBAL_TTT_LR=0.003"})
    sets += std::string(" --set ") + kv;
  for (const std::string mode : {"lora", "phased"}) {
    const auto one = dir.path() / (mode + "1.json"), two = dir.path() / (mode + "2.json");
    const std::string args = quote(run_dir() / "final_model.golf") + " --ttt-mode " + mode + " --no-plain --no-sliding" + sets + " --out ";
    const auto r1 = eval(args + quote(one));
    ASSERT_EQ(r1.exit_code, 0) << r1.output;
    const auto r2 = eval(args + quote(two) + " --nproc 2");
    ASSERT_EQ(r2.exit_code, 0) << r2.output;
    EXPECT_NE(r1.output.find(mode == "lora" ? "quantized_ttt_lora val_loss:" : "quantized_ttt_phased val_loss:"), std::string::npos)
        << r1.output;
    const auto a = read_json(one)["results"]["ttt"], b = read_json(two)["results"]["ttt"];
    EXPECT_EQ(a["mode"], mode);
    // The settings that TTT ran with: the eval stage's TTT settings, phased TTT's own only for it.
    const auto& settings = a["settings"];
    EXPECT_EQ(settings["TTT_MODE"], mode);
    EXPECT_EQ(settings["TTT_LORA_RANK"], 4);
    EXPECT_EQ(settings.contains("PHASED_TTT_NUM_PHASES"), mode == "phased") << settings.dump();
    if (mode == "phased") {
      EXPECT_EQ(settings["GLOBAL_TTT_CHUNK_TOKENS"], 256);
    }
    EXPECT_FALSE(settings.contains("EVAL_SEQ_LEN") || settings.contains("TRAIN_SEQ_LEN")) << settings.dump();
    EXPECT_EQ(a["tokens"], b["tokens"]);
    EXPECT_EQ(a["bytes"], b["bytes"]);
    EXPECT_NEAR(a["val_bpb"].get<double>(), b["val_bpb"].get<double>(), 1e-6) << mode;
    if (mode == "phased") {
      EXPECT_EQ(a["phases"], 2);
      EXPECT_GT(a["global_steps"].get<int64_t>(), 0);
    }
    const auto ja = read_json(one), jb = read_json(two);  // (kept: a range-for over a temporary's member dangles)
    for (const auto* j : {&ja, &jb})
      for (const auto& c : (*j)["compliance"]) EXPECT_EQ(c["status"], "PASS") << mode << " " << c["check"] << ": " << c["detail"];
    std::vector<std::string> checks;
    for (const auto& c : ja["compliance"]) checks.push_back(c["check"]);
    EXPECT_EQ(std::count(checks.begin(), checks.end(), "document_isolation"), 2) << "the model's and LoRA TTT's";
  }
}

TEST_F(GolfEvalCli, ALoraRankLargerThanALayerIsOneErrorAndNoOutput) {
  const auto out = dir.path() / "rank.json";
  const auto r = eval(quote(run_dir() / "final_model.golf") + " --ttt-mode lora --set TTT_LORA_RANK=40 --out " + quote(out));
  EXPECT_EQ(r.exit_code, 1) << r.output;  // MODEL_DIM 64, 2 of 4 KV heads: K/V are 64 → 32
  EXPECT_NE(r.output.find("TTT_LORA_RANK=40 exceeds the K/V projection"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(GolfEvalCli, SmatAblationsRunAtEvaluationTimeWithTheArtifactsGateMeans) {
  const auto smat = fixture() / "runs" / "smat" / "final_model.golf";
  const auto inspect = test::run(std::string("'") + GOLF_PACK_BIN + "' inspect " + quote(smat));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("smat_gate_means"), std::string::npos) << "golf-train's calibration measured Ḡ per layer";
  std::map<std::string, double> bpb;
  for (const std::string ablation : {"none", "g_mean", "g_one", "lambda0"}) {
    const auto out = dir.path() / (ablation + ".json");
    const auto r = eval(quote(smat) + " --no-sliding --set SMAT_ABLATION=" + ablation + " --out " + quote(out));
    ASSERT_EQ(r.exit_code, 0) << ablation << "\n" << r.output;
    bpb[ablation] = read_json(out)["results"]["plain"]["val_bpb"].get<double>();
  }
  for (const char* ablation : {"g_mean", "g_one", "lambda0"})
    EXPECT_GT(std::abs(bpb[ablation] - bpb["none"]), 1e-7) << ablation << " changes what the model computes";
  // A model without the SMAT gate has nothing to ablate: one clear error.
  const auto r = eval(quote(run_dir() / "final_model.golf") + " --set SMAT_ABLATION=g_mean --out " + quote(dir.path() / "x.json"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("SMAT_ABLATION"), std::string::npos) << r.output;
}

TEST_F(GolfEvalCli, RefusesATrainingShardAsData) {
  const auto out = dir.path() / "refused.json";
  const auto r = eval(quote(run_dir() / "final_model.golf") + " --out " + quote(out),
                      (fixture() / "data" / "fineweb_train_000000.bin").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("reads only validation shards"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(GolfEvalCli, RefusesToChangeAModelSetting) {
  const auto r = eval(quote(run_dir() / "final_model.golf") + " --set NUM_LAYERS=5 --out " + quote(dir.path() / "x.json"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("NUM_LAYERS is fixed by the artifact"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "x.json"));
}

TEST_F(GolfEvalCli, ACorruptArtifactIsOneErrorAndNoOutput) {
  std::string bytes = test::read_file(run_dir() / "final_model.golf");
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x5a);
  test::write_file(dir.path() / "corrupt.golf", bytes);
  const auto r = eval(quote(dir.path() / "corrupt.golf") + " --out " + quote(dir.path() / "c.json"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("corrupt.golf"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "c.json"));
}

}  // namespace
}  // namespace golf
