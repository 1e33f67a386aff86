// golf-train checks its data and tokenizer before it creates the run directory: an out-of-range
// token id, a truncated shard, a tokenizer of another vocabulary size, CaseOps validation data with
// a plain tokenizer — each one clear error naming the file (and position), exit 1, no run directory.
// A good run records the tokenizer's identity and the time of the scan.
#include <nlohmann/json.hpp>

#include <fstream>

#include "core/shard.h"
#include "core/tokenizer.h"
#include "tests/test_util.h"

namespace golf {
namespace {

using test::quote;
namespace fs = std::filesystem;

class DataCheck : public test::SharedSetupSuite<DataCheck> {
 public:
  static std::string setup_command(const std::filesystem::path& folder) {
    return test::tiny_shakespeare_corpus_command(folder, GOLF_DATA_BIN);
  }

 protected:
  // A copy of the good data directory to break.
  static fs::path copy_data(const std::string& name) {
    const fs::path out = *dir / name;
    fs::remove_all(out);
    fs::copy(*dir / "data", out, fs::copy_options::recursive);
    return out;
  }
  static test::CommandResult train(const std::string& run_id, const fs::path& data, const std::string& extra = "") {
    return test::run("env DATA_PATH=" + quote(data) + " TOKENIZER_PATH=" + quote(*dir / "tok.model") +
                     " OUTPUT_DIR=" + quote(*dir / "runs") + " RUN_ID=" + run_id +
                     " VOCAB_SIZE=512 NUM_LAYERS=2 MODEL_DIM=32 NUM_HEADS=2 NUM_KV_HEADS=1 ROPE_DIMS=8 NUM_LOOPS=0"
                     " PARALLEL_START_LAYER=1 XSA_LAST_N=2 TRAIN_SEQ_LEN=64 TRAIN_BATCH_TOKENS=512 GRAD_ACCUM_STEPS=1"
                     " MAX_WALLCLOCK_SECONDS=0 ITERATIONS=2 WARMUP_STEPS=0 VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=1024"
                     " CHECKPOINT_EVERY=0 GPTQ_CALIBRATION_BATCHES=1 " + extra + " '" + GOLF_TRAIN_BIN + "'");
  }
  static void expect_refused(const test::CommandResult& r, const std::string& run_id, const std::string& message) {
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("golf-train: error: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << "expected: " << message << "\n" << r.output;
    EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(*dir / "runs" / run_id)) << "no run directory for refused data";
  }
};

TEST_F(DataCheck, AGoodRunRecordsTheTokenizerAndTheScanTime) {
  const auto r = train("good", *dir / "data");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto config = nlohmann::json::parse(test::read_file(*dir / "runs" / "good" / "config.json"));
  const Tokenizer tok = Tokenizer::load(*dir / "tok.model");
  EXPECT_EQ(config["TOKENIZER_SHA256"], tok.sha256());
  EXPECT_EQ(config["TOKENIZER_KIND"], "plain");
  const std::string log = test::read_file(*dir / "runs" / "good" / "train.log");
  const auto at = log.find("data_check: 2 shards, ");
  ASSERT_NE(at, std::string::npos) << log;
  std::printf("%s\n", log.substr(at, log.find('\n', at) - at).c_str());
}

TEST_F(DataCheck, OutOfRangeTrainingToken) {
  const fs::path data = copy_data("oob");
  const fs::path shard = data / "fineweb_train_000000.bin";
  auto tokens = shard::read_tokens(shard);
  ASSERT_GT(tokens.size(), 5000u);
  tokens[4321] = 600;  // ≥ VOCAB_SIZE 512
  shard::write(shard, tokens);
  expect_refused(train("oob", data), "oob", shard.string() + ": token id 600 at position 4321 is not below VOCAB_SIZE 512");
}

TEST_F(DataCheck, TruncatedTrainingShard) {
  const fs::path data = copy_data("trunc");
  const fs::path shard = data / "fineweb_train_000000.bin";
  fs::resize_file(shard, fs::file_size(shard) - 3);
  expect_refused(train("trunc", data), "trunc", shard.string() + ": header token count");
}

TEST_F(DataCheck, TokenizerOfAnotherVocabularySize) {
  // The 512-piece tokenizer with VOCAB_SIZE 8192 (the example) and with VOCAB_SIZE 1024.
  expect_refused(train("vocab", *dir / "data", "VOCAB_SIZE=8192"), "vocab", "has 512 pieces but VOCAB_SIZE is 8192");
  expect_refused(train("vocab2", *dir / "data", "VOCAB_SIZE=1024"), "vocab2", "has 512 pieces but VOCAB_SIZE is 1024");
}

TEST_F(DataCheck, CaseOpsValidationDataWithAPlainTokenizer) {
  const fs::path data = copy_data("caseops");
  const auto tokens = shard::read_tokens(data / "fineweb_val_000000.bin");
  shard::write(data / "fineweb_val_bytes_000000.bin", std::vector<uint16_t>(tokens.size(), 1));
  expect_refused(train("caseops", data), "caseops", "holds CaseOps validation data");
}

TEST_F(DataCheck, SidecarOfTheWrongLength) {
  const fs::path data = copy_data("sidecar");
  const auto tokens = shard::read_tokens(data / "fineweb_val_000000.bin");
  shard::write(data / "fineweb_val_bytes_000000.bin", std::vector<uint16_t>(tokens.size() - 1, 1));
  expect_refused(train("sidecar", data), "sidecar", "fineweb_val_bytes_000000.bin has " + std::to_string(tokens.size() - 1) + " entries");
}

}  // namespace
}  // namespace golf
