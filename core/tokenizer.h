// core/tokenizer.h — a SentencePiece model behind a narrow interface (the sentencepiece and
// protobuf headers stay in tokenizer.cpp). Encoding is const and safe from many threads.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece { class SentencePieceProcessor; }

namespace golf {

class Tokenizer {
 public:
  // Loads a .model file; throws golf::Error naming the file if it is missing or not a model.
  static Tokenizer load(const std::filesystem::path& model_path);

  int vocab_size() const;
  int bos_id() const;
  int piece_to_id(std::string_view piece) const;  // unk_id() when absent
  int unk_id() const;
  std::string piece(int id) const;
  bool is_control(int id) const;
  bool is_unknown(int id) const;
  bool is_unused(int id) const;
  bool is_byte(int id) const;

  std::vector<int> encode(std::string_view text) const;
  // Ids with each piece's byte span [begin, end) in `text` (SentencePiece surface offsets: the
  // original bytes a piece covers before normalization; a byte-fallback or NFKC-expanded character
  // is covered by its last piece, the earlier ones get empty spans).
  struct Piece {
    int id = 0;
    uint32_t begin = 0, end = 0;
  };
  std::vector<Piece> encode_with_spans(std::string_view text) const;
  std::string decode(std::span<const int> ids) const;
  const std::filesystem::path& path() const { return path_; }

  // Identity, so that data, model and evaluation can prove they use the same tokenizer:
  // sha256 of the .model file (lowercase hex) and its kind, "caseops" when the four CaseOps
  // operator characters (core/caseops.h) are pieces of their own, else "plain".
  const std::string& sha256() const { return sha256_; }
  const std::string& kind() const { return kind_; }
  bool is_caseops() const { return kind_ == "caseops"; }
  // "path (kind, sha256 1a2b3c4d…)" for messages.
  std::string describe() const;

 private:
  std::filesystem::path path_;
  std::string sha256_, kind_;
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace golf
