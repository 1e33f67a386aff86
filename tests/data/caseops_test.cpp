// golf-data with CaseOps, through the CLI: shards and byte sidecars byte-identical to the Python
// reference writer, --verify-bytes on all of Gutenberg val (lossless round trip, Σ sidecar = the
// original byte length), a CaseOps tokenizer trained with the operators reserved at ids 4..7, inspect
// auditing sidecars, and every bad sidecar or tokenizer/data mismatch as one clear error.
#include <nlohmann/json.hpp>

#include <fstream>

#include "core/caseops.h"
#include "data/caseops_encode.h"
#include "core/shard.h"
#include "core/tokenizer.h"
#include "data/text_input.h"
#include "tests/data/cli.h"

namespace golf {
namespace {

using test::golf_data;
using test::quote;

std::filesystem::path caseops_tokenizer() {
  return test::tokenizer_dir() / "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model";
}

class CaseOpsData : public ::testing::Test {
 protected:
  void SetUp() override {
    GOLF_REQUIRE_FILE(caseops_tokenizer());
    GOLF_REQUIRE_FILE(test::challenge_tokenizer());
    GOLF_REQUIRE_FILE(test::data_dir() / "gutenberg" / "val.jsonl.xz");
  }
  static std::string shards(const std::filesystem::path& input, const std::filesystem::path& tokenizer,
                            const std::filesystem::path& out, const std::string& extra = "") {
    return "shards --input " + quote(input) + " --tokenizer " + quote(tokenizer) + " --out " + quote(out) +
           " --split val " + extra;
  }
  test::TempDir dir;
};

TEST_F(CaseOpsData, ShardsAndSidecarMatchThePythonReferenceByteForByte) {
  const auto input = test::small_jsonl(dir, 300);
  const auto r = golf_data(shards(input, caseops_tokenizer(), dir / "out", "--caseops --verify-bytes"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto ref = test::run_reference("caseops_reference.py", "shards " + quote(caseops_tokenizer()) + " " +
                                                                   quote(dir / "ref") + " " + quote(input));
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  for (const char* name : {"fineweb_val_000000.bin", "fineweb_val_bytes_000000.bin"}) {
    const std::string ours = test::read_file(dir / "out" / name), theirs = test::read_file(dir / "ref" / name);
    EXPECT_EQ(ours.size(), theirs.size()) << name;
    EXPECT_TRUE(ours == theirs) << name << " differs from the reference";
  }
}

// The closing note's figures: all 1,726 documents, the sidecar total against the raw bytes.
TEST_F(CaseOpsData, VerifyBytesOnAllOfGutenbergVal) {
  const auto val = test::data_dir() / "gutenberg" / "val.jsonl.xz";
  const auto r = golf_data(shards(val, caseops_tokenizer(), dir / "out", "--verify-bytes --json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  std::printf("Gutenberg val CaseOps: %lld docs, %lld tokens, round trip %lld/%lld, sidecar %lld bytes vs original %lld "
              "bytes, %.2f s\n", j["documents"].get<long long>(), j["tokens"].get<long long>(),
              j["round_trip_ok"].get<long long>(), j["documents"].get<long long>(), j["sidecar_bytes"].get<long long>(),
              j["text_bytes"].get<long long>(), j["seconds"].get<double>());
  EXPECT_EQ(j["tokenizer_kind"], "caseops");
  EXPECT_EQ(j["documents"], 1726);
  EXPECT_EQ(j["round_trip_ok"], 1726);
  EXPECT_EQ(j["sidecar_equal_docs"], 1726);
  EXPECT_EQ(j["edge_whitespace_docs"], 0);
  EXPECT_EQ(j["sidecar_bytes"], j["text_bytes"]);
  EXPECT_EQ(j["text_bytes"], 8010775);
  // The sidecar files hold what the report says, one entry per token.
  const auto tokens = shard::read_tokens(dir / "out" / "fineweb_val_000000.bin");
  const auto sidecar = shard::read_sidecar(dir / "out" / "fineweb_val_000000.bin", static_cast<int64_t>(tokens.size()));
  int64_t sum = 0;
  for (const uint16_t b : sidecar) sum += b;
  EXPECT_EQ(sum, j["sidecar_bytes"].get<int64_t>());

  // inspect audits it against the decoded original text.
  const auto in = golf_data("inspect " + quote(dir / "out") + " --tokenizer " + quote(caseops_tokenizer()) + " --json");
  ASSERT_EQ(in.exit_code, 0) << in.output;
  const auto k = nlohmann::json::parse(in.output.substr(in.output.find('{')));
  EXPECT_EQ(k["tokenizer_kind"], "caseops");
  EXPECT_EQ(k["sidecar_audit"]["sidecar_bytes"], 8010775);
  EXPECT_EQ(k["sidecar_audit"]["documents"], 1726);
  std::printf("inspect: sidecar %lld bytes, decoded original text %lld bytes, %lld of %lld documents differ\n",
              k["sidecar_audit"]["sidecar_bytes"].get<long long>(), k["sidecar_audit"]["decoded_original_bytes"].get<long long>(),
              k["sidecar_audit"]["documents_differing"].get<long long>(), k["sidecar_audit"]["documents"].get<long long>());
}

TEST_F(CaseOpsData, SidecarsFollowTheShardCutsAndTrainSplitsHaveNone) {
  const auto input = test::small_jsonl(dir, 40);
  ASSERT_EQ(golf_data(shards(input, caseops_tokenizer(), dir / "cut", "--shard-tokens 5000")).exit_code, 0);
  const auto parts = shard::list(dir / "cut", "val");
  ASSERT_GT(parts.size(), 2u);
  for (const auto& p : parts)
    EXPECT_EQ(shard::read_header(shard::sidecar_path(p)).num_tokens, shard::read_header(p).num_tokens) << p;
  const auto r = golf_data("shards --input " + quote(input) + " --tokenizer " + quote(caseops_tokenizer()) + " --out " +
                           quote(dir / "train") + " --split train");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(shard::list(dir / "train", "val_bytes").empty());
  EXPECT_EQ(shard::list(dir / "train", "train").size(), 1u);
}

TEST_F(CaseOpsData, TokenizerTrainingReservesTheOperatorsAtIds4To7) {
  const auto input = test::small_jsonl(dir, 200);
  const auto r = golf_data("tokenizer --input " + quote(input) + " --vocab 700 --caseops --out " + quote(dir / "c.model"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Tokenizer t = Tokenizer::load(dir / "c.model");
  EXPECT_EQ(t.kind(), "caseops");
  for (int k = 0; k < 4; ++k) EXPECT_EQ(t.piece_to_id(caseops::kOperators[k]), 4 + k);
  EXPECT_TRUE(t.is_byte(8)) << "byte pieces follow the operators, as in the records' tokenizer";
  // It learned lowercase text: no piece holds an uppercase ASCII letter.
  for (int id = 8 + 256; id < t.vocab_size(); ++id)
    for (const char c : t.piece(id)) EXPECT_FALSE(c >= 'A' && c <= 'Z') << t.piece(id);
  EXPECT_EQ(Tokenizer::load(test::challenge_tokenizer()).kind(), "plain");
  EXPECT_EQ(Tokenizer::load(caseops_tokenizer()).kind(), "caseops");
  EXPECT_EQ(Tokenizer::load(caseops_tokenizer()).sha256(), "97754754561f20def5edd99765ca0668f880bd94e67316d54aa10ab25f45cc4d");
  // Shards with it carry sidecars and verify.
  const auto s = golf_data(shards(input, dir / "c.model", dir / "out", "--verify-bytes"));
  EXPECT_EQ(s.exit_code, 0) << s.output;
  EXPECT_EQ(shard::list(dir / "out", "val_bytes").size(), 1u);
}

TEST_F(CaseOpsData, CaseOpsFlagWithAPlainTokenizerIsRefusedWithNoOutput) {
  const auto input = test::small_jsonl(dir, 5);
  const auto r = golf_data(shards(input, test::challenge_tokenizer(), dir / "out", "--caseops"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("is not a CaseOps tokenizer"), std::string::npos) << r.output;
  EXPECT_TRUE(!std::filesystem::exists(dir / "out") || std::filesystem::is_empty(dir / "out"));
}

// Bad sidecars and mismatched tokenizers: one clear error from inspect each.
class BadSidecar : public CaseOpsData {
 protected:
  void SetUp() override {
    CaseOpsData::SetUp();
    if (IsSkipped()) return;
    const auto input = test::small_jsonl(dir, 20);
    ASSERT_EQ(golf_data(shards(input, caseops_tokenizer(), dir / "good")).exit_code, 0);
    shard_path = dir / "good" / "fineweb_val_000000.bin";
    tokens = shard::read_tokens(shard_path);
    sidecar = shard::read_sidecar(shard_path, static_cast<int64_t>(tokens.size()));
  }
  test::CommandResult inspect_with(const std::vector<uint16_t>& bad, const std::filesystem::path& tokenizer) {
    std::filesystem::create_directories(dir / "bad");
    std::filesystem::copy_file(shard_path, dir / "bad" / "fineweb_val_000000.bin", std::filesystem::copy_options::overwrite_existing);
    shard::write(dir / "bad" / "fineweb_val_bytes_000000.bin", bad);
    return golf_data("inspect " + quote(dir / "bad") + " --tokenizer " + quote(tokenizer));
  }
  std::filesystem::path shard_path;
  std::vector<uint16_t> tokens, sidecar;
};

TEST_F(BadSidecar, LengthDisagreeingWithItsShard) {
  auto bad = sidecar;
  bad.pop_back();
  const auto r = inspect_with(bad, caseops_tokenizer());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("has " + std::to_string(bad.size()) + " entries but its shard fineweb_val_000000.bin has " +
                          std::to_string(tokens.size()) + " tokens"), std::string::npos) << r.output;
}

TEST_F(BadSidecar, HeaderDisagreeingWithItsFile) {
  std::filesystem::create_directories(dir / "bad");
  std::filesystem::copy_file(shard_path, dir / "bad" / "fineweb_val_000000.bin");
  std::string bytes = test::read_file(dir / "good" / "fineweb_val_bytes_000000.bin");
  bytes[0] = 7;  // magic
  test::write_file(dir / "bad" / "fineweb_val_bytes_000000.bin", bytes);
  const auto r = golf_data("inspect " + quote(dir / "bad") + " --tokenizer " + quote(caseops_tokenizer()));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("fineweb_val_bytes_000000.bin: header magic"), std::string::npos) << r.output;
}

TEST_F(BadSidecar, ShiftedByOneOrChargingOperatorsBreaksTheExactRules) {
  auto shifted = sidecar;
  std::rotate(shifted.rbegin(), shifted.rbegin() + 1, shifted.rend());
  auto r = inspect_with(shifted, caseops_tokenizer());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("byte sidecar disagrees with its shards: position"), std::string::npos) << r.output;

  auto inflated = sidecar;  // the records' old bug: operators charged as 3-byte characters
  const Tokenizer t = Tokenizer::load(caseops_tokenizer());
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] >= 4 && tokens[i] <= 6) inflated[i] = 3;
  r = inspect_with(inflated, caseops_tokenizer());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("a case operator stands for no original byte"), std::string::npos) << r.output;
}

TEST_F(BadSidecar, CaseOpsShardWithAPlainTokenizerAndTheReverse) {
  auto r = golf_data("inspect " + quote(dir / "good") + " --tokenizer " + quote(test::challenge_tokenizer()));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("has a byte sidecar (CaseOps data) but tokenizer"), std::string::npos) << r.output;
  std::filesystem::remove(dir / "good" / "fineweb_val_bytes_000000.bin");
  r = golf_data("inspect " + quote(dir / "good") + " --tokenizer " + quote(caseops_tokenizer()));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("has no byte sidecar"), std::string::npos) << r.output;
}

