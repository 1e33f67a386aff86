// golf-data inspect: counts that agree with what shards wrote, and bad shards or a mismatched
// tokenizer rejected with the file and value named.
#include <nlohmann/json.hpp>

#include "core/shard.h"
#include "tests/data/cli.h"

namespace golf {
namespace {

using test::golf_data;
using test::quote;

class Inspect : public ::testing::Test {
 protected:
  void SetUp() override {
    GOLF_REQUIRE_FILE(test::challenge_tokenizer());
    GOLF_REQUIRE_FILE(test::data_dir() / "gutenberg" / "val.jsonl.xz");
    const auto input = test::small_jsonl(dir, 40);
    const auto r = golf_data("shards --json --input " + quote(input) + " --tokenizer " +
                             quote(test::challenge_tokenizer()) + " --out " + quote(dir / "shards") +
                             " --split val --shard-tokens 20000");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    written = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  }
  test::TempDir dir;
  nlohmann::json written;
};

TEST_F(Inspect, AgreesWithTheWriterOnTokensDocumentsAndBytes) {
  const auto r = golf_data("inspect --json " + quote(dir / "shards") + " --tokenizer " + quote(test::challenge_tokenizer()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  const auto& val = j["splits"]["val"];
  EXPECT_EQ(val["files"].get<size_t>(), written["shards"].size());
  EXPECT_EQ(val["tokens"], written["tokens"]);
  EXPECT_EQ(val["documents"], written["documents"]);
  // Bytes are counted across shard boundaries exactly as over the unsplit stream.
  EXPECT_EQ(val["bytes"], written["table_bytes"]);
}

TEST_F(Inspect, TableOutputWithoutTokenizerStillValidates) {
  const auto r = golf_data("inspect " + quote(dir / "shards"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("fineweb_val_000000.bin"), std::string::npos);
  EXPECT_NE(r.output.find("pass --tokenizer"), std::string::npos);
}

TEST_F(Inspect, TokenIdBeyondTheTokenizerVocabIsAMismatch) {
  // A tokenizer with a smaller vocabulary than the shards were written with.
  const auto train = golf_data("tokenizer --input " + quote(test::small_jsonl(dir, 40)) + " --vocab 400 --out " +
                               quote(dir / "small.model"));
  ASSERT_EQ(train.exit_code, 0) << train.output;
  const auto r = golf_data("inspect " + quote(dir / "shards") + " --tokenizer " + quote(dir / "small.model"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("is not below the vocab size"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("small.model"), std::string::npos) << r.output;
}

TEST_F(Inspect, CorruptShardsAreNamed) {
  const auto first = dir / "shards" / "fineweb_val_000000.bin";
  std::string bytes = test::read_file(first);
  bytes[0] ^= 1;  // magic
  test::write_file(first, bytes);
  auto r = golf_data("inspect " + quote(dir / "shards"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("fineweb_val_000000.bin: header magic"), std::string::npos) << r.output;

  bytes[0] ^= 1;
  test::write_file(first, bytes.substr(0, bytes.size() - 3));  // truncated body
  r = golf_data("inspect " + quote(first));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("truncated"), std::string::npos) << r.output;
}

TEST_F(Inspect, StreamNotStartingWithBosIsRejected) {
  std::filesystem::create_directories(dir / "nobos");
  shard::write(dir / "nobos" / "fineweb_val_000000.bin", std::vector<uint16_t>{300, 1, 301});
  const auto r = golf_data("inspect " + quote(dir / "nobos"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("does not start with BOS"), std::string::npos) << r.output;
}

TEST_F(Inspect, EmptyDirectoryIsAnError) {
  std::filesystem::create_directories(dir / "none");
  const auto r = golf_data("inspect " + quote(dir / "none"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("no fineweb_{train,val}_NNNNNN.bin shards"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace golf
