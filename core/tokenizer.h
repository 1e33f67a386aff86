// core/tokenizer.h — a SentencePiece model behind a narrow interface (the sentencepiece and
// protobuf headers stay in tokenizer.cpp). Encoding is const and safe from many threads.
#pragma once
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

 private:
  std::filesystem::path path_;
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace golf
