// artifact/code_size.h — the "counted code" half of the 16,000,000-byte limit, and the budget check.
//
// The challenge counts code bytes + compressed model bytes against a decimal 16,000,000-byte cap.
// A C++ evaluator is code, so we count the sources needed to rebuild the model from an artifact
// and evaluate it (and to train it), listed in a manifest (artifact/code_manifest.txt), counted the way
// the records count theirs: minified, in one deterministic archive, compressed.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "artifact/artifact.h"

namespace golf::artifact {

// One counted file. `alone_bytes`: the minified file compressed on its own (with its archive
// header) by brotli-11, whatever compressor counts; `marginal_bytes`: how much smaller the counted
// archive gets without it, with the compressor that counts (-1 until measured, which compresses
// the archive once per file). Neither adds up to the total exactly: the
// compressor shares context between files.
struct CodeFile {
  std::string path;
  int64_t raw_bytes = 0, minified_bytes = 0, alone_bytes = 0, marginal_bytes = -1;
};

struct CodeSize {
  std::vector<std::string> files;  // relative to the repo root, '/'-separated, sorted, unique
  std::vector<CodeFile> rows;      // one per file, same order
  int64_t raw_bytes = 0;           // sum of the files' sizes
  int64_t minified_bytes = 0;      // sum of the minified files' sizes
  int64_t compressed_bytes = 0;    // the compressed archive of the minified files: this is what counts
  std::string compressor;          // the compressor that gave compressed_bytes (the smallest)
  std::vector<std::pair<std::string, int64_t>> candidates;  // every compressor tried, and its size
  std::string not_tried;           // "zpaq-m5 (why)" when zpaq could not be run, else empty
  bool from_cache = false;         // the compressed sizes were read from the cache (see counted_code)
};

// The counted-code cache folder (see counted_code): GOLF_CODE_CACHE if set (empty: no cache), else
// $XDG_CACHE_HOME/golf/counted-code, else $HOME/.cache/golf/counted-code (no cache without HOME).
std::filesystem::path code_cache_dir();

// The compressors tried on the counted archive, in order (a tie keeps the earlier one):
//   "xz-9e"     liblzma preset 9 | LZMA_PRESET_EXTREME, xz container, CRC-64 (`xz -9e`);
//   "lzma2-9e"  the same LZMA2 stream without the container (`xz --format=raw --lzma2=preset=9e`);
//   "brotli-11" Brotli quality 11, window 24, text mode (`brotli -q 11 -w 24`);
//   "zpaq-m5"   a zpaq journaling archive of one file named "c" holding the bytes, made by the zpaq
//               program (Debian package zpaq 7.15; no library offers libzpaq) as
//               `zpaq a c.zpaq c -m5 -noattributes -until 2000-01-01 -t1` in a private temporary
//               folder, c dated 2000-01-01 00:00:00 UTC: the bytes depend only on the input and the
//               zpaq build. Tried only when find_zpaq() finds it; `zpaq x c.zpaq` gives c back. A
//               zpaq 7 that fails is a golf::Error naming it and its output.
// Each output is decodable by the standard command line tool named.
const std::vector<std::string>& code_compressors();
std::vector<uint8_t> compress_code(const std::string& compressor, std::span<const uint8_t> bytes);

// The zpaq program "zpaq-m5" runs: the first executable `zpaq` on PATH that prints "zpaq v7." as the
// first line of its help (`version`, which keys the cache). When there is none, path is empty and
// why_not says why. Looked up once per PATH value.
struct ZpaqProgram {
  std::string path, version, why_not;
};
ZpaqProgram find_zpaq();

// Manifest: one path or glob per line, relative to `repo_root` and matched with fnmatch(3) and
// FNM_PATHNAME, one path component at a time ('*' never crosses '/'); only regular files count.
// Lines starting with '#' (after leading blanks) and blank lines are ignored; surrounding blanks
// are trimmed. A line "!pattern" removes the files it matches from those listed above it (so a
// glob can count a directory, new files included, less a few named ones). A pattern that is
// absolute, contains a ".." component, or matches no file, and an exclusion that removes nothing,
// is a golf::Error naming the manifest line.
//
// The archive is, per file in sorted order: path, '\0', decimal size, '\0', contents, where the
// contents of C++/CUDA sources are minify_cpp(file) (artifact/minify.h) and other files are verbatim.
// It is compressed with every code_compressors() entry that can run (zpaq-m5 needs the zpaq program:
// without it the count is the smallest of the rest, and not_tried says so) and the smallest counts.
// With `marginal`, each row's marginal_bytes is measured too, with that compressor (on all cores;
// one compression per file).
//
// Cache: compressing takes seconds and golf-train, golf-pack and golf-eval each count at start, so
// the compressed sizes (every candidate and every file alone) are kept in cache_dir under the
// SHA-256 of the archive itself (paths, sizes and minified contents), of the liblzma and Brotli
// versions and of zpaq's (or "none"): any change to what is counted is a new key, so a cached count
// is never stale, and a count made without zpaq is never reused with it. A missing, unreadable or
// mismatched entry is recomputed (and written atomically); an unwritable cache_dir only costs the
// time. An empty cache_dir disables the cache; `marginal` always recompresses.
CodeSize counted_code(const std::filesystem::path& repo_root, const std::filesystem::path& manifest, bool marginal = false,
                      const std::filesystem::path& cache_dir = code_cache_dir());
// The cache key of an archive: hex SHA-256 of a format tag, the compressor library versions, the
// version line of find_zpaq() (or "none") and the archive.
std::string code_cache_key(std::span<const uint8_t> archive);

// The pieces of counted_code, for tests and tools. code_archive with minify=false is the raw files.
std::vector<std::string> manifest_files(const std::filesystem::path& repo_root, const std::filesystem::path& manifest);
std::vector<uint8_t> code_archive(const std::filesystem::path& repo_root, const std::vector<std::string>& files,
                                  bool minify = true);
std::vector<uint8_t> xz_compress(std::span<const uint8_t> bytes);

// The per-file table (largest marginal, else alone, first) with totals and the compressors tried.
std::string code_table(const CodeSize& code);

struct Budget {
  int64_t limit = 16'000'000;  // decimal bytes, not MiB
  int64_t artifact_bytes = 0, code_bytes = 0;
  int64_t total() const { return artifact_bytes + code_bytes; }
  bool fits() const { return total() <= limit; }
};

// Multi-line report: artifact, code and total against the limit; when over, how many bytes must
// be saved and the groups (largest compressed size first) with what that saving means for each.
std::string budget_report(const Budget& b, const std::vector<GroupStats>& groups);

}  // namespace golf::artifact
