#include "core/tokenizer.h"

#include <openssl/evp.h>
#include <sentencepiece_processor.h>

#include <fstream>
#include <iterator>

#include "core/caseops.h"
#include "core/error.h"

namespace golf {

namespace {

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr) != 1) fail("sha256 failed");
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

}  // namespace

Tokenizer Tokenizer::load(const std::filesystem::path& model_path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model_path, ec))
    fail("tokenizer {}: no such file", model_path.string());
  std::ifstream in(model_path, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (!in.eof() && in.fail()) fail("tokenizer {}: cannot read", model_path.string());
  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  if (const auto status = sp->LoadFromSerializedProto(bytes); !status.ok())
    fail("tokenizer {}: not a SentencePiece model ({})", model_path.string(), status.ToString());
  Tokenizer t;
  t.path_ = model_path;
  t.sp_ = std::move(sp);
  t.sha256_ = sha256_hex(bytes);
  bool caseops = true;
  for (const auto op : caseops::kOperators) {
    const int id = t.piece_to_id(op);
    caseops = caseops && id != t.unk_id() && !t.is_control(id) && !t.is_byte(id) && t.piece(id) == op;
  }
  t.kind_ = caseops ? "caseops" : "plain";
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

std::string Tokenizer::describe() const {
  return fmt::format("{} ({}, {} pieces, sha256 {}…)", path_.string(), kind_, vocab_size(), sha256_.substr(0, 12));
}

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
