// core/shard.h — token shards in the challenge's exact format.
//
//   bytes [0, 1024)        256 little-endian int32: [0] magic 20240520, [1] version 1,
//                          [2] number of tokens n, the other 253 zero
//   bytes [1024, 1024+2n)  n little-endian uint16 token ids
//
// Files are named fineweb_{train,val}_NNNNNN.bin (six digits). Documents are concatenated, each
// starting with BOS (id 1), and may straddle shard boundaries.
//
// CaseOps validation data also has a byte sidecar per shard, fineweb_val_bytes_NNNNNN.bin: the same
// header and uint16 body, one entry per token of fineweb_val_NNNNNN.bin — the number of original
// UTF-8 bytes that token stands for (0 for BOS and the case operators). Scorers use it instead of
// the tokenizer's byte table (rules-and-eval.md §2.6).
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/atomic_file.h"

namespace golf::shard {

inline constexpr int32_t kMagic = 20240520;
inline constexpr int32_t kVersion = 1;
inline constexpr size_t kHeaderInts = 256;
inline constexpr size_t kHeaderBytes = kHeaderInts * sizeof(int32_t);
inline constexpr uint16_t kBos = 1;

struct Header {
  int64_t num_tokens = 0;
};

// The 1024 header bytes for a shard of `num_tokens` tokens.
std::vector<uint8_t> encode_header(int64_t num_tokens);

// Reads and validates the header against the file size; throws golf::Error naming the file
// and the field (magic, version, token count, size) that is wrong.
Header read_header(const std::filesystem::path& path);

// Reads a whole shard (validated as above).
std::vector<uint16_t> read_tokens(const std::filesystem::path& path);

// Writes one shard atomically.
void write(const std::filesystem::path& path, std::span<const uint16_t> tokens);

// "fineweb_train_000003.bin"
std::string file_name(std::string_view split, int index);

// Shards of `split` in `dir`, sorted: exactly fineweb_<split>_<6 digits>.bin, so that
// side files such as fineweb_val_bytes_000000.bin are never picked up. A path that is itself a
// file is returned as is.
std::vector<std::filesystem::path> list(const std::filesystem::path& dir_or_file, std::string_view split);

// The byte sidecar of a validation shard: fineweb_val_000003.bin → fineweb_val_bytes_000003.bin
// (same directory).
std::filesystem::path sidecar_path(const std::filesystem::path& val_shard);

// Reads the sidecar of `val_shard` and checks it against the shard: a valid header whose token count
// equals the shard's `shard_tokens`. Throws golf::Error naming both files and the disagreeing field.
std::vector<uint16_t> read_sidecar(const std::filesystem::path& val_shard, int64_t shard_tokens);

// Scans every token id of a shard (header validated first) in blocks, without holding the file in
// memory; throws golf::Error naming the file, the position and the id of the first id ≥ vocab_size.
// Returns the number of tokens.
int64_t check_token_ids(const std::filesystem::path& path, int64_t vocab_size);

// Streams tokens into fineweb_<split>_NNNNNN.bin files of `shard_tokens` tokens each (the last
// one shorter). Every shard goes to a temporary file; finish() renames them all at once, and a
// writer destroyed before finish() removes them, so a failed run leaves no shard behind.
class Writer {
 public:
  Writer(std::filesystem::path dir, std::string split, int64_t shard_tokens);
  void append(std::span<const uint16_t> tokens);
  // Returns the final paths of the shards written.
  std::vector<std::filesystem::path> finish();
  int64_t tokens_written() const { return total_; }

 private:
  void flush_shard();
  std::filesystem::path dir_;
  std::string split_;
  int64_t shard_tokens_;
  int64_t total_ = 0;
  std::vector<uint16_t> buffer_;
  std::vector<AtomicFile> pending_;
};

}  // namespace golf::shard
