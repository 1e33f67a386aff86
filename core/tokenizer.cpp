#include "core/tokenizer.h"

#include <sentencepiece_processor.h>

#include "core/error.h"

namespace golf {

Tokenizer Tokenizer::load(const std::filesystem::path& model_path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model_path, ec))
    fail("tokenizer {}: no such file", model_path.string());
  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  if (const auto status = sp->Load(model_path.string()); !status.ok())
    fail("tokenizer {}: not a SentencePiece model ({})", model_path.string(), status.ToString());
  Tokenizer t;
  t.path_ = model_path;
  t.sp_ = std::move(sp);
  return t;
}

int Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int Tokenizer::bos_id() const { return sp_->bos_id(); }
int Tokenizer::unk_id() const { return sp_->unk_id(); }
int Tokenizer::piece_to_id(std::string_view piece) const { return sp_->PieceToId(piece); }
std::string Tokenizer::piece(int id) const { return sp_->IdToPiece(id); }
bool Tokenizer::is_control(int id) const { return sp_->IsControl(id); }
bool Tokenizer::is_unknown(int id) const { return sp_->IsUnknown(id); }
bool Tokenizer::is_unused(int id) const { return sp_->IsUnused(id); }
bool Tokenizer::is_byte(int id) const { return sp_->IsByte(id); }

std::vector<int> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  if (const auto status = sp_->Encode(text, &ids); !status.ok())
    fail("tokenizer {}: encode failed: {}", path_.string(), status.ToString());
  return ids;
}

std::string Tokenizer::decode(std::span<const int> ids) const {
  std::string text;
  const std::vector<int> copy(ids.begin(), ids.end());
  if (const auto status = sp_->Decode(copy, &text); !status.ok())
    fail("tokenizer {}: decode failed: {}", path_.string(), status.ToString());
  return text;
}

}  // namespace golf
