// The bpb byte table on the challenge's own tokenizer, and the byte-total identity: the table's
// total equals the UTF-8 size of the text after the tokenizer's normalisation, counted
// independently by Python sentencepiece (tests/reference/normalized_bytes.py).
#include "core/byte_table.h"

#include <nlohmann/json.hpp>

#include "core/shard.h"
#include "core/tokenizer.h"
#include "tests/test_util.h"

namespace golf {
namespace {

class ChallengeTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    GOLF_REQUIRE_FILE(test::challenge_tokenizer());
    tokenizer = Tokenizer::load(test::challenge_tokenizer());
    table = ByteTable::build(tokenizer);
  }
  Tokenizer tokenizer;
  ByteTable table;
};

TEST_F(ChallengeTokenizer, SpacePrefixedWordPiece) {
  const int the = tokenizer.piece_to_id("\xE2\x96\x81the");  // "▁the"
  ASSERT_NE(the, tokenizer.unk_id());
  const int cat = tokenizer.encode("cat").front();
  EXPECT_EQ(table.base_bytes[the], 3);
  EXPECT_EQ(table.leading_space[the], 1);
  EXPECT_EQ(table.is_boundary[the], 0);
  EXPECT_EQ(table.bytes(cat, the), 4) << "after a word, \"▁the\" is \" the\"";
  EXPECT_EQ(table.bytes(shard::kBos, the), 3) << "right after BOS the space is not charged";
}

TEST_F(ChallengeTokenizer, ByteFallbackPieceIsOneByte) {
  const int byte_a = tokenizer.piece_to_id("<0x41>");
  ASSERT_TRUE(tokenizer.is_byte(byte_a));
  EXPECT_EQ(table.base_bytes[byte_a], 1);
  EXPECT_EQ(table.leading_space[byte_a], 0);
  // A character outside the vocabulary falls back to its UTF-8 bytes, one piece each.
  const auto ids = tokenizer.encode("\xF0\x9F\x80\x84");  // U+1F004, 4 bytes
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(table.count(std::vector<uint16_t>{1, uint16_t(ids[0]), uint16_t(ids[1]), uint16_t(ids[2]), uint16_t(ids[3])}), 4);
}

TEST_F(ChallengeTokenizer, ControlPiecesAreZeroByteBoundaries) {
  for (const int id : {0, 1, 2, 3}) {
    EXPECT_EQ(table.base_bytes[id], 0) << id;
    EXPECT_EQ(table.is_boundary[id], 1) << id;
  }
  EXPECT_EQ(table.size(), 8192);
  EXPECT_EQ(ByteTable::build(tokenizer, 9000).size(), 9000);
  EXPECT_EQ(ByteTable::build(tokenizer, 9000).is_boundary[8500], 1) << "ids past the tokenizer are boundaries";
}

TEST_F(ChallengeTokenizer, BosAfterADocumentEnd) {
  // "... end." BOS "▁Next": the BOS target costs 0 and the space of the word after it is free.
  const auto a = tokenizer.encode("The end.");
  const int next = tokenizer.piece_to_id("\xE2\x96\x81Next");
  ASSERT_NE(next, tokenizer.unk_id());
  std::vector<uint16_t> stream = {1};
  for (int id : a) stream.push_back(uint16_t(id));
  const int64_t first_doc = table.count(stream);
  stream.push_back(1);
  EXPECT_EQ(table.count(stream), first_doc) << "BOS as a target is 0 bytes";
  stream.push_back(uint16_t(next));
  EXPECT_EQ(table.count(stream), first_doc + 4) << "\"Next\" without its space";
  EXPECT_EQ(first_doc, 8);
}

TEST_F(ChallengeTokenizer, CountContinuesAcrossChunks) {
  const auto ids = tokenizer.encode("It was the best of times, it was the worst of times.");
  std::vector<uint16_t> stream = {1};
  for (int id : ids) stream.push_back(uint16_t(id));
  const auto whole = table.count(stream);
  const std::span<const uint16_t> s(stream);
  EXPECT_EQ(table.count(s.subspan(0, 5)) + table.count(s.subspan(5), s[4]), whole);
}

TEST_F(ChallengeTokenizer, ByteTotalEqualsNormalisedTextOnTinyShakespeare) {
  GOLF_REQUIRE_FILE(test::tiny_shakespeare());
  const std::string text = test::read_file(test::tiny_shakespeare());
  const auto ids = tokenizer.encode(text);
  std::vector<uint16_t> stream = {1};
  for (int id : ids) stream.push_back(uint16_t(id));
  const int64_t table_total = table.count(stream);

  const auto ref = test::run_reference("normalized_bytes.py",
                                       test::quote(test::challenge_tokenizer()) + " " + test::quote(test::tiny_shakespeare()));
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  const auto j = nlohmann::json::parse(ref.output);
  EXPECT_EQ(j["raw_bytes"].get<int64_t>(), static_cast<int64_t>(text.size()));
  EXPECT_EQ(table_total, j["normalized_bytes"].get<int64_t>());
  EXPECT_EQ(table_total, static_cast<int64_t>(tokenizer.decode(ids).size()));
  // Normalisation really changes this text (newlines become spaces, runs collapse), so the
  // identity is not the trivial raw-size one.
  EXPECT_LT(table_total, static_cast<int64_t>(text.size()));
}

}  // namespace
}  // namespace golf