// (Moved from tests/core/caseops_test.cpp with data/text_input.h: golf-data reads the corpus.)
// Every Gutenberg val document round-trips, and the transform equals the Python reference's.
TEST(CaseOps, RoundTripsEveryGutenbergValDocumentAndMatchesThePythonReference) {
  const auto val = test::data_dir() / "gutenberg" / "val.jsonl.xz";
  GOLF_REQUIRE_FILE(val);
  test::TempDir dir;
  const auto ref = test::run_reference("caseops_reference.py", "transform " + quote(val) + " " + quote(dir / "ref.jsonl"));
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  std::ifstream ref_lines(dir / "ref.jsonl");
  DocumentReader reader({val});
  Document doc;
  int64_t docs = 0, lossless = 0, same_as_reference = 0, bytes = 0;
  std::string line;
  while (reader.next(doc)) {
    ++docs;
    bytes += static_cast<int64_t>(doc.text.size());
    const std::string t = caseops::encode(doc.text);
    lossless += caseops::decode(t) == doc.text;
    ASSERT_TRUE(std::getline(ref_lines, line)) << "the reference has fewer documents";
    const auto r = nlohmann::json::parse(line);
    EXPECT_TRUE(r["rt"].get<bool>()) << doc.where << ": the reference's own round trip";
    same_as_reference += r["t"].get<std::string>() == t;
  }
  EXPECT_FALSE(std::getline(ref_lines, line)) << "the reference has more documents";
  std::printf("CaseOps round trip lossless on %lld/%lld Gutenberg val documents (%lld bytes); equal to the Python "
              "reference on %lld/%lld\n", (long long)lossless, (long long)docs, (long long)bytes, (long long)same_as_reference,
              (long long)docs);
  EXPECT_EQ(docs, 1726);
  EXPECT_EQ(lossless, docs);
  EXPECT_EQ(same_as_reference, docs);
}

}  // namespace
}  // namespace golf
