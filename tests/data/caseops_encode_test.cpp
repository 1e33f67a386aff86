// data/caseops_encode + core/caseops: the CaseOps transform as specified (the records' example and
// every rule), its exact inverse (core's decode) on arbitrary bytes, the original-byte map behind the
// sidecar, and malformed transformed text as one clear error. (Every Gutenberg val document and the
// Python reference: tests/data/caseops_test.cpp.)
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

// GCC 12 warns falsely on std::string operator+ chains (GCC bug 105329); the expectations below are
// clearest written that way.
#pragma GCC diagnostic ignored "-Wrestrict"

#include <fstream>
#include <random>

#include "core/caseops.h"
#include "data/caseops_encode.h"
#include "tests/test_util.h"

namespace golf {
namespace {

using test::quote;

const std::string T(caseops::kTitle), A(caseops::kAllCaps), C(caseops::kCapNext), E(caseops::kEsc);

TEST(CaseOps, TheRecordsExample) {
  EXPECT_EQ(caseops::encode("The NASA Launch"), T + "the " + A + "nasa " + T + "launch");
}

TEST(CaseOps, EveryRule) {
  EXPECT_EQ(caseops::encode("the end."), "the end.");                    // lowercase words stay
  EXPECT_EQ(caseops::encode("OK, NASA!"), A + "ok, " + A + "nasa!");      // all caps, >= 2 letters
  EXPECT_EQ(caseops::encode("A I x"), T + "a " + T + "i x");              // one capital letter: TITLE
  EXPECT_EQ(caseops::encode("McDonald"), T + "mc" + C + "donald");        // mixed: TITLE then CAPNEXT
  EXPECT_EQ(caseops::encode("eBay iPhone"), "e" + C + "bay i" + C + "phone");
  EXPECT_EQ(caseops::encode("ABc"), T + "a" + C + "bc");                  // not all caps: mixed rule
  EXPECT_EQ(caseops::encode("x2Y"), "x2" + T + "y");                      // digits end a word
  EXPECT_EQ(caseops::encode("\xC3\x89" "clair"), "\xC3\x89" "clair");     // only ASCII A-Z change
  EXPECT_EQ(caseops::encode("a" + T + "b"), "a" + E + T + "b");           // a literal operator is escaped
  EXPECT_EQ(caseops::encode(E + E), E + E + E + E);
  EXPECT_EQ(caseops::encode(""), "");
}

TEST(CaseOps, OriginalBytesMarkOperatorsZeroAndSumToTheText) {
  const std::string text = "The NASA " + A + "x McD \xE2\x80\x99s";
  std::vector<uint8_t> original;
  const std::string t = caseops::encode(text, &original);
  ASSERT_EQ(original.size(), t.size());
  int64_t sum = 0;
  for (const uint8_t b : original) sum += b;
  EXPECT_EQ(sum, static_cast<int64_t>(text.size()));
  // The escape is free, the escaped literal costs its 3 bytes; TITLE/ALLCAPS/CAPNEXT are free.
  const size_t esc = t.find(E);
  ASSERT_NE(esc, std::string::npos);
  EXPECT_EQ(std::vector<uint8_t>(original.begin() + esc, original.begin() + esc + 6), (std::vector<uint8_t>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(std::vector<uint8_t>(original.begin(), original.begin() + 4), (std::vector<uint8_t>{0, 0, 0, 1}));
}

TEST(CaseOps, TokenByteCountsSumTheSpans) {
  const std::vector<uint8_t> original = {0, 0, 0, 1, 1, 1, 1};  // TITLE + "the "
  const std::vector<caseops::Span> spans = {{0, 3}, {3, 6}, {6, 6}, {6, 7}};
  EXPECT_EQ(caseops::token_byte_counts(spans, original), (std::vector<int64_t>{0, 3, 0, 1}));
  const std::vector<caseops::Span> bad = {{5, 9}};
  EXPECT_NE(test::error_of([&] { caseops::token_byte_counts(bad, original); }).find("outside"), std::string::npos);
}

TEST(CaseOps, DecodeIsTheExactInverseOnArbitraryBytes) {
  // Letters of both cases, operator bytes, their fragments and UTF-8: every string round-trips.
  const std::vector<std::string> alphabet = {"a", "Z", "q", "M", " ", "\n", "1", "\xC3\xA9", T, A, C, E, "\xEE", "\xEE\x80", "\x80"};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20000; ++trial) {
    std::string s;
    const int n = static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) s += alphabet[rng() % alphabet.size()];
    const std::string t = caseops::encode(s);
    ASSERT_EQ(caseops::decode(t), s) << "trial " << trial;
    for (const char c : t) ASSERT_FALSE(c >= 'A' && c <= 'Z') << "the transform writes no uppercase ASCII";
  }
}

TEST(CaseOps, MalformedTextIsOneClearError) {
  EXPECT_NE(test::error_of([] { caseops::decode("ab" + T); }).find("at byte 2"), std::string::npos);
  EXPECT_NE(test::error_of([] { caseops::decode(A + "1"); }).find("not followed by a lowercase"), std::string::npos);
  EXPECT_NE(test::error_of([] { caseops::decode(E + "x"); }).find("ESC at byte 0"), std::string::npos);
  EXPECT_NE(test::error_of([] { caseops::decode("aB"); }).find("uppercase letter 'B' at byte 1"), std::string::npos);
}

}  // namespace
}  // namespace golf
