// golf-eval on CaseOps data, end to end with the real tools (Tiny Shakespeare → a CaseOps tokenizer,
// shards with byte sidecars, a tiny golf-train run, golf-pack): bytes come from the sidecar and the
// byte-recount check audits it; the artifact's tokenizer identity is enforced; and bad inputs — a
// sidecar whose length or header disagrees with its shard, CaseOps shards with a plain tokenizer,
// another tokenizer than the model's, a tokenizer of another vocabulary size, a sidecar as DATA_PATH
// — are one clear error with no eval.json.
// An artifact from before tokenizer identity is accepted with a warning.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "core/shard.h"
#include "core/tokenizer.h"
#include "tests/test_util.h"

namespace golf {
namespace {

using test::quote;
namespace fs = std::filesystem;

class CaseOpsEval : public test::SharedSetupSuite<CaseOpsEval> {
 public:
  static std::string setup_command(const fs::path& folder) {
    const std::string text = test::read_file(test::tiny_shakespeare());
    test::write_file(folder / "train.txt", text.substr(0, text.size() * 9 / 10));
    std::string val;
    const std::string tail = text.substr(text.size() * 9 / 10);
    for (size_t start = 0; start < tail.size();) {  // one document per paragraph
      size_t end = tail.find("\n\n", start);
      if (end == std::string::npos) end = tail.size();
      if (end > start) val += nlohmann::json({{"text", tail.substr(start, end - start)}}).dump() + "\n";
      start = end + 2;
    }
    test::write_file(folder / "val.jsonl", val);
    const std::string data = std::string("'") + GOLF_DATA_BIN + "' ";
    const std::string model = " VOCAB_SIZE=512 NUM_LAYERS=2 MODEL_DIM=32 NUM_HEADS=2 NUM_KV_HEADS=1 ROPE_DIMS=8 NUM_LOOPS=0"
                              " PARALLEL_START_LAYER=1 XSA_LAST_N=2 TRAIN_SEQ_LEN=128 TRAIN_BATCH_TOKENS=1024"
                              " GRAD_ACCUM_STEPS=1 MAX_WALLCLOCK_SECONDS=0 ITERATIONS=20 WARMUP_STEPS=0 VAL_LOSS_EVERY=0"
                              " VAL_MAX_TOKENS=4096 CHECKPOINT_EVERY=0 GPTQ_CALIBRATION_BATCHES=2";
    return "cd " + quote(folder) + " && " + data + "tokenizer --input train.txt --vocab 512 --caseops --out c.model" +
        " && " + data + "tokenizer --input val.jsonl --vocab 512 --caseops --out other.model" +
        " && " + data + "tokenizer --input train.txt --vocab 512 --out plain.model" +
        " && " + data + "tokenizer --input train.txt --vocab 600 --caseops --out c600.model" +
        " && " + data + "shards --input train.txt --tokenizer c.model --out data --split train" +
        " && " + data + "shards --input val.jsonl --tokenizer c.model --out data --split val --verify-bytes" +
        " && env DATA_PATH=data TOKENIZER_PATH=c.model OUTPUT_DIR=runs RUN_ID=tiny" + model + " '" + std::string(GOLF_TRAIN_BIN) + "'" +
        " && env DATA_PATH=data '" + std::string(GOLF_PACK_BIN) + "' runs/tiny";
  }

