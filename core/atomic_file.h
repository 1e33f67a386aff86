// core/atomic_file.h — outputs appear complete or not at all.
// Data goes to a hidden temporary beside the target (".name.tmp-PID"); commit() flushes, closes and
// renames it into place. Destroying an uncommitted AtomicFile deletes the temporary, so an error
// anywhere leaves no partial output and never touches an existing file of the same name.
#pragma once
#include <cstdio>
#include <filesystem>
#include <string_view>

namespace golf {

class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Flush, close and move the temporary onto the target. Throws golf::Error on failure.
  void commit();

  const std::filesystem::path& target() const { return target_; }

 private:
  std::filesystem::path target_, temp_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// Whole-file convenience: write `text` to `target` atomically.
void write_file_atomic(const std::filesystem::path& target, std::string_view text);

}  // namespace golf
