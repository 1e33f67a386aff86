// scoring/val_data.h — the validation split, and nothing else: golf-eval's only access to token data.
//
// golf-eval cannot read training data by construction: this is the one place it opens token files,
// it accepts only files named fineweb_val_NNNNNN.bin (never fineweb_train_*, never a *_bytes_*
// sidecar in their place), and the golf-eval executable does not link the training loader. Every
// file opened is listed in ValData::files and in eval.json.
//
// CaseOps data: when fineweb_val_bytes_NNNNNN.bin sits beside the shards (all of them or none), it
// is read with them (validated against its shard: header, one entry per token) and replaces the
// tokenizer's byte table: prediction j costs sidecar[j + 1] bytes (rules-and-eval.md §2.6).
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include "core/config.h"

namespace golf::scoring {

struct ValData {
  std::vector<uint16_t> tokens;                  // the stream (VAL_MAX_TOKENS + 1 tokens when capped)
  std::vector<std::filesystem::path> files;      // every file read, in order
  int64_t predictions = 0;                       // M = ⌊(N − 1) / L⌋ · L (L = EVAL_SEQ_LEN), as the records
  std::vector<uint16_t> sidecar;                 // CaseOps: original bytes per token (same length as tokens); else empty
  std::vector<std::filesystem::path> sidecar_files;
  bool has_sidecar() const { return !sidecar_files.empty(); }
};

// Reads the val shards under DATA_PATH (a directory, or one fineweb_val_NNNNNN.bin file). Throws
// golf::Error naming the path when there are none, when a file is not a validation shard, when a
// token id is ≥ VOCAB_SIZE, when the stream is shorter than one EVAL_SEQ_LEN row, or when a sidecar
// disagrees with its shard or only some shards have one.
ValData load_val(const Config& config);
// The same stream cut into rows of `seq_len` (named `seq_len_name` in errors): training-time
// validation reads it with TRAIN_SEQ_LEN (scoring/validation.h).
ValData load_val(const Config& config, int64_t seq_len, const char* seq_len_name);

// True for names the evaluator may open: fineweb_val_NNNNNN.bin.
bool is_val_shard_name(const std::string& filename);

}  // namespace golf::scoring
