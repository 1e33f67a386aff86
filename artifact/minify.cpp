// artifact/minify.cpp — lex C++/CUDA into tokens (keeping literals and directives whole), then write
// them back with only the blanks that keep the token sequence the same.
#include "artifact/minify.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace golf::artifact {
namespace {

enum class Kind { Word, Number, Literal, Operator, Bracket, Directive };

struct Token {
  Kind kind;
  std::string text;
  bool blank_before = false;  // a blank, newline or comment separated it from the previous token
};

bool is_word_start(unsigned char c) { return std::isalpha(c) || c == '_' || c == '$' || c >= 0x80; }
bool is_word_char(unsigned char c) { return is_word_start(c) || std::isdigit(c); }
bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }
bool is_bracket(char c) { return std::string_view("()[]{};,").find(c) != std::string_view::npos; }

class Lexer {
 public:
  Lexer(std::string_view s, std::string_view what) : s_(s), what_(what) {}

  std::vector<Token> run() {
    std::vector<Token> out;
    bool blank = false, line_start = true;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '\n') { ++i_, blank = true, line_start = true; continue; }
      if (is_blank(c)) { ++i_, blank = true; continue; }
      if (c == '\\' && next_is_newline(i_ + 1)) { skip_splice(); blank = true; continue; }
      if (starts("//")) { skip_line_comment(); blank = true; continue; }
      if (starts("/*")) { skip_block_comment(); blank = true; continue; }
      Token t{Kind::Operator, "", blank};
      if (c == '#' && line_start) {
        t.kind = Kind::Directive, t.text = directive();
      } else if (is_word_start(static_cast<unsigned char>(c))) {
        t.kind = Kind::Word, t.text = word();
        if (i_ < s_.size() && (s_[i_] == '"' || s_[i_] == '\'') && is_literal_prefix(t.text, s_[i_]))
          t.kind = Kind::Literal, t.text += literal(t.text.back() == 'R');
      } else if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && next_is_digit(i_ + 1))) {
        t.kind = Kind::Number, t.text = number();
      } else if (c == '"' || c == '\'') {
        t.kind = Kind::Literal, t.text = literal(false);
      } else if (is_bracket(c)) {
        t.kind = Kind::Bracket, t.text = std::string(1, c), ++i_;
      } else {
        t.text = operators();
      }
      out.push_back(std::move(t));
      blank = false, line_start = false;
    }
    return out;
  }

 private:
  std::string_view s_, what_;
  size_t i_ = 0;

  int line_of(size_t pos) const { return 1 + static_cast<int>(std::count(s_.begin(), s_.begin() + pos, '\n')); }
  bool starts(std::string_view p) const { return s_.substr(i_, p.size()) == p; }
  bool next_is_digit(size_t pos) const { return pos < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos])); }
  bool next_is_newline(size_t pos) const {
    return (pos < s_.size() && s_[pos] == '\n') || (pos + 1 < s_.size() && s_[pos] == '\r' && s_[pos + 1] == '\n');
  }
  void skip_splice() { i_ += s_[i_ + 1] == '\r' ? 3 : 2; }

  // A // comment ends at a newline that no backslash splices away.
  void skip_line_comment() {
    while (i_ < s_.size() && s_[i_] != '\n') {
      if (s_[i_] == '\\' && next_is_newline(i_ + 1)) skip_splice();
      else ++i_;
    }
  }
  void skip_block_comment() {
    const size_t end = s_.find("*/", i_ + 2);
    if (end == std::string_view::npos) fail("{}:{}: unterminated /* comment", what_, line_of(i_));
    i_ = end + 2;
  }

  std::string word() {
    const size_t begin = i_;
    while (i_ < s_.size() && is_word_char(static_cast<unsigned char>(s_[i_]))) ++i_;
    return std::string(s_.substr(begin, i_ - begin));
  }

  static bool is_literal_prefix(const std::string& w, char quote) {
    if (w == "u8" || w == "u" || w == "U" || w == "L") return true;
    return quote == '"' && (w == "R" || w == "u8R" || w == "uR" || w == "UR" || w == "LR");
  }

  // A pp-number: digits, letters, '.', digit separators and an exponent's sign (1e+5, 0x1p-3).
  std::string number() {
    const size_t begin = i_;
    ++i_;
    while (i_ < s_.size()) {
      const char c = s_[i_], prev = s_[i_ - 1];
      if (is_word_char(static_cast<unsigned char>(c)) || c == '.') ++i_;
      else if (c == '\'' && i_ + 1 < s_.size() && is_word_char(static_cast<unsigned char>(s_[i_ + 1]))) ++i_;
      else if ((c == '+' || c == '-') && std::string_view("eEpP").find(prev) != std::string_view::npos) ++i_;
      else break;
    }
    return std::string(s_.substr(begin, i_ - begin));
  }

  // From the opening quote at i_ to the closing one, escapes and all; raw strings to )delim".
  std::string literal(bool raw) {
    const size_t begin = i_;
    const char quote = s_[i_];
    if (raw) {
      const size_t open = s_.find('(', i_ + 1);
      if (open == std::string_view::npos || open - i_ - 1 > 16) fail("{}:{}: bad raw string delimiter", what_, line_of(i_));
      std::string close(1, ')');
      close.append(s_.substr(i_ + 1, open - i_ - 1)).push_back('"');
      const size_t end = s_.find(close, open + 1);
      if (end == std::string_view::npos) fail("{}:{}: unterminated raw string literal", what_, line_of(begin));
      i_ = end + close.size();
      return std::string(s_.substr(begin, i_ - begin));
    }
    for (++i_; i_ < s_.size() && s_[i_] != quote; ++i_) {
      if (s_[i_] == '\n') break;
      if (s_[i_] == '\\') ++i_;
    }
    if (i_ >= s_.size() || s_[i_] != quote) fail("{}:{}: unterminated {} literal", what_, line_of(begin), quote == '"' ? "string" : "character");
    ++i_;
    return std::string(s_.substr(begin, i_ - begin));
  }

  // A run of operator characters; a '.' that starts a number ends it (a-.5 is a, -, .5).
  std::string operators() {
    const size_t begin = i_;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (is_blank(c) || c == '\n' || c == '"' || c == '\'' || is_bracket(c) || is_word_char(static_cast<unsigned char>(c))) break;
      if (i_ > begin && (starts("//") || starts("/*") || (c == '.' && next_is_digit(i_ + 1)))) break;
      if (c == '\\' && next_is_newline(i_ + 1)) break;
      ++i_;
    }
    if (i_ == begin) ++i_;  // a lone character of its own (cannot happen with the tests above, but never loop)
    return std::string(s_.substr(begin, i_ - begin));
  }

  // A directive up to the newline no backslash splices away: literals copied, comments and blank
  // runs (splices included) become one space, none at either end.
  std::string directive() {
    std::string text;
    bool blank = false;
    while (i_ < s_.size() && s_[i_] != '\n') {
      const char c = s_[i_];
      if (is_blank(c)) { ++i_, blank = true; continue; }
      if (c == '\\' && next_is_newline(i_ + 1)) { skip_splice(); blank = true; continue; }
      if (starts("//")) { skip_line_comment(); continue; }
      if (starts("/*")) { skip_block_comment(); blank = true; continue; }
      if (blank && !text.empty()) text += ' ';
      blank = false;
      if (c == '"' || (c == '\'' && !text.empty() && !std::isalnum(static_cast<unsigned char>(text.back())))) text += literal(false);
      else text += c, ++i_;
    }
    return text;
  }
};

