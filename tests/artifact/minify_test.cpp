// The counted-code minifier: what goes (comments, blanks), what stays byte for byte (literals,
// directives), and that every counted file keeps its token sequence.
#include "artifact/minify.h"

#include <gtest/gtest.h>

#include "artifact/code_size.h"
#include "tests/test_util.h"

namespace golf::artifact {
namespace {

namespace fs = std::filesystem;

TEST(Minify, CommentsAndBlanksGo) {
  EXPECT_EQ(minify_cpp("// header\nint  x = 1;  // one\n/* two\n lines */ int y;\n"), "int x=1;int y;\n");
  EXPECT_EQ(minify_cpp("a/**/b"), "a b\n");  // a comment between identifiers still separates them
  EXPECT_EQ(minify_cpp("f( a ,\n\tb ) ;"), "f(a,b);\n");
  EXPECT_EQ(minify_cpp("// a comment continued \\\n still comment\nint z;"), "int z;\n");
  EXPECT_EQ(minify_cpp(""), "");
  EXPECT_EQ(minify_cpp("  \n// only a comment\n"), "");
}

TEST(Minify, LiteralsAreCopiedByteForByte) {
  EXPECT_EQ(minify_cpp("s = \"a  // not a comment /* nor this */\";"), "s=\"a  // not a comment /* nor this */\";\n");
  EXPECT_EQ(minify_cpp("c = '\"'; d = '\\''; e = \"\\\"  \";"), "c='\"';d='\\'';e=\"\\\"  \";\n");
  EXPECT_EQ(minify_cpp("r = R\"x(a \" )\" // b\n  c)x\";"), "r=R\"x(a \" )\" // b\n  c)x\";\n");
  EXPECT_EQ(minify_cpp("auto w = u8\"é  ü\"; auto l = L'x';"), "auto w=u8\"é  ü\";auto l=L'x';\n");
  EXPECT_EQ(minify_cpp("n = 1'000'000 + 0x1p-3 - 1e+5f;"), "n=1'000'000+0x1p-3-1e+5f;\n");
  EXPECT_EQ(minify_cpp("x = a - .5;"), "x=a-.5;\n");
}

TEST(Minify, BlanksThatSeparateTokensStay) {
  EXPECT_EQ(minify_cpp("return x ;"), "return x;\n");
  EXPECT_EQ(minify_cpp("a - -b; c + +d; e & &f;"), "a- -b;c+ +d;e& &f;\n");
  EXPECT_EQ(minify_cpp("std::vector<std::vector<int> > v;"), "std::vector<std::vector<int> >v;\n");
  EXPECT_EQ(minify_cpp("a >> b; c<<<g, b>>>(x);"), "a>>b;c<<<g,b>>>(x);\n");  // adjacent stays adjacent
  EXPECT_EQ(minify_cpp("y = 0xE +1;"), "y=0xE +1;\n");      // 0xE+1 would be one pp-number
  EXPECT_EQ(minify_cpp("L \"x\"; \"y\" s;"), "L \"x\";\"y\" s;\n");  // a prefix or a suffix if joined
  EXPECT_EQ(minify_cpp("a / *p; b / /*c*/ d;"), "a/ *p;b/d;\n");   // never a new comment
}

TEST(Minify, DirectivesKeepTheirOwnLines) {
  EXPECT_EQ(minify_cpp("#include <vector>  // why\nint x;\n  #  define F(a)  (a +  1) /* c */\nint y = F(2);\n"),
            "#include <vector>\nint x;\n# define F(a) (a + 1)\nint y=F(2);\n");
  EXPECT_EQ(minify_cpp("#define G (a) a\n#define H(a) a\n"), "#define G (a) a\n#define H(a) a\n");
  EXPECT_EQ(minify_cpp("#define LONG(a) \\\n  do { a; } \\\n  while (0)\nx;"), "#define LONG(a) do { a; } while (0)\nx;\n");
  EXPECT_EQ(minify_cpp("#define S \"a // b\"\n"), "#define S \"a // b\"\n");
  EXPECT_EQ(minify_cpp("int a = 1 # 2;"), "int a=1#2;\n");  // '#' not at a line start is no directive
}

TEST(Minify, BadInputIsOneErrorNamingTheLine) {
  const auto error = [](std::string_view s) { return test::error_of([&] { minify_cpp(s, "f.cpp"); }); };
  EXPECT_NE(error("int a;\n/* open").find("f.cpp:2: unterminated /* comment"), std::string::npos) << error("/* open");
  EXPECT_NE(error("x;\ny;\ns = \"open\n").find("f.cpp:3: unterminated string literal"), std::string::npos);
  EXPECT_NE(error("c = 'a;\n").find("f.cpp:1: unterminated character literal"), std::string::npos);
  EXPECT_NE(error("r = R\"d(never closed\n").find("f.cpp:1: unterminated raw string literal"), std::string::npos);
}

TEST(Minify, OnlyCppSourcesAreMinified) {
  EXPECT_TRUE(is_cpp_source("model/model.cpp"));
  EXPECT_TRUE(is_cpp_source("model/ops/fused.cu"));
  EXPECT_TRUE(is_cpp_source("model/model.h"));
  EXPECT_FALSE(is_cpp_source("artifact/code_manifest.txt"));
  EXPECT_FALSE(is_cpp_source("scripts/record.sh"));
  EXPECT_FALSE(is_cpp_source(".h"));
}

// Every counted file of this repo: the same tokens after minifying, minifying twice changes
// nothing more, and something was saved. (scripts/check_minified.py compiles the minified copies.)
TEST(Minify, EveryCountedFileKeepsItsTokens) {
  const fs::path root = GOLF_SOURCE_DIR;
  const auto files = manifest_files(root, root / "artifact/code_manifest.txt");
  int64_t raw = 0, minified = 0;
  int checked = 0;
  for (const std::string& file : files) {
    if (!is_cpp_source(file)) continue;
    const auto bytes = read_file_bytes(root / file);
    const std::string source(bytes.begin(), bytes.end());
    const std::string once = minify_cpp(source, file);
    EXPECT_EQ(cpp_tokens(once, file), cpp_tokens(source, file)) << file;
    EXPECT_EQ(minify_cpp(once, file), once) << file;
    EXPECT_LE(once.size(), source.size()) << file;
    raw += static_cast<int64_t>(source.size());
    minified += static_cast<int64_t>(once.size());
    ++checked;
  }
  EXPECT_GT(checked, 20);
  EXPECT_LT(minified, raw);
  std::printf("%d counted C++ files: %s raw bytes -> %s minified\n", checked, with_commas(raw).c_str(),
              with_commas(minified).c_str());
}

}  // namespace
}  // namespace golf::artifact
