#include "core/caseops.h"

#include "core/error.h"

namespace golf::caseops {

namespace {

bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
char to_upper(char c) { return is_lower(c) ? static_cast<char>(c - ('a' - 'A')) : c; }

}  // namespace

char operator_at(std::string_view s, size_t i) {
  if (i + 3 > s.size() || s[i] != '\xEE' || s[i + 1] != '\x80') return 0;
  const char last = s[i + 2];
  return (last >= '\x81' && last <= '\x84') ? last : 0;
}

std::string decode(std::string_view t) {
  std::string out;
  out.reserve(t.size());
  const size_t n = t.size();
  for (size_t i = 0; i < n;) {
    const char op = operator_at(t, i);
    if (op == kEsc[2]) {
      if (!operator_at(t, i + 3)) fail("CaseOps text: ESC at byte {} is not followed by an operator character", i);
      out.append(t.substr(i + 3, 3));
      i += 6;
    } else if (op) {
      if (i + 3 >= n || !is_lower(t[i + 3]))
        fail("CaseOps text: operator U+E00{} at byte {} is not followed by a lowercase ASCII letter",
             static_cast<int>(op - '\x80'), i);
      i += 3;
      if (op == kAllCaps[2]) {
        while (i < n && is_lower(t[i])) out.push_back(to_upper(t[i++]));
      } else {
        out.push_back(to_upper(t[i++]));
      }
    } else {
      if (is_upper(t[i])) fail("CaseOps text: uppercase letter '{}' at byte {} (the transform writes none)", t[i], i);
      out.push_back(t[i++]);
    }
  }
  return out;
}

}  // namespace golf::caseops
