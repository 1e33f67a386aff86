// data/caseops_encode.h — the CaseOps transform's forward half: core/caseops.h states the rules, the
// operators and the inverse (decode), which is all the programs need (they read CaseOps shards and
// their byte sidecars); golf-data writes them with these, outside the counted code.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace golf::caseops {

// The transformed text; with `original_bytes`, also one entry per transformed byte: how many bytes
// of `text` it stands for (0 or 1; they sum to text.size()).
std::string encode(std::string_view text, std::vector<uint8_t>* original_bytes = nullptr);

// Per-token original byte counts of one document from the pieces' byte spans [begin, end) in the
// transformed text: count[i] = Σ original_bytes[begin_i, end_i).
struct Span {
  uint32_t begin = 0, end = 0;
};
std::vector<int64_t> token_byte_counts(std::span<const Span> spans, std::span<const uint8_t> original_bytes);

}  // namespace golf::caseops
