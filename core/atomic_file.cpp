#include "core/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace golf {
namespace fs = std::filesystem;

AtomicFile::AtomicFile(fs::path target) : target_(std::move(target)) {
  const fs::path dir = target_.has_parent_path() ? target_.parent_path() : fs::path(".");
  temp_ = dir / fmt::format(".{}.tmp-{}", target_.filename().string(), ::getpid());
  file_ = std::fopen(temp_.c_str(), "wb");
  if (!file_) fail("cannot write {}: {}", target_.string(), std::strerror(errno));
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : target_(std::move(other.target_)), temp_(std::move(other.temp_)), file_(other.file_),
      committed_(other.committed_) {
  other.file_ = nullptr;
  other.committed_ = true;  // the moved-from object owns nothing to clean up
}

AtomicFile::~AtomicFile() {
  if (file_) std::fclose(file_);
  if (!committed_) {
    std::error_code ignored;
    fs::remove(temp_, ignored);
  }
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (!file_) fail("internal: write to closed file {}", target_.string());
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes)
    fail("cannot write {}: {}", target_.string(), std::strerror(errno));
}

void AtomicFile::commit() {
  if (!file_) fail("internal: commit of closed file {}", target_.string());
  const bool flushed = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  const int saved_errno = errno;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed)
    fail("cannot write {}: {}", target_.string(), std::strerror(flushed ? errno : saved_errno));
  std::error_code ec;
  fs::rename(temp_, target_, ec);
  if (ec) fail("cannot move {} into place: {}", target_.string(), ec.message());
  committed_ = true;
}

void write_file_atomic(const fs::path& target, std::string_view text) {
  AtomicFile file(target);
  file.write(text);
  file.commit();
}

}  // namespace golf