 protected:
  static fs::path artifact() { return *dir / "runs" / "tiny" / "final_model.golf"; }
  test::CommandResult eval(const fs::path& data, const fs::path& tokenizer, const std::string& args = "",
                           const fs::path& art = {}) {
    return test::run("env DATA_PATH=" + quote(data) + " TOKENIZER_PATH=" + quote(tokenizer) +
                     " VAL_MAX_TOKENS=4096 EVAL_SEQ_LEN=128 EVAL_STRIDE=64 EVAL_BATCH_SEQS=8 '" + std::string(GOLF_EVAL_BIN) + "' " +
                     quote(art.empty() ? artifact() : art) + " --out " + quote(out) + " " + args);
  }
  void expect_refused(const test::CommandResult& r, const std::string& message) {
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("golf-eval: error: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << "expected: " << message << "\n" << r.output;
    EXPECT_FALSE(fs::exists(out)) << "no eval.json for refused input";
  }
  static fs::path copy_data(const std::string& name) {
    const fs::path to = *dir / name;
    fs::remove_all(to);
    fs::create_directories(to);
    for (const auto& f : fs::directory_iterator(*dir / "data"))
      if (f.path().filename().string().starts_with("fineweb_val")) fs::copy_file(f.path(), to / f.path().filename());
    return to;
  }
  test::TempDir scratch;
  fs::path out = scratch / "eval.json";
};

TEST_F(CaseOpsEval, ScoresThroughTheSidecarAndAuditsIt) {
  const auto r = eval(*dir / "data", *dir / "c.model", "--check-compliance");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("val_bpb:byte_sidecar:enabled files:1"), std::string::npos) << r.output;
  const auto j = nlohmann::json::parse(test::read_file(out));
  EXPECT_EQ(j["byte_sidecar"], true);
  EXPECT_EQ(j["tokenizer_kind"], "caseops");
  // The bytes are the sidecar's: Σ sidecar[j + 1] over the M scored predictions.
  const auto tokens = shard::read_tokens(*dir / "data" / "fineweb_val_000000.bin");
  const auto sidecar = shard::read_sidecar(*dir / "data" / "fineweb_val_000000.bin", static_cast<int64_t>(tokens.size()));
  const int64_t M = j["results"]["plain"]["tokens"].get<int64_t>();
  ASSERT_EQ(M, 4096 / 128 * 128);
  int64_t sum = 0;
  for (int64_t i = 1; i <= M; ++i) sum += sidecar[static_cast<size_t>(i)];
  EXPECT_EQ(j["results"]["plain"]["bytes"].get<int64_t>(), sum);
  EXPECT_EQ(j["results"]["sliding"]["bytes"].get<int64_t>(), sum);
  bool recount = false;
  for (const auto& c : j["compliance"])
    if (c["check"] == "byte_recount") {
      recount = true;
      EXPECT_EQ(c["status"], "PASS") << c["detail"];
      EXPECT_NE(c["detail"].get<std::string>().find("byte sidecar: "), std::string::npos) << c["detail"];
      std::printf("byte_recount: %s\n", c["detail"].get<std::string>().c_str());
    }
  EXPECT_TRUE(recount);
}

TEST_F(CaseOpsEval, SidecarOfTheWrongLength) {
  const fs::path data = copy_data("short");
  const auto tokens = shard::read_tokens(data / "fineweb_val_000000.bin");
  auto sidecar = shard::read_sidecar(data / "fineweb_val_000000.bin", static_cast<int64_t>(tokens.size()));
  sidecar.resize(sidecar.size() - 10);
  shard::write(data / "fineweb_val_bytes_000000.bin", sidecar);
  expect_refused(eval(data, *dir / "c.model"),
                 "has " + std::to_string(sidecar.size()) + " entries but its shard fineweb_val_000000.bin has " +
                     std::to_string(tokens.size()) + " tokens");
}

TEST_F(CaseOpsEval, SidecarWithABadHeader) {
  const fs::path data = copy_data("header");
  std::string bytes = test::read_file(data / "fineweb_val_bytes_000000.bin");
  bytes[4] = 2;  // version
  test::write_file(data / "fineweb_val_bytes_000000.bin", bytes);
  expect_refused(eval(data, *dir / "c.model"), "fineweb_val_bytes_000000.bin: header version is 2");
}

TEST_F(CaseOpsEval, CaseOpsShardsWithAPlainTokenizer) {
  expect_refused(eval(*dir / "data", *dir / "plain.model"), "holds CaseOps validation data");
}

TEST_F(CaseOpsEval, AnotherTokenizerThanTheModelsIsRefusedNamingBoth) {
  const auto r = eval(*dir / "data", *dir / "other.model");
  expect_refused(r, "is not the tokenizer the model was trained with");
  EXPECT_NE(r.output.find(Tokenizer::load(*dir / "other.model").sha256()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(Tokenizer::load(*dir / "c.model").sha256()), std::string::npos) << r.output;
}

TEST_F(CaseOpsEval, ATokenizerOfAnotherVocabularySize) {
  expect_refused(eval(*dir / "data", *dir / "c600.model"), "has 600 pieces but VOCAB_SIZE is 512");
}

TEST_F(CaseOpsEval, ASidecarAsDataPathIsRefused) {
  expect_refused(eval(*dir / "data" / "fineweb_val_bytes_000000.bin", *dir / "c.model"),
                 "golf-eval reads only validation shards");
}

TEST_F(CaseOpsEval, AnArtifactWithoutTokenizerIdentityIsAcceptedWithAWarning) {
  // A run directory as golf-train wrote it before TOKENIZER_SHA256 existed.
  const fs::path old_run = scratch / "old";
  fs::copy(*dir / "runs" / "tiny", old_run, fs::copy_options::recursive);
  auto config = nlohmann::json::parse(test::read_file(old_run / "config.json"));
  config.erase("TOKENIZER_SHA256");
  config.erase("TOKENIZER_KIND");
  test::write_file(old_run / "config.json", config.dump(2));
  fs::remove(old_run / "final_model.golf");
  const auto p = test::run("cd " + quote(dir->path()) + " && env DATA_PATH=data '" + std::string(GOLF_PACK_BIN) + "' " + quote(old_run));
  ASSERT_EQ(p.exit_code, 0) << p.output;
  const auto r = eval(*dir / "data", *dir / "c.model", "--no-sliding", old_run / "final_model.golf");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("warning: the artifact does not record its tokenizer"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace golf
