// pack/code_size.h — the "counted code" half of the 16,000,000-byte limit, and the budget check.
//
// The challenge counts code bytes + compressed model bytes against a decimal 16,000,000-byte cap.
// A C++ evaluator is code, so we count the sources needed to rebuild the model from an artifact
// and evaluate it, listed in a manifest (pack/code_manifest.txt), compressed the way the records
// count theirs: one deterministic archive through xz.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "pack/artifact.h"

namespace golf::pack {

struct CodeSize {
  std::vector<std::string> files;  // relative to the repo root, '/'-separated, sorted, unique
  int64_t raw_bytes = 0;           // sum of the files' sizes
  int64_t compressed_bytes = 0;    // the xz-compressed archive: this is what counts
};

// Manifest: one path or glob per line, relative to `repo_root` and matched with fnmatch(3) and
// FNM_PATHNAME, one path component at a time ('*' never crosses '/'); only regular files count.
// Lines starting with '#' (after leading blanks) and blank lines are ignored; surrounding blanks
// are trimmed. A pattern that is absolute, contains a ".." component, or matches no file is a
// golf::Error naming the manifest line.
//
// The archive is, per file in sorted order: path, '\0', decimal size, '\0', contents; it is
// compressed with liblzma preset 9 | LZMA_PRESET_EXTREME into an xz container with a CRC-64 check.
CodeSize counted_code(const std::filesystem::path& repo_root, const std::filesystem::path& manifest);

// The pieces of counted_code, for tests and tools.
std::vector<std::string> manifest_files(const std::filesystem::path& repo_root, const std::filesystem::path& manifest);
std::vector<uint8_t> code_archive(const std::filesystem::path& repo_root, const std::vector<std::string>& files);
std::vector<uint8_t> xz_compress(std::span<const uint8_t> bytes);

struct Budget {
  int64_t limit = 16'000'000;  // decimal bytes, not MiB
  int64_t artifact_bytes = 0, code_bytes = 0;
  int64_t total() const { return artifact_bytes + code_bytes; }
  bool fits() const { return total() <= limit; }
};

// Multi-line report: artifact, code and total against the limit; when over, how many bytes must
// be saved and the groups (largest compressed size first) with what that saving means for each.
std::string budget_report(const Budget& b, const std::vector<GroupStats>& groups);

}  // namespace golf::pack
