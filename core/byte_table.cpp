#include "core/byte_table.h"

#include <algorithm>

#include "core/error.h"
#include "core/tokenizer.h"

namespace golf {

static constexpr char kSpaceMark[] = "\xE2\x96\x81";  // "▁", U+2581, 3 bytes in UTF-8

ByteTable ByteTable::build(const Tokenizer& tokenizer, int model_vocab) {
  const int sp_vocab = tokenizer.vocab_size();
  const int size = std::max(sp_vocab, model_vocab);
  ByteTable table;
  table.base_bytes.assign(size, 0);
  table.leading_space.assign(size, 0);
  table.is_boundary.assign(size, 1);
  const int space_id = tokenizer.piece_to_id(kSpaceMark);
  if (space_id == tokenizer.unk_id())
    fail("tokenizer {}: \"\u2581\" is not a piece of its own, so spaces would be counted as 3 bytes",
         tokenizer.path().string());
  for (int id = 0; id < sp_vocab; ++id) {
    if (tokenizer.is_control(id) || tokenizer.is_unknown(id) || tokenizer.is_unused(id)) continue;
    table.is_boundary[id] = 0;
    if (tokenizer.is_byte(id)) {
      table.base_bytes[id] = 1;
      continue;
    }
    std::string piece = tokenizer.piece(id);
    if (piece.starts_with(kSpaceMark)) {
      table.leading_space[id] = 1;
      piece.erase(0, 3);
    }
    table.base_bytes[id] = static_cast<int16_t>(piece.size());
  }
  return table;
}

int64_t ByteTable::count(std::span<const uint16_t> tokens, int prev) const {
  int64_t total = 0;
  for (const uint16_t t : tokens) {
    if (prev >= 0) total += bytes(prev, t);
    prev = t;
  }
  return total;
}

}  // namespace golf
