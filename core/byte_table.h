// core/byte_table.h — how many UTF-8 bytes of text each predicted token stands for, the
// denominator of bits per byte (the challenge's build_sentencepiece_luts, reimplemented).
//
// Per token id t:  base_bytes[t]    UTF-8 length of its piece without a leading "▁" (U+2581);
//                                   1 for a byte-fallback piece <0xNN>; 0 for control/unknown/unused
//                  leading_space[t] the piece starts with "▁"
//                  is_boundary[t]   control/unknown/unused (BOS among them), and ids past the
//                                   tokenizer's vocabulary
// Predicting target t after previous token p costs
//     bytes(p, t) = base_bytes[t] + (leading_space[t] && !is_boundary[p])
// i.e. the space a "▁" stands for is not charged right after a document start.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace golf {

class Tokenizer;

struct ByteTable {
  std::vector<int16_t> base_bytes;
  std::vector<uint8_t> leading_space;
  std::vector<uint8_t> is_boundary;

  // Table of size max(tokenizer vocab, model_vocab). Throws golf::Error if "▁" is not a piece of
  // its own (then every space would be charged as three byte-fallback bytes).
  static ByteTable build(const Tokenizer& tokenizer, int model_vocab = 0);

  int size() const { return static_cast<int>(base_bytes.size()); }
  int bytes(int prev, int target) const {
    return base_bytes[target] + ((leading_space[target] && !is_boundary[prev]) ? 1 : 0);
  }
  // Σ bytes over the predictions of a token stream: targets tokens[1..], each after its
  // predecessor. `prev` is the token before tokens[0] when the stream continues an earlier
  // chunk (then tokens[0] is a target too); pass -1 at the start of a stream.
  int64_t count(std::span<const uint16_t> tokens, int prev = -1) const;
};

}  // namespace golf
