// data/golf_data.h — golf-data: text → tokenizer → challenge-format token shards, and shard
// inspection. The CLI (main.cpp) only parses arguments into these option structs.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace golf::data {

namespace fs = std::filesystem;

// ---- tokenizer training ---------------------------------------------------------------------
// A SentencePiece BPE with the challenge's settings: nmt_nfkc normalisation, byte fallback, no
// dummy prefix, split digits, character coverage 0.999, ids pad 0 / BOS 1 / EOS 2 / UNK 3.
// With caseops, documents are CaseOps-transformed (core/caseops.h) before training and the four
// operator characters are reserved as USER_DEFINED pieces 4..7, as in the records' CaseOps tokenizer.
struct TokenizerOptions {
  std::vector<fs::path> inputs;
  int vocab_size = 8192;
  fs::path out;                      // X.model; X.vocab is written beside it
  int64_t max_docs = -1;             // read at most this many documents (-1: all)
  int64_t input_sentence_size = 0;   // SentencePiece samples this many documents/chunks (0: all)
  int max_sentence_length = 1 << 14; // longer documents are fed as chunks of whole lines (bytes)
  int threads = 0;                   // 0: all cores
  bool caseops = false;              // train a CaseOps tokenizer
};
struct TokenizerReport {
  int64_t documents = 0, text_bytes = 0;
  int vocab_size = 0;
  double seconds = 0;
};
TokenizerReport train_tokenizer(const TokenizerOptions& options);

// ---- shards ---------------------------------------------------------------------------------
// The tokenizer decides the text transform: with a CaseOps tokenizer (its kind, core/tokenizer.h)
// every document is CaseOps-transformed before encoding, and a val split also gets the byte sidecar
// fineweb_val_bytes_NNNNNN.bin beside each shard (core/shard.h).
struct ShardOptions {
  std::vector<fs::path> inputs;
  fs::path tokenizer;
  fs::path out_dir;
  std::string split = "train";       // "train" or "val"
  int64_t shard_tokens = 100'000'000;
  int64_t max_docs = -1;
  int threads = 0;                   // 0: all cores
  bool overwrite = false;            // replace existing fineweb_<split>_*.bin in out_dir
  bool verify_bytes = false;         // also decode every document and check the byte table; CaseOps:
                                     // also the round trip and Σ sidecar = the original byte length
  bool caseops = false;              // require a CaseOps tokenizer (an error otherwise)
};
struct ShardReport {
  std::vector<fs::path> shards;
  int64_t documents = 0, tokens = 0;
  int64_t text_bytes = 0;            // raw UTF-8 bytes of the input documents
  int64_t table_bytes = 0;           // Σ bpb byte table over all predictions
  std::optional<int64_t> decoded_bytes;  // with verify_bytes: Σ UTF-8 bytes of decode(encode(doc))
  std::string tokenizer_kind;        // "plain" | "caseops"
  // CaseOps only:
  std::vector<fs::path> sidecars;    // val split: the byte sidecars written
  std::optional<int64_t> sidecar_bytes;       // val split: Σ sidecar (the bpb denominator)
  std::optional<int64_t> round_trip_ok;       // with verify_bytes: documents with decode(encode(doc)) == doc
  std::optional<int64_t> sidecar_equal_docs;  // with verify_bytes (val): documents whose Σ sidecar == their
                                              // byte length (edge whitespace excluded, see caseops.h)
  int64_t edge_whitespace_docs = 0;  // CaseOps: documents with leading/trailing whitespace (not counted)
  double seconds = 0;
};
ShardReport write_shards(const ShardOptions& options);

// ---- inspection -----------------------------------------------------------------------------
struct ShardStats {
  fs::path path;
  std::string split;
  int64_t tokens = 0, documents = 0;  // documents = BOS count
  int max_token = -1;
  std::optional<int64_t> bytes;       // by the bpb table, when a tokenizer is given
  std::optional<int64_t> sidecar_bytes;  // Σ of its byte sidecar fineweb_val_bytes_NNNNNN.bin, if any
};
struct InspectReport {
  std::vector<ShardStats> files;
  std::optional<fs::path> tokenizer;
  std::string tokenizer_kind, tokenizer_sha256;
  int vocab_size = 0;                 // 0 without a tokenizer
  // val shards with sidecars and a CaseOps tokenizer: the audit of core/byte_sidecar.h over the split
  std::optional<int64_t> sidecar_total, sidecar_decoded_bytes, sidecar_documents, sidecar_documents_differing;
};
// `target` is a shard file or a directory (all fineweb_{train,val}_NNNNNN.bin in it). Every
// header and token id is validated; a val shard's byte sidecar (if present) is validated against
// the shard (header, one entry per token) and, with a CaseOps tokenizer, audited against the decoded
// original text (core/byte_sidecar.h). Throws golf::Error on the first problem, including sidecars
// with a plain tokenizer and CaseOps val shards without sidecars.
InspectReport inspect(const fs::path& target, const std::optional<fs::path>& tokenizer);
nlohmann::json to_json(const InspectReport& report);
std::string to_table(const InspectReport& report);

}  // namespace golf::data
