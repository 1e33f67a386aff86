#include "core/byte_sidecar.h"

#include <array>
#include <vector>

#include "core/caseops.h"
#include "core/error.h"
#include "core/tokenizer.h"

namespace golf {

SidecarAudit audit_sidecar(std::span<const uint16_t> tokens, std::span<const uint16_t> sidecar, int64_t M,
                           const Tokenizer& tokenizer) {
  if (sidecar.size() != tokens.size())
    fail("byte sidecar has {} entries for {} tokens", sidecar.size(), tokens.size());
  if (M < 0 || M + 1 > static_cast<int64_t>(tokens.size())) fail("{} predictions need {} tokens, the stream has {}", M, M + 1, tokens.size());
  if (!tokenizer.is_caseops()) fail("tokenizer {} is not a CaseOps tokenizer: it cannot audit a byte sidecar", tokenizer.describe());
  const int bos = tokenizer.bos_id();
  std::array<int, 4> op_ids;
  for (size_t k = 0; k < 4; ++k) op_ids[k] = tokenizer.piece_to_id(caseops::kOperators[k]);
  const int esc = op_ids[3];
  auto is_op = [&](int t) { return t == op_ids[0] || t == op_ids[1] || t == op_ids[2] || t == op_ids[3]; };

  SidecarAudit a;
  a.predictions = M;
  // Exact per-position rules, with the escape state carried from the stream start.
  std::vector<uint8_t> acting(static_cast<size_t>(M + 1), 0);  // operator acting as an operator
  bool escaped = false;
  for (int64_t i = 0; i <= M; ++i) {
    const int t = tokens[static_cast<size_t>(i)];
    const int s = sidecar[static_cast<size_t>(i)];
    int expected = -1;  // -1: no exact rule for this token
    if (t == bos) {
      expected = 0, escaped = false;
    } else if (is_op(t)) {
      expected = escaped ? 3 : 0;
      acting[static_cast<size_t>(i)] = !escaped;
      escaped = !escaped && t == esc;
    } else {
      escaped = false;
    }
    if (i >= 1) a.sidecar_bytes += s;
    if (expected >= 0 && s != expected && a.violation.empty())
      a.violation = fmt::format("position {}: token {} ('{}') has sidecar count {}, expected {}{}", i, t,
                                tokenizer.piece(t), s, expected,
                                t == bos ? " (BOS)" : expected == 0 ? " (a case operator stands for no original byte)" : " (an escaped literal operator character is 3 bytes)");
  }
  // Documents: runs of targets between BOS tokens.
  std::vector<int> ids;
  for (int64_t i = 1; i <= M;) {
    if (tokens[static_cast<size_t>(i)] == bos) {
      ++i;
      continue;
    }
    const int64_t begin = i;
    int64_t doc_sidecar = 0, operators = 0;
    ids.clear();
    for (; i <= M && tokens[static_cast<size_t>(i)] != bos; ++i) {
      ids.push_back(tokens[static_cast<size_t>(i)]);
      doc_sidecar += sidecar[static_cast<size_t>(i)];
      operators += acting[static_cast<size_t>(i)];
    }
    const bool complete = tokens[static_cast<size_t>(begin - 1)] == bos &&
                          (i == static_cast<int64_t>(tokens.size()) || tokens[static_cast<size_t>(i)] == bos);
    const std::string text = tokenizer.decode(ids);
    int64_t doc_bytes = static_cast<int64_t>(text.size()) - 3 * operators;
    if (complete) {
      try {
        doc_bytes = static_cast<int64_t>(caseops::decode(text).size());
      } catch (const Error& e) {
        if (a.violation.empty()) a.violation = fmt::format("document at position {} does not decode: {}", begin, e.what());
      }
    }
    a.documents += 1;
    a.decoded_bytes += doc_bytes;
    a.documents_differing += doc_bytes != doc_sidecar;
  }
  return a;
}

void check_tokenizer_for_data(const Tokenizer& tokenizer, int64_t vocab_size, bool has_sidecar,
                              const std::string& data_path) {
  if (tokenizer.vocab_size() != vocab_size)
    fail("tokenizer {} has {} pieces but VOCAB_SIZE is {}: its byte table would not match the model's ids (a "
         "tokenizer for another vocabulary?)",
         tokenizer.describe(), tokenizer.vocab_size(), vocab_size);
  if (has_sidecar && !tokenizer.is_caseops())
    fail("DATA_PATH {} holds CaseOps validation data (fineweb_val_bytes_* byte sidecars) but tokenizer {} is not a "
         "CaseOps tokenizer; use the CaseOps tokenizer the data was made with",
         data_path, tokenizer.describe());
  if (!has_sidecar && tokenizer.is_caseops())
    fail("tokenizer {} is a CaseOps tokenizer but the validation shards under DATA_PATH {} have no byte sidecars "
         "(fineweb_val_bytes_NNNNNN.bin): bpb would charge every case operator 3 bytes; make the val shards with "
         "golf-data shards and this tokenizer",
         tokenizer.describe(), data_path);
}

}  // namespace golf
