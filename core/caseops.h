// core/caseops.h — the records' CaseOps transform (lossless_caps_caseops_v1, rules-and-eval.md §2.6):
// a bijective rewrite of a document into lowercase ASCII plus four operator characters, applied
// before tokenization so that "The", "THE" and "the" share pieces.
//
// Operators (Unicode private-use characters, 3 UTF-8 bytes each; in the records' tokenizer they are
// USER_DEFINED pieces with ids 4..7):
//   TITLE   U+E001  the next ASCII letter is uppercase
//   ALLCAPS U+E002  the following run of ASCII letters is uppercase
//   CAPNEXT U+E003  the next ASCII letter is uppercase (inside a mixed-case word)
//   ESC     U+E004  the next character is a literal operator character that was in the text
// Rules over maximal runs of ASCII letters ("words"); everything else is copied unchanged:
//   lowercase word               unchanged                       "the"    → the
//   all caps, ≥ 2 letters        ALLCAPS + lowercase(word)       "NASA"   → ALLCAPS nasa
//   first upper, rest lower      TITLE + lowercase(word)         "The","A"→ TITLE the, TITLE a
//   mixed case                   TITLE if the first letter is upper, then every later uppercase
//                                letter as CAPNEXT + its lowercase "McDonald" → TITLE mc CAPNEXT donald
//   an operator char in the text ESC + that char
// Only bytes A–Z change and only operator bytes are added, so the transform works on UTF-8 bytes and
// is defined (and exactly invertible) for any byte string.
//
// Byte accounting: every byte of the transformed text stands for some number of original bytes —
// 1 for a copied byte or a lowercased letter, 0 for an operator (ESC included), 1 for each byte of an
// escaped literal operator. A token's sidecar count is the sum over the transformed bytes its piece
// covers (SentencePiece surface spans), so a document's counts add up to its original UTF-8 length
// (less leading/trailing whitespace, which SentencePiece assigns to no piece).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace golf::caseops {

inline constexpr std::string_view kTitle = "\xEE\x80\x81";    // U+E001
inline constexpr std::string_view kAllCaps = "\xEE\x80\x82";  // U+E002
inline constexpr std::string_view kCapNext = "\xEE\x80\x83";  // U+E003
inline constexpr std::string_view kEsc = "\xEE\x80\x84";      // U+E004
inline constexpr std::string_view kOperators[4] = {kTitle, kAllCaps, kCapNext, kEsc};

// The operator starting at byte i of s (its last byte, 0x81..0x84), or 0 when there is none.
char operator_at(std::string_view s, size_t i);

// The exact inverse of encode() (data/caseops_encode.h: golf-data writes CaseOps shards; the programs
// only read them). Throws golf::Error (with the byte offset) on text encode() cannot produce: an
// operator not followed by what it applies to, or an uppercase ASCII letter.
std::string decode(std::string_view transformed);

}  // namespace golf::caseops
