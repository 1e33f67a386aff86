#include "data/caseops_encode.h"

#include "core/caseops.h"
#include "core/error.h"

namespace golf::caseops {

namespace {

bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_letter(char c) { return is_upper(c) || (c >= 'a' && c <= 'z'); }
char to_lower(char c) { return is_upper(c) ? static_cast<char>(c + ('a' - 'A')) : c; }

}  // namespace

std::string encode(std::string_view text, std::vector<uint8_t>* original_bytes) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  if (original_bytes) original_bytes->clear(), original_bytes->reserve(out.capacity());
  auto emit = [&](std::string_view bytes, uint8_t original_each) {
    out.append(bytes);
    if (original_bytes) original_bytes->insert(original_bytes->end(), bytes.size(), original_each);
  };
  auto emit_char = [&](char c) {
    out.push_back(c);
    if (original_bytes) original_bytes->push_back(1);
  };
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    if (operator_at(text, i)) {  // a literal operator character: escape it
      emit(kEsc, 0);
      emit(text.substr(i, 3), 1);
      i += 3;
      continue;
    }
    if (!is_letter(text[i])) {
      emit_char(text[i++]);
      continue;
    }
    size_t j = i, uppers = 0;
    for (; j < n && is_letter(text[j]); ++j) uppers += is_upper(text[j]);
    const size_t len = j - i;
    if (uppers == 0) {
      emit(text.substr(i, len), 1);
    } else if (uppers == len && len >= 2) {
      emit(kAllCaps, 0);
      for (size_t k = i; k < j; ++k) emit_char(to_lower(text[k]));
    } else {  // Title case is the mixed-case rule with no uppercase letter after the first
      if (is_upper(text[i])) emit(kTitle, 0);
      emit_char(to_lower(text[i]));
      for (size_t k = i + 1; k < j; ++k) {
        if (is_upper(text[k])) emit(kCapNext, 0);
        emit_char(to_lower(text[k]));
      }
    }
    i = j;
  }
  return out;
}

std::vector<int64_t> token_byte_counts(std::span<const Span> spans, std::span<const uint8_t> original_bytes) {
  std::vector<int64_t> prefix(original_bytes.size() + 1, 0);
  for (size_t k = 0; k < original_bytes.size(); ++k) prefix[k + 1] = prefix[k] + original_bytes[k];
  std::vector<int64_t> counts;
  counts.reserve(spans.size());
  for (const Span& s : spans) {
    if (s.begin > s.end || s.end > original_bytes.size())
      fail("piece span [{}, {}) lies outside the {}-byte transformed text", s.begin, s.end, original_bytes.size());
    counts.push_back(prefix[s.end] - prefix[s.begin]);
  }
  return counts;
}

}  // namespace golf::caseops
