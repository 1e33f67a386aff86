// artifact/minify.h — a deterministic C++/CUDA source minifier for the counted-code archive.
//
// The records count their code as pyminify(train_gpt.py) → lzma; golf counts its C++ sources the
// same way: comments and needless whitespace go, everything the compiler reads stays.
//   - comments (// and /* */, a // comment continued by a trailing backslash) become nothing, or one
//     space where the tokens on either side would otherwise glue;
//   - string and character literals (with u8/u/U/L prefixes), raw strings R"d(...)d" and
//     pp-numbers (1'000, 0x1p-3, 1e+5f) are copied byte for byte;
//   - a preprocessor directive (a line whose first non-blank character is '#', with its
//     backslash-newline continuations) stays on a line of its own, comments removed and each run of
//     blanks cut to one space (never removed, so `#define F(x)` and `#define F (x)` stay apart);
//   - other tokens are written on one line: tokens that were adjacent stay adjacent, and a blank
//     between two tokens is kept (as one space) only where dropping it could change the tokens
//     (two identifier characters, two operator characters such as `- -` or `> >`, a literal next
//     to an identifier that would become its prefix or suffix, `0xE +1`).
// The result lexes to the same token sequence as the input (cpp_tokens), which the tests check on
// every counted file, and the counted translation units still compile (scripts/check_minified.sh).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace golf::artifact {

// An unterminated comment or literal is a golf::Error naming `what` and the line.
std::string minify_cpp(std::string_view source, std::string_view what = "source");

// The token sequence the minifier preserves: comments and blanks dropped, each directive one token
// (its text with comments removed and blank runs cut to one space), every other token its text.
// The same lexer as the minifier's: comparing cpp_tokens(minify_cpp(s)) with cpp_tokens(s) checks
// the writing (which blanks may go); the compile check checks the lexing.
std::vector<std::string> cpp_tokens(std::string_view source, std::string_view what = "source");

// True for the file names minify_cpp applies to (.h .hpp .cpp .cc .cu .cuh); others are counted verbatim.
bool is_cpp_source(std::string_view path);

}  // namespace golf::artifact
