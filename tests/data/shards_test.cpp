// golf-data shards, through the CLI: byte-identical to the Python reference exporter,
// deterministic whatever the thread count, split into shards correctly, and every bad input
// ends in one clear message, a non-zero exit, and no shard or temporary left behind.
#include "core/shard.h"
#include "tests/data/cli.h"

namespace golf {
namespace {

using test::golf_data;
using test::quote;

class Shards : public ::testing::Test {
 protected:
  void SetUp() override {
    GOLF_REQUIRE_FILE(test::challenge_tokenizer());
    GOLF_REQUIRE_FILE(test::data_dir() / "gutenberg" / "val.jsonl.xz");
    input = test::small_jsonl(dir, 60);
  }
  std::string args(const std::filesystem::path& out, const std::string& extra = "") const {
    return "shards --input " + quote(input) + " --tokenizer " + quote(test::challenge_tokenizer()) + " --out " +
           quote(out) + " --split val " + extra;
  }
  test::TempDir dir;
  std::filesystem::path input;
};

TEST_F(Shards, MatchesThePythonReferenceExporterByteForByte) {
  const auto r = golf_data(args(dir / "out", "--verify-bytes"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto ref = test::run_reference("shards_reference.py", quote(test::challenge_tokenizer()) + " " +
                                                                  quote(dir / "ref.bin") + " " + quote(input));
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  const std::string ours = test::read_file(dir / "out" / "fineweb_val_000000.bin");
  EXPECT_EQ(ours.size(), test::read_file(dir / "ref.bin").size());
  EXPECT_TRUE(ours == test::read_file(dir / "ref.bin")) << "shard bytes differ from the reference";
}

TEST_F(Shards, EveryDocumentStartsWithBosAndNoneEndsWithEos) {
  ASSERT_EQ(golf_data(args(dir / "out")).exit_code, 0);
  const auto tokens = shard::read_tokens(dir / "out" / "fineweb_val_000000.bin");
  ASSERT_EQ(tokens.front(), 1);
  EXPECT_EQ(std::count(tokens.begin(), tokens.end(), 1), 60);
  EXPECT_EQ(std::count(tokens.begin(), tokens.end(), 2), 0);
}

TEST_F(Shards, OutputIsIdenticalForOneAndTwoThreadsAndAcrossShardCuts) {
  ASSERT_EQ(golf_data(args(dir / "t1", "--threads 1")).exit_code, 0);
  ASSERT_EQ(golf_data(args(dir / "t2", "--threads 2")).exit_code, 0);
  const std::string one = test::read_file(dir / "t1" / "fineweb_val_000000.bin");
  EXPECT_TRUE(one == test::read_file(dir / "t2" / "fineweb_val_000000.bin"));

  ASSERT_EQ(golf_data(args(dir / "cut", "--shard-tokens 10000")).exit_code, 0);
  const auto whole = shard::read_tokens(dir / "t1" / "fineweb_val_000000.bin");
  const auto parts = shard::list(dir / "cut", "val");
  ASSERT_EQ(parts.size(), (whole.size() + 9999) / 10000);
  std::vector<uint16_t> joined;
  for (const auto& p : parts) {
    const auto t = shard::read_tokens(p);
    joined.insert(joined.end(), t.begin(), t.end());
  }
  EXPECT_EQ(joined, whole);
}

TEST_F(Shards, MaxDocsStopsEarly) {
  ASSERT_EQ(golf_data(args(dir / "out", "--max-docs 7")).exit_code, 0);
  const auto tokens = shard::read_tokens(dir / "out" / "fineweb_val_000000.bin");
  EXPECT_EQ(std::count(tokens.begin(), tokens.end(), 1), 7);
}

TEST_F(Shards, MalformedLineFailsWithFileLineAndLeavesNoShard) {
  test::write_file(dir / "bad.jsonl", test::read_file(input) + "{\"text\": oops}\n");
  input = dir / "bad.jsonl";
  const auto r = golf_data(args(dir / "out", "--shard-tokens 5000"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("bad.jsonl:61: malformed JSON"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::is_empty(dir / "out")) << "no shards and no temporaries";
}

TEST_F(Shards, EmptyInputIsAnError) {
  test::write_file(dir / "empty.jsonl", "\n\n");
  input = dir / "empty.jsonl";
  const auto r = golf_data(args(dir / "out"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("no documents"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::is_empty(dir / "out"));
}

TEST_F(Shards, MissingOrBrokenTokenizerIsNamed) {
  auto r = golf_data("shards --input " + quote(input) + " --tokenizer " + quote(dir / "nope.model") + " --out " +
                     quote(dir / "out") + " --split val");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("nope.model: no such file"), std::string::npos) << r.output;
  test::write_file(dir / "junk.model", "not a protobuf");
  r = golf_data("shards --input " + quote(input) + " --tokenizer " + quote(dir / "junk.model") + " --out " +
                quote(dir / "out") + " --split val");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("junk.model: not a SentencePiece model"), std::string::npos) << r.output;
}

TEST_F(Shards, UnwritableOutputIsAnError) {
  test::write_file(dir / "a_file", "x");
  const auto r = golf_data(args(dir / "a_file" / "sub"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("cannot create directory"), std::string::npos) << r.output;
}

TEST_F(Shards, ExistingShardsAreNeverReplacedWithoutOverwrite) {
  ASSERT_EQ(golf_data(args(dir / "out", "--max-docs 3")).exit_code, 0);
  const std::string before = test::read_file(dir / "out" / "fineweb_val_000000.bin");
  const auto r = golf_data(args(dir / "out"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--overwrite"), std::string::npos) << r.output;
  EXPECT_TRUE(test::read_file(dir / "out" / "fineweb_val_000000.bin") == before);
  ASSERT_EQ(golf_data(args(dir / "out", "--overwrite")).exit_code, 0);
  EXPECT_FALSE(test::read_file(dir / "out" / "fineweb_val_000000.bin") == before);
}

}  // namespace
}  // namespace golf

namespace golf {
namespace {
TEST_F(Shards, OverwriteRemovesStaleShardsOfALongerEarlierRun) {
  ASSERT_EQ(golf_data(args(dir / "out", "--shard-tokens 5000")).exit_code, 0);
  ASSERT_GT(shard::list(dir / "out", "val").size(), 2u);
  ASSERT_EQ(golf_data(args(dir / "out", "--overwrite")).exit_code, 0);
  EXPECT_EQ(shard::list(dir / "out", "val").size(), 1u);
}
}  // namespace
}  // namespace golf
