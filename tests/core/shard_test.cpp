// Shards: the challenge's byte layout, validation of every header field, atomic multi-shard writes.
#include "core/shard.h"

#include "core/error.h"
#include "tests/test_util.h"

namespace golf {
namespace {

using test::TempDir;

TEST(ShardHeader, MatchesHandWrittenBytes) {
  const auto header = shard::encode_header(5);
  ASSERT_EQ(header.size(), 1024u);
  // 20240520 = 0x0134D888 and 1 and 5, each as little-endian int32, then 253 zero ints.
  const std::vector<uint8_t> first = {0x88, 0xd8, 0x34, 0x01, 0x01, 0, 0, 0, 0x05, 0, 0, 0};
  EXPECT_EQ(std::vector<uint8_t>(header.begin(), header.begin() + 12), first);
  for (size_t i = 12; i < header.size(); ++i) ASSERT_EQ(header[i], 0) << "byte " << i;
}

TEST(ShardFile, WriteThenReadRoundTrips) {
  TempDir dir;
  const std::vector<uint16_t> tokens = {1, 17, 65535, 0, 8191, 1, 2};
  shard::write(dir / "fineweb_val_000000.bin", tokens);
  const std::string bytes = test::read_file(dir / "fineweb_val_000000.bin");
  ASSERT_EQ(bytes.size(), 1024u + 2 * tokens.size());
  EXPECT_EQ(static_cast<uint8_t>(bytes[1024 + 4]), 0xff);  // 65535 little-endian at token 2
  EXPECT_EQ(shard::read_header(dir / "fineweb_val_000000.bin").num_tokens, 7);
  EXPECT_EQ(shard::read_tokens(dir / "fineweb_val_000000.bin"), tokens);
}

TEST(ShardFile, EmptyShardIsValid) {
  TempDir dir;
  shard::write(dir / "a.bin", std::vector<uint16_t>{});
  EXPECT_TRUE(shard::read_tokens(dir / "a.bin").empty());
}

// Writes `header` fields (magic, version, count) followed by `body_tokens` uint16 zeros.
static void write_raw(const std::filesystem::path& p, int32_t magic, int32_t version, int32_t count, size_t body_tokens) {
  std::string bytes(1024 + 2 * body_tokens, '\0');
  std::memcpy(bytes.data(), &magic, 4);
  std::memcpy(bytes.data() + 4, &version, 4);
  std::memcpy(bytes.data() + 8, &count, 4);
  test::write_file(p, bytes);
}

// Each malformed shard fails with a message naming the file and what is wrong with it.
static std::string read_error(const std::filesystem::path& p) {
  return test::error_of([&] { shard::read_tokens(p); });
}

TEST(ShardFile, RejectsWrongMagic) {
  TempDir dir;
  write_raw(dir / "x.bin", 20240521, 1, 3, 3);
  const auto msg = read_error(dir / "x.bin");
  EXPECT_NE(msg.find("x.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("magic is 20240521"), std::string::npos) << msg;
}

TEST(ShardFile, RejectsWrongVersion) {
  TempDir dir;
  write_raw(dir / "x.bin", shard::kMagic, 2, 3, 3);
  EXPECT_NE(read_error(dir / "x.bin").find("version is 2"), std::string::npos);
}

TEST(ShardFile, RejectsCountLargerThanFile) {
  TempDir dir;
  write_raw(dir / "x.bin", shard::kMagic, 1, 10, 3);
  const auto msg = read_error(dir / "x.bin");
  EXPECT_NE(msg.find("token count 10"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST(ShardFile, RejectsTrailingBytes) {
  TempDir dir;
  write_raw(dir / "x.bin", shard::kMagic, 1, 2, 3);
  EXPECT_NE(read_error(dir / "x.bin").find("trailing bytes"), std::string::npos);
}

TEST(ShardFile, RejectsFileShorterThanHeader) {
  TempDir dir;
  test::write_file(dir / "x.bin", std::string(100, '\0'));
  EXPECT_NE(read_error(dir / "x.bin").find("shorter than the 1024-byte header"), std::string::npos);
}

TEST(ShardFile, RejectsNegativeCount) {
  TempDir dir;
  write_raw(dir / "x.bin", shard::kMagic, 1, -4, 0);
  EXPECT_NE(read_error(dir / "x.bin").find("negative"), std::string::npos);
}

TEST(ShardList, TakesOnlySixDigitNamesOfTheSplitInOrder) {
  TempDir dir;
  for (const char* name : {"fineweb_val_000001.bin", "fineweb_val_000000.bin", "fineweb_val_bytes_000000.bin",
                           "fineweb_train_000000.bin", "fineweb_val_0000002.bin", "notes.txt"})
    shard::write(dir / name, std::vector<uint16_t>{1});
  const auto val = shard::list(dir.path(), "val");
  ASSERT_EQ(val.size(), 2u);
  EXPECT_EQ(val[0].filename(), "fineweb_val_000000.bin");
  EXPECT_EQ(val[1].filename(), "fineweb_val_000001.bin");
  EXPECT_EQ(shard::list(dir.path(), "train").size(), 1u);
}

TEST(ShardWriter, CutsAtShardTokensAndConcatenatesBack) {
  TempDir dir;
  std::vector<uint16_t> all;
  for (uint16_t i = 0; i < 25; ++i) all.push_back(i);
  shard::Writer writer(dir.path(), "train", 10);
  writer.append(std::span(all).subspan(0, 7));
  writer.append(std::span(all).subspan(7));
  const auto paths = writer.finish();
  ASSERT_EQ(paths.size(), 3u);
  std::vector<uint16_t> back;
  for (const auto& p : paths) {
    const auto t = shard::read_tokens(p);
    back.insert(back.end(), t.begin(), t.end());
  }
  EXPECT_EQ(back, all);
  EXPECT_EQ(shard::read_header(paths[0]).num_tokens, 10);
  EXPECT_EQ(shard::read_header(paths[2]).num_tokens, 5);
}

TEST(ShardWriter, LeavesNothingBehindWhenNotFinished) {
  TempDir dir;
  {
    shard::Writer writer(dir.path(), "train", 4);
    const std::vector<uint16_t> tokens(10, 1);
    writer.append(tokens);  // two full shards are already on disk as temporaries
    EXPECT_FALSE(dir.entries().empty());
  }
  EXPECT_TRUE(dir.entries().empty());
}

}  // namespace
}  // namespace golf
