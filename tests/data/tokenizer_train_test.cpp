// golf-data tokenizer: a SentencePiece BPE with the challenge's settings, checked by behaviour
// (id layout, byte fallback, digit splitting, NFKC, no dummy prefix) rather than by reading the
// settings back.
#include "core/byte_table.h"
#include "core/error.h"
#include "core/tokenizer.h"
#include "tests/data/cli.h"

namespace golf {
namespace {

using test::golf_data;
using test::quote;

class TrainedTokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(test::tiny_shakespeare())) return;
    dir = new test::TempDir;
    result = new test::CommandResult(golf_data("tokenizer --input " + quote(test::tiny_shakespeare()) +
                                               " --vocab 512 --out " + quote(*dir / "ts.model")));
  }
  static void TearDownTestSuite() {
    delete dir;
    delete result;
  }
  void SetUp() override {
    GOLF_REQUIRE_FILE(test::tiny_shakespeare());
    ASSERT_EQ(result->exit_code, 0) << result->output;
    tokenizer = Tokenizer::load(*dir / "ts.model");
  }
  static inline test::TempDir* dir = nullptr;
  static inline test::CommandResult* result = nullptr;
  Tokenizer tokenizer;
};

TEST_F(TrainedTokenizer, HasTheChallengeIdLayout) {
  EXPECT_EQ(tokenizer.vocab_size(), 512);
  EXPECT_EQ(tokenizer.piece(0), "<pad>");
  EXPECT_EQ(tokenizer.piece(1), "<s>");
  EXPECT_EQ(tokenizer.piece(2), "</s>");
  EXPECT_TRUE(tokenizer.is_unknown(3));
  EXPECT_TRUE(tokenizer.is_control(0) && tokenizer.is_control(1) && tokenizer.is_control(2));
  for (int b = 0; b < 256; ++b) ASSERT_TRUE(tokenizer.is_byte(4 + b)) << b;
  EXPECT_EQ(tokenizer.piece(4 + 0x41), "<0x41>");
  EXPECT_TRUE(std::filesystem::exists(*dir / "ts.vocab"));
}

TEST_F(TrainedTokenizer, FallsBackToBytesInsteadOfUnknown) {
  const auto ids = tokenizer.encode("\xE2\x82\xAC");  // "€" never occurs in Shakespeare
  ASSERT_EQ(ids.size(), 3u);
  for (int id : ids) EXPECT_TRUE(tokenizer.is_byte(id));
}

TEST_F(TrainedTokenizer, SplitsDigitsNormalisesNfkcAndAddsNoDummyPrefix) {
  EXPECT_EQ(tokenizer.encode("2025").size(), 4u);
  EXPECT_EQ(tokenizer.encode("\xEF\xAC\x81rst"), tokenizer.encode("first")) << "the ligature ﬁ folds to fi";
  EXPECT_FALSE(tokenizer.piece(tokenizer.encode("King").front()).starts_with("\xE2\x96\x81"));
  EXPECT_NO_THROW(ByteTable::build(tokenizer));
}

TEST_F(TrainedTokenizer, TrainingIsDeterministic) {
  const auto again = golf_data("tokenizer --input " + quote(test::tiny_shakespeare()) + " --vocab 512 --out " +
                               quote(*dir / "again.model"));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_TRUE(test::read_file(*dir / "ts.model") == test::read_file(*dir / "again.model"));
}

TEST(TokenizerTraining, RejectsBadSettingsWithoutWritingAnything) {
  test::TempDir dir;
  test::write_file(dir / "a.txt", "some text to train on");
  auto r = golf_data("tokenizer --input " + quote(dir / "a.txt") + " --vocab 100 --out " + quote(dir / "t.model"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--vocab 100"), std::string::npos) << r.output;
  r = golf_data("tokenizer --input " + quote(dir / "a.txt") + " --vocab 300 --out " + quote(dir / "t.bin"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("ending in .model"), std::string::npos) << r.output;
  test::write_file(dir / "empty.jsonl", "");
  r = golf_data("tokenizer --input " + quote(dir / "empty.jsonl") + " --vocab 300 --out " + quote(dir / "t.model"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("no documents"), std::string::npos) << r.output;
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"a.txt", "empty.jsonl"}));
}

TEST(TokenizerTraining, ATokenizerWithoutASpacePieceIsRefusedForBpb) {
  // Trained on text without any whitespace, "▁" never becomes a piece: every space would then be
  // charged as three fallback bytes (the challenge's issue #897), so the byte table refuses it.
  test::TempDir dir;
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "abcdefghij"[i % 10] + std::string("xyz");
  test::write_file(dir / "nospace.txt", text);
  const auto r = golf_data("tokenizer --input " + quote(dir / "nospace.txt") + " --vocab 300 --out " + quote(dir / "n.model"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto tokenizer = Tokenizer::load(dir / "n.model");
  try {
    ByteTable::build(tokenizer);
    FAIL() << "expected the byte table to refuse this tokenizer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a piece of its own"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace golf
