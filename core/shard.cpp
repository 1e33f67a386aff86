#include "core/shard.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <regex>

#include "core/error.h"

namespace golf::shard {
namespace fs = std::filesystem;
static_assert(std::endian::native == std::endian::little, "shards are little-endian; so must the host be");

std::vector<uint8_t> encode_header(int64_t num_tokens) {
  if (num_tokens < 0 || num_tokens >= (int64_t{1} << 31))
    fail("shard token count {} does not fit the int32 header field", num_tokens);
  int32_t ints[kHeaderInts] = {};
  ints[0] = kMagic;
  ints[1] = kVersion;
  ints[2] = static_cast<int32_t>(num_tokens);
  std::vector<uint8_t> bytes(kHeaderBytes);
  std::memcpy(bytes.data(), ints, kHeaderBytes);
  return bytes;
}

Header read_header(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open shard", path.string());
  std::error_code ec;
  const auto file_bytes = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) fail("{}: cannot read size: {}", path.string(), ec.message());
  if (file_bytes < static_cast<int64_t>(kHeaderBytes))
    fail("{}: truncated shard: {} bytes, shorter than the {}-byte header", path.string(), file_bytes, kHeaderBytes);
  int32_t ints[kHeaderInts];
  in.read(reinterpret_cast<char*>(ints), kHeaderBytes);
  if (!in) fail("{}: cannot read the shard header", path.string());
  if (ints[0] != kMagic) fail("{}: header magic is {}, expected {} (not a token shard)", path.string(), ints[0], kMagic);
  if (ints[1] != kVersion) fail("{}: header version is {}, expected {}", path.string(), ints[1], kVersion);
  if (ints[2] < 0) fail("{}: header token count is {} (negative)", path.string(), ints[2]);
  const int64_t expected = static_cast<int64_t>(kHeaderBytes) + 2 * int64_t{ints[2]};
  if (file_bytes != expected)
    fail("{}: header token count {} needs {} bytes but the file has {} ({})", path.string(), ints[2], expected,
         file_bytes, file_bytes < expected ? "truncated" : "trailing bytes");
  return Header{ints[2]};
}

std::vector<uint16_t> read_tokens(const fs::path& path) {
  const Header header = read_header(path);
  std::vector<uint16_t> tokens(static_cast<size_t>(header.num_tokens));
  std::ifstream in(path, std::ios::binary);
  in.seekg(kHeaderBytes);
  in.read(reinterpret_cast<char*>(tokens.data()), static_cast<std::streamsize>(tokens.size() * 2));
  if (!in) fail("{}: short read of {} tokens", path.string(), header.num_tokens);
  return tokens;
}

void write(const fs::path& path, std::span<const uint16_t> tokens) {
  AtomicFile file(path);
  const auto header = encode_header(static_cast<int64_t>(tokens.size()));
  file.write(header.data(), header.size());
  file.write(tokens.data(), tokens.size_bytes());
  file.commit();
}

fs::path sidecar_path(const fs::path& val_shard) {
  const std::string name = val_shard.filename().string();
  const std::string prefix = "fineweb_val_";
  if (!name.starts_with(prefix)) fail("{}: not a validation shard name, so it has no byte sidecar", val_shard.string());
  return val_shard.parent_path() / ("fineweb_val_bytes_" + name.substr(prefix.size()));
}

std::vector<uint16_t> read_sidecar(const fs::path& val_shard, int64_t shard_tokens) {
  const fs::path path = sidecar_path(val_shard);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail("{}: missing byte sidecar {}", val_shard.string(), path.filename().string());
  const Header h = read_header(path);  // names the sidecar and what is wrong with its header
  if (h.num_tokens != shard_tokens)
    fail("byte sidecar {} has {} entries but its shard {} has {} tokens (one entry per token expected)", path.string(),
         h.num_tokens, val_shard.filename().string(), shard_tokens);
  return read_tokens(path);
}

int64_t check_token_ids(const fs::path& path, int64_t vocab_size) {
  const Header h = read_header(path);
  std::ifstream in(path, std::ios::binary);
  in.seekg(kHeaderBytes);
  std::vector<uint16_t> block(size_t{1} << 20);
  for (int64_t done = 0; done < h.num_tokens;) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(block.size()), h.num_tokens - done);
    in.read(reinterpret_cast<char*>(block.data()), static_cast<std::streamsize>(n * 2));
    if (!in) fail("{}: short read at token {}", path.string(), done);
    // max first (vectorizes); the position only on failure
    const uint16_t top = *std::max_element(block.begin(), block.begin() + n);
    if (top >= vocab_size) {
      const auto at = std::find_if(block.begin(), block.begin() + n, [&](uint16_t t) { return t >= vocab_size; });
      fail("{}: token id {} at position {} is not below VOCAB_SIZE {} (data made with another tokenizer?)",
           path.string(), *at, done + (at - block.begin()), vocab_size);
    }
    done += n;
  }
  return h.num_tokens;
}

std::string file_name(std::string_view split, int index) { return fmt::format("fineweb_{}_{:06d}.bin", split, index); }

std::vector<fs::path> list(const fs::path& dir_or_file, std::string_view split) {
  std::error_code ec;
  if (fs::is_regular_file(dir_or_file, ec)) return {dir_or_file};
  if (!fs::is_directory(dir_or_file, ec)) fail("{}: no such shard file or directory", dir_or_file.string());
  const std::regex pattern(fmt::format("fineweb_{}_[0-9]{{6}}\\.bin", split));
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(dir_or_file))
    if (entry.is_regular_file() && std::regex_match(entry.path().filename().string(), pattern))
      found.push_back(entry.path());
  std::sort(found.begin(), found.end());
  return found;
}

Writer::Writer(fs::path dir, std::string split, int64_t shard_tokens)
    : dir_(std::move(dir)), split_(std::move(split)), shard_tokens_(shard_tokens) {
  if (shard_tokens_ <= 0 || shard_tokens_ >= (int64_t{1} << 31))
    fail("--shard-tokens {} must be in [1, 2^31)", shard_tokens_);
  buffer_.reserve(static_cast<size_t>(std::min<int64_t>(shard_tokens_, 1 << 24)));
}

void Writer::append(std::span<const uint16_t> tokens) {
  while (!tokens.empty()) {
    const size_t room = static_cast<size_t>(shard_tokens_) - buffer_.size();
    const size_t take = std::min(room, tokens.size());
    buffer_.insert(buffer_.end(), tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(take));
    tokens = tokens.subspan(take);
    total_ += static_cast<int64_t>(take);
    if (buffer_.size() == static_cast<size_t>(shard_tokens_)) flush_shard();
  }
}

void Writer::flush_shard() {
  AtomicFile file(dir_ / file_name(split_, static_cast<int>(pending_.size())));
  const auto header = encode_header(static_cast<int64_t>(buffer_.size()));
  file.write(header.data(), header.size());
  file.write(buffer_.data(), buffer_.size() * sizeof(uint16_t));
  pending_.push_back(std::move(file));
  buffer_.clear();
}

std::vector<fs::path> Writer::finish() {
  if (!buffer_.empty()) flush_shard();
  std::vector<fs::path> paths;
  for (auto& file : pending_) {
    file.commit();
    paths.push_back(file.target());
  }
  pending_.clear();
  return paths;
}

}  // namespace golf::shard