// Whether dropping the blank between a and b could change the tokens.
bool needs_space(const Token& a, const Token& b) {
  const auto wordlike = [](const Token& t) { return t.kind == Kind::Word || t.kind == Kind::Number; };
  if (a.kind == Kind::Bracket || b.kind == Kind::Bracket) return false;
  if (wordlike(a) && (wordlike(b) || b.kind == Kind::Literal)) return true;  // `int x`, `u8 "x"` (a prefix)
  if (a.kind == Kind::Literal && wordlike(b)) return true;                   // `"x" s` (a suffix)
  if (a.kind == Kind::Operator && b.kind == Kind::Operator) return true;     // `- -`, `> >`
  if (a.kind == Kind::Number && b.kind == Kind::Operator)                    // `0xE +1`
    return std::string_view("eEpP").find(a.text.back()) != std::string_view::npos && (b.text[0] == '+' || b.text[0] == '-');
  if (a.kind == Kind::Operator && b.kind == Kind::Number) return b.text[0] == '.' && a.text.back() == '.';
  return false;
}

}  // namespace

std::string minify_cpp(std::string_view source, std::string_view what) {
  const std::vector<Token> tokens = Lexer(source, what).run();
  std::string out;
  out.reserve(source.size() / 2);
  for (size_t k = 0; k < tokens.size(); ++k) {
    const Token& t = tokens[k];
    if (t.kind == Kind::Directive) {
      if (!out.empty() && out.back() != '\n') out += '\n';
      out += t.text;
      out += '\n';
      continue;
    }
    if (k > 0 && t.blank_before && tokens[k - 1].kind != Kind::Directive && needs_space(tokens[k - 1], t)) out += ' ';
    out += t.text;
  }
  if (!out.empty() && out.back() != '\n') out += '\n';
  return out;
}

std::vector<std::string> cpp_tokens(std::string_view source, std::string_view what) {
  std::vector<std::string> texts;
  for (Token& t : Lexer(source, what).run()) texts.push_back(std::move(t.text));
  return texts;
}

bool is_cpp_source(std::string_view path) {
  for (std::string_view ext : {".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh"})
    if (path.size() > ext.size() && path.substr(path.size() - ext.size()) == ext) return true;
  return false;
}

}  // namespace golf::artifact
