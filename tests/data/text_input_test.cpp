// Corpus reading: .jsonl / .jsonl.xz / .txt, and errors that name file:line.
#include "data/text_input.h"

#include <lzma.h>

#include "core/error.h"
#include "tests/test_util.h"

namespace golf {
namespace {

std::string xz(const std::string& data) {
  std::string out(lzma_stream_buffer_bound(data.size()), '\0');
  size_t pos = 0;
  EXPECT_EQ(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr, reinterpret_cast<const uint8_t*>(data.data()),
                                    data.size(), reinterpret_cast<uint8_t*>(out.data()), &pos, out.size()),
            LZMA_OK);
  out.resize(pos);
  return out;
}

std::vector<std::string> read_all(const std::vector<std::filesystem::path>& inputs) {
  DocumentReader reader(inputs);
  std::vector<std::string> texts;
  Document doc;
  while (reader.next(doc)) texts.push_back(doc.text);
  return texts;
}

std::string error_of(const std::vector<std::filesystem::path>& inputs) {
  return test::error_of([&] { read_all(inputs); });
}

TEST(DocumentReader, ReadsJsonlSkippingBlankLinesAndKeepingOtherFields) {
  test::TempDir dir;
  test::write_file(dir / "a.jsonl", "{\"text\": \"one\\nline two\", \"title\": \"t\"}\n\n{\"text\": \"\\u00e9\"}");
  EXPECT_EQ(read_all({dir / "a.jsonl"}), (std::vector<std::string>{"one\nline two", "\xC3\xA9"}));
}

TEST(DocumentReader, ReadsXzLargerThanOneDecodeBuffer) {
  test::TempDir dir;
  std::string jsonl;
  for (int i = 0; i < 3000; ++i) jsonl += "{\"text\": \"document " + std::to_string(i) + std::string(500, 'x') + "\"}\n";
  test::write_file(dir / "a.jsonl.xz", xz(jsonl));
  const auto docs = read_all({dir / "a.jsonl.xz"});
  ASSERT_EQ(docs.size(), 3000u);
  EXPECT_EQ(docs[2999].substr(0, 13), "document 2999");
}

TEST(DocumentReader, TxtFileIsOneDocumentAndInputsConcatenate) {
  test::TempDir dir;
  test::write_file(dir / "a.txt", "First.\n\nSecond paragraph.\n");
  test::write_file(dir / "b.jsonl", "{\"text\": \"json\"}\n");
  EXPECT_EQ(read_all({dir / "a.txt", dir / "b.jsonl"}), (std::vector<std::string>{"First.\n\nSecond paragraph.\n", "json"}));
}

TEST(DocumentReader, MalformedJsonNamesFileAndLine) {
  test::TempDir dir;
  test::write_file(dir / "a.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"broken\n");
  const auto msg = error_of({dir / "a.jsonl"});
  EXPECT_NE(msg.find("a.jsonl:2: malformed JSON"), std::string::npos) << msg;
}

TEST(DocumentReader, MissingTextFieldNamesFileAndLine) {
  test::TempDir dir;
  test::write_file(dir / "a.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"x\"}\n");
  EXPECT_NE(error_of({dir / "a.jsonl"}).find("a.jsonl:2: no string field \"text\""), std::string::npos);
  test::write_file(dir / "b.jsonl", "[1, 2]\n");
  EXPECT_NE(error_of({dir / "b.jsonl"}).find("b.jsonl:1: expected a JSON object"), std::string::npos);
}

TEST(DocumentReader, TruncatedXzIsAnError) {
  test::TempDir dir;
  const std::string full = xz(std::string(10000, 'a'));
  test::write_file(dir / "a.txt.xz", full.substr(0, full.size() / 2));
  EXPECT_NE(error_of({dir / "a.txt.xz"}).find("a.txt.xz: truncated .xz file"), std::string::npos);
  test::write_file(dir / "b.txt.xz", "plain text, not xz");
  EXPECT_NE(error_of({dir / "b.txt.xz"}).find("not an .xz file"), std::string::npos);
}

TEST(DocumentReader, RejectsMissingAndUnsupportedInputsUpFront) {
  test::TempDir dir;
  test::write_file(dir / "a.csv", "x");
  EXPECT_THROW(DocumentReader({dir / "a.csv"}), Error);
  EXPECT_THROW(DocumentReader({dir / "absent.jsonl"}), Error);
  EXPECT_THROW(DocumentReader({}), Error);
}

}  // namespace
}  // namespace golf
