#include "data/text_input.h"

#include <lzma.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace golf {
namespace fs = std::filesystem;

// ---- byte sources: a plain file, or a file through liblzma's .xz decoder --------------------
class ByteSource {
 public:
  ByteSource(const fs::path& path, bool xz) : path_(path), xz_(xz) {
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
    if (xz_ && lzma_stream_decoder(&stream_, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK)
      fail("{}: cannot start the xz decoder", path.string());
  }
  ~ByteSource() {
    if (file_) std::fclose(file_);
    if (xz_) lzma_end(&stream_);
  }
  // Appends up to ~1 MiB of decoded bytes to `out`; returns false at the end of the file.
  bool read(std::string& out) {
    if (!xz_) {
      char buf[1 << 20];
      const size_t n = std::fread(buf, 1, sizeof buf, file_);
      if (std::ferror(file_)) fail("{}: read error: {}", path_.string(), std::strerror(errno));
      consumed_ += static_cast<int64_t>(n);
      out.append(buf, n);
      return n > 0;
    }
    if (finished_) return false;
    uint8_t outbuf[1 << 20];
    stream_.next_out = outbuf;
    stream_.avail_out = sizeof outbuf;
    while (stream_.avail_out == sizeof outbuf && !finished_) {
      lzma_action action = LZMA_RUN;
      if (stream_.avail_in == 0) {
        const size_t n = std::fread(inbuf_, 1, sizeof inbuf_, file_);
        if (std::ferror(file_)) fail("{}: read error: {}", path_.string(), std::strerror(errno));
        consumed_ += static_cast<int64_t>(n);
        stream_.next_in = inbuf_;
        stream_.avail_in = n;
        if (n == 0) action = LZMA_FINISH;  // tells the decoder the input has ended
      }
      const lzma_ret ret = lzma_code(&stream_, action);
      if (ret == LZMA_STREAM_END) {
        finished_ = true;
      } else if (ret != LZMA_OK) {
        const char* why = ret == LZMA_FORMAT_ERROR ? "not an .xz file"
                          : ret == LZMA_DATA_ERROR ? "corrupt .xz data"
                          : ret == LZMA_BUF_ERROR  ? "truncated .xz file"
                                                   : "xz decoder error";
        fail("{}: {} (liblzma code {})", path_.string(), why, static_cast<int>(ret));
      }
    }
    const size_t produced = sizeof outbuf - stream_.avail_out;
    out.append(reinterpret_cast<char*>(outbuf), produced);
    return produced > 0;
  }
  int64_t consumed() const { return consumed_; }

 private:
  fs::path path_;
  bool xz_;
  std::FILE* file_ = nullptr;
  lzma_stream stream_ = LZMA_STREAM_INIT;
  uint8_t inbuf_[1 << 16];
  bool finished_ = false;
  int64_t consumed_ = 0;
};

// ---- the reader -----------------------------------------------------------------------------
DocumentReader::DocumentReader(std::vector<fs::path> inputs, std::string field)
    : inputs_(std::move(inputs)), field_(std::move(field)) {
  if (inputs_.empty()) fail("no input files given");
  for (const auto& path : inputs_) {
    const std::string name = path.filename().string();
    if (!(name.ends_with(".jsonl") || name.ends_with(".jsonl.xz") || name.ends_with(".txt") ||
          name.ends_with(".txt.xz")))
      fail("{}: unsupported input type (expected .jsonl, .jsonl.xz, .txt or .txt.xz)", path.string());
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) fail("{}: no such file", path.string());
    bytes_total_ += static_cast<int64_t>(fs::file_size(path, ec));
  }
}

DocumentReader::~DocumentReader() = default;
DocumentReader::DocumentReader(DocumentReader&&) noexcept = default;

int64_t DocumentReader::bytes_consumed() const { return bytes_done_before_ + (source_ ? source_->consumed() : 0); }

void DocumentReader::close_file() {
  if (source_) bytes_done_before_ += source_->consumed();
  source_.reset();
}

bool DocumentReader::open_next_file() {
  close_file();
  if (next_input_ >= inputs_.size()) return false;
  const fs::path& path = inputs_[next_input_++];
  const std::string name = path.filename().string();
  source_ = std::make_unique<ByteSource>(path, name.ends_with(".xz"));
  jsonl_ = name.find(".jsonl") != std::string::npos;
  line_no_ = 0;
  pending_.clear();
  pending_pos_ = 0;
  return true;
}

bool DocumentReader::read_line(std::string& line) {
  for (;;) {
    const size_t nl = pending_.find('\n', pending_pos_);
    if (nl != std::string::npos) {
      line.assign(pending_, pending_pos_, nl - pending_pos_);
      pending_pos_ = nl + 1;
      ++line_no_;
      return true;
    }
    pending_.erase(0, pending_pos_);
    pending_pos_ = 0;
    if (!source_->read(pending_)) {
      // End of file: a last line without '\n' still counts.
      if (pending_.empty()) return false;
      line.swap(pending_);
      pending_.clear();
      ++line_no_;
      return true;
    }
  }
}

bool DocumentReader::next(Document& doc) {
  for (;;) {
    if (!source_ && !open_next_file()) return false;
    const std::string file = inputs_[next_input_ - 1].string();
    if (!jsonl_) {
      // A .txt file is one document.
      doc.text.clear();
      while (source_->read(doc.text)) {
      }
      doc.where = file;
      close_file();
      ++documents_;
      return true;
    }
    std::string line;
    while (read_line(line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      doc.where = fmt::format("{}:{}", file, line_no_);
      nlohmann::json obj;
      try {
        obj = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error& e) {
        fail("{}: malformed JSON: {}", doc.where, e.what());
      }
      if (!obj.is_object()) fail("{}: expected a JSON object, got {}", doc.where, obj.type_name());
      const auto it = obj.find(field_);
      if (it == obj.end() || !it->is_string()) fail("{}: no string field \"{}\"", doc.where, field_);
      doc.text = it->get<std::string>();
      ++documents_;
      return true;
    }
    close_file();
  }
}

}  // namespace golf
