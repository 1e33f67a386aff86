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
  std::string decode(std::span<const int> ids) const;
  const std::filesystem::path& path() const { return path_; }
  // The SentencePiece model itself, for what only golf-data needs (each piece's byte span,
  // data/shards.cpp); everything else goes through the calls above.
  const sentencepiece::SentencePieceProcessor& processor() const { return *sp_; }

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
