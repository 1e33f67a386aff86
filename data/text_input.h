// data/text_input.h — documents from the corpus formats golf-data accepts:
//   *.jsonl, *.jsonl.xz   one JSON object per line, the document in its "text" field (the
//                         challenge's docs_selected.jsonl layout); blank lines are skipped
//   *.txt,   *.txt.xz     the whole file is one document
// .xz files are decompressed on the fly with liblzma. Errors name file:line.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace golf {

struct Document {
  std::string text;
  std::string where;  // "file:line" (or "file" for .txt), for error messages
};

class ByteSource;  // a file, optionally through an xz decoder

class DocumentReader {
 public:
  // Checks that every input exists and has a supported extension before reading any.
  explicit DocumentReader(std::vector<std::filesystem::path> inputs, std::string field = "text");
  ~DocumentReader();
  DocumentReader(DocumentReader&&) noexcept;

  // Next document, or false at the end of the last input.
  bool next(Document& doc);
  // On-disk bytes consumed so far and in total (compressed size for .xz): for progress and ETA.
  int64_t bytes_consumed() const;
  int64_t bytes_total() const { return bytes_total_; }
  int64_t documents_read() const { return documents_; }

 private:
  bool open_next_file();
  void close_file();
  bool read_line(std::string& line);

  std::vector<std::filesystem::path> inputs_;
  std::string field_;
  size_t next_input_ = 0;
  std::unique_ptr<ByteSource> source_;
  bool jsonl_ = false;
  int64_t line_no_ = 0;
  int64_t bytes_total_ = 0, bytes_done_before_ = 0, documents_ = 0;
  std::string pending_;  // decoded bytes not yet split into lines
  size_t pending_pos_ = 0;
};

}  // namespace golf
