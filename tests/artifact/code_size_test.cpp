// Counted code (manifest globs → minified deterministic archive → the smallest compressor), its
// per-file table, and the 16,000,000-byte budget.
#include "artifact/code_size.h"

#include <lzma.h>

#include <regex>

#include "core/error.h"
#include "tests/test_util.h"

namespace golf::artifact {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// a/x.h a/y.h a/.hidden.h a/notes.txt a/b/z.h c.txt, and a directory a/dir.h that is not a file.
void make_tree(const TempDir& dir) {
  fs::create_directories(dir / "a/b");
  fs::create_directories(dir / "a/dir.h");
  test::write_file(dir / "a/x.h", "int x;\n");
  test::write_file(dir / "a/y.h", "int y;\n");
  test::write_file(dir / "a/.hidden.h", "int h;\n");
  test::write_file(dir / "a/notes.txt", "notes\n");
  test::write_file(dir / "a/b/z.h", "int z;\n");
  test::write_file(dir / "c.txt", "c\n");
}

// code_compressors() less zpaq-m5 when the zpaq program is not installed here.
std::vector<std::string> runnable_compressors() {
  std::vector<std::string> names = code_compressors();
  if (find_zpaq().path.empty()) std::erase(names, "zpaq-m5");
  return names;
}

std::string manifest_error(const fs::path& root, const fs::path& manifest) {
  return test::error_of([&] { manifest_files(root, manifest); });
}

TEST(CodeManifest, GlobsMatchPerComponentSortedAndDeduplicated) {
  TempDir dir;
  make_tree(dir);
  test::write_file(dir / "manifest.txt",
                   "# counted code\n"
                   "\n"
                   "a/*.h\n"
                   "a/x.h\n"          // already matched: listed once
                   "   c.txt  \r\n"   // blanks and a CR trimmed
                   "a/*/z.[hc]\n");
  const auto files = manifest_files(dir.path(), dir / "manifest.txt");
  // '*' never crosses '/', matches a leading '.' (plain fnmatch), and directories never count.
  EXPECT_EQ(files, (std::vector<std::string>{"a/.hidden.h", "a/b/z.h", "a/x.h", "a/y.h", "c.txt"}));
}

TEST(CodeManifest, ExclusionsRemoveFilesListedAbove) {
  TempDir dir;
  make_tree(dir);
  test::write_file(dir / "manifest.txt", "a/*.h\n!a/.*.h\n  ! a/y.h\nc.txt\n");
  EXPECT_EQ(manifest_files(dir.path(), dir / "manifest.txt"), (std::vector<std::string>{"a/x.h", "c.txt"}));
  // An exclusion must remove something listed above it, and match a file at all.
  test::write_file(dir / "manifest.txt", "a/x.h\n!a/y.h\n");
  EXPECT_TRUE(contains(manifest_error(dir.path(), dir / "manifest.txt"), "manifest.txt:2: pattern 'a/y.h' excludes no file listed above it"));
  test::write_file(dir / "manifest.txt", "a/x.h\n!a/nope.h\n");
  EXPECT_TRUE(contains(manifest_error(dir.path(), dir / "manifest.txt"), "manifest.txt:2: pattern 'a/nope.h' matches no file"));
}

TEST(CodeManifest, PatternMatchingNothingNamesTheLine) {
  TempDir dir;
  make_tree(dir);
  test::write_file(dir / "manifest.txt", "a/*.h\n# eval/* comes later\nnope/*.cpp\n");
  const std::string msg = manifest_error(dir.path(), dir / "manifest.txt");
  EXPECT_TRUE(contains(msg, "manifest.txt:3: pattern 'nope/*.cpp' matches no file")) << msg;
  test::write_file(dir / "manifest.txt", "a/b\n");  // a directory is not a file
  EXPECT_TRUE(contains(manifest_error(dir.path(), dir / "manifest.txt"), ":1: pattern 'a/b' matches no file"));
}

TEST(CodeManifest, PatternsMustStayInsideTheRepo) {
  TempDir dir;
  make_tree(dir);
  test::write_file(dir / "manifest.txt", "/etc/passwd\n");
  EXPECT_TRUE(contains(manifest_error(dir.path(), dir / "manifest.txt"), ":1: pattern '/etc/passwd' is absolute"));
  test::write_file(dir / "manifest.txt", "c.txt\na/../c.txt\n");
  EXPECT_TRUE(contains(manifest_error(dir.path(), dir / "manifest.txt"), ":2: pattern 'a/../c.txt' leaves the repo root"));
  test::write_file(dir / "manifest.txt", ".\n");
  EXPECT_TRUE(contains(manifest_error(dir.path(), dir / "manifest.txt"), "names no file"));
  EXPECT_TRUE(contains(manifest_error(dir.path(), dir / "missing.txt"), "cannot open the code manifest"));
}

TEST(CodeArchive, LayoutIsPathSizeContents) {
  TempDir dir;
  test::write_file(dir / "a", "hi");
  test::write_file(dir / "b", "");
  const auto archive = code_archive(dir.path(), {"a", "b"});
  const std::string expected("a\0" "2\0" "hi" "b\0" "0\0", 10);
  EXPECT_EQ(std::string(archive.begin(), archive.end()), expected);
}

TEST(CodeArchive, CompressionIsAnXzStreamWithCrc64ThatDecodesBack) {
  const std::string text = "the same line again and again\n";
  std::vector<uint8_t> in;
  for (int i = 0; i < 100; ++i) in.insert(in.end(), text.begin(), text.end());
  const auto xz = xz_compress(in);
  ASSERT_GT(xz.size(), 12u);
  EXPECT_EQ(std::vector<uint8_t>(xz.begin(), xz.begin() + 6), (std::vector<uint8_t>{0xFD, '7', 'z', 'X', 'Z', 0}));
  EXPECT_EQ(xz[7], LZMA_CHECK_CRC64);  // stream flags: check type
  EXPECT_LT(xz.size(), in.size() / 10);
  std::vector<uint8_t> back(in.size());
  uint64_t memlimit = UINT64_MAX;
  size_t in_pos = 0, out_pos = 0;
  ASSERT_EQ(lzma_stream_buffer_decode(&memlimit, 0, nullptr, xz.data(), &in_pos, xz.size(), back.data(), &out_pos, back.size()),
            LZMA_OK);
  EXPECT_EQ(out_pos, in.size());
  EXPECT_EQ(back, in);
  EXPECT_EQ(xz_compress(in), xz);  // deterministic
}

TEST(CodeSize, CountsTheCompressedArchiveDeterministically) {
  TempDir dir;
  make_tree(dir);
  test::write_file(dir / "manifest.txt", "a/*.h\nc.txt\n");
  const CodeSize first = counted_code(dir.path(), dir / "manifest.txt");
  EXPECT_EQ(first.files, (std::vector<std::string>{"a/.hidden.h", "a/x.h", "a/y.h", "c.txt"}));
  EXPECT_EQ(first.raw_bytes, 7 + 7 + 7 + 2);
  EXPECT_EQ(first.minified_bytes, 7 + 7 + 7 + 2);  // "int x;\n" is already minified; c.txt is not C++
  // The smallest of the compressors tried, each on the same archive, is what counts.
  const auto archive = code_archive(dir.path(), first.files);
  ASSERT_EQ(first.candidates.size(), runnable_compressors().size());
  int64_t smallest = INT64_MAX;
  for (size_t c = 0; c < first.candidates.size(); ++c) {
    EXPECT_EQ(first.candidates[c].first, runnable_compressors()[c]);
    EXPECT_EQ(first.candidates[c].second, static_cast<int64_t>(compress_code(code_compressors()[c], archive).size()));
    smallest = std::min(smallest, first.candidates[c].second);
  }
  EXPECT_EQ(first.compressed_bytes, smallest);
  EXPECT_EQ(static_cast<int64_t>(compress_code(first.compressor, archive).size()), smallest);
  ASSERT_EQ(first.rows.size(), first.files.size());
  for (size_t k = 0; k < first.rows.size(); ++k) {
    EXPECT_EQ(first.rows[k].path, first.files[k]);
    EXPECT_EQ(first.rows[k].marginal_bytes, -1);  // not measured unless asked
    EXPECT_GT(first.rows[k].alone_bytes, 0);
  }
  const CodeSize second = counted_code(dir.path(), dir / "manifest.txt");
  EXPECT_EQ(second.compressed_bytes, first.compressed_bytes);
  // One more byte of code changes what is counted.
  test::write_file(dir / "c.txt", "cc\n");
  EXPECT_EQ(counted_code(dir.path(), dir / "manifest.txt").raw_bytes, first.raw_bytes + 1);
}

// Every field a count reports, to compare a cached count with a fresh one.
void expect_same_count(const CodeSize& a, const CodeSize& b) {
  EXPECT_EQ(a.files, b.files);
  EXPECT_EQ(a.raw_bytes, b.raw_bytes);
  EXPECT_EQ(a.minified_bytes, b.minified_bytes);
  EXPECT_EQ(a.compressed_bytes, b.compressed_bytes);
  EXPECT_EQ(a.compressor, b.compressor);
  EXPECT_EQ(a.candidates, b.candidates);
  ASSERT_EQ(a.rows.size(), b.rows.size());
  for (size_t k = 0; k < a.rows.size(); ++k) {
    EXPECT_EQ(a.rows[k].path, b.rows[k].path);
    EXPECT_EQ(a.rows[k].raw_bytes, b.rows[k].raw_bytes);
    EXPECT_EQ(a.rows[k].minified_bytes, b.rows[k].minified_bytes);
    EXPECT_EQ(a.rows[k].alone_bytes, b.rows[k].alone_bytes) << a.rows[k].path;
  }
}

TEST(CodeCache, ASecondCountReadsTheCacheAndEqualsAFreshCount) {
  TempDir dir, cache;
  test::write_file(dir / "a.cpp", "int alpha = 1;  // a comment the minifier drops\nint beta = 2;\n");
  test::write_file(dir / "b.h", "#pragma once\nint gamma_delta(int x);\n");
  test::write_file(dir / "manifest.txt", "a.cpp\nb.h\n");
  const CodeSize fresh = counted_code(dir.path(), dir / "manifest.txt", false, /*cache_dir=*/{});
  EXPECT_FALSE(fresh.from_cache);
  const CodeSize first = counted_code(dir.path(), dir / "manifest.txt", false, cache.path());
  EXPECT_FALSE(first.from_cache);
  const fs::path entry = cache / (code_cache_key(code_archive(dir.path(), fresh.files)) + ".json");
  EXPECT_TRUE(fs::is_regular_file(entry)) << entry;
  const CodeSize second = counted_code(dir.path(), dir / "manifest.txt", false, cache.path());
  EXPECT_TRUE(second.from_cache);
  expect_same_count(first, fresh);
  expect_same_count(second, fresh);
  // --marginal recompresses per file on top of the cached sizes: the same as without the cache.
  const CodeSize marginal = counted_code(dir.path(), dir / "manifest.txt", true, cache.path());
  const CodeSize marginal_fresh = counted_code(dir.path(), dir / "manifest.txt", true, {});
  expect_same_count(marginal, marginal_fresh);
  for (size_t k = 0; k < marginal.rows.size(); ++k)
    EXPECT_EQ(marginal.rows[k].marginal_bytes, marginal_fresh.rows[k].marginal_bytes);
}

TEST(CodeCache, AChangedFileIsANewKeyAndANewCount) {
  TempDir dir, cache;
  test::write_file(dir / "a.cpp", "int alpha = 1;\n");
  test::write_file(dir / "manifest.txt", "a.cpp\n");
  const CodeSize before = counted_code(dir.path(), dir / "manifest.txt", false, cache.path());
  const std::string old_key = code_cache_key(code_archive(dir.path(), before.files));
  // A comment only: the minified archive, hence the key and the count, are unchanged.
  test::write_file(dir / "a.cpp", "int alpha = 1;  // alpha\n");
  EXPECT_EQ(code_cache_key(code_archive(dir.path(), before.files)), old_key);
  const CodeSize comment = counted_code(dir.path(), dir / "manifest.txt", false, cache.path());
  EXPECT_TRUE(comment.from_cache);
  EXPECT_EQ(comment.compressed_bytes, before.compressed_bytes);
  EXPECT_EQ(comment.raw_bytes, before.raw_bytes + 10);  // raw sizes are read, never cached
  // Code: a new key, counted afresh, equal to a count without the cache and larger than before.
  test::write_file(dir / "a.cpp", "int alpha = 1;\nint beta_gamma_delta_epsilon(int zeta, double eta);\n");
  EXPECT_NE(code_cache_key(code_archive(dir.path(), before.files)), old_key);
  const CodeSize after = counted_code(dir.path(), dir / "manifest.txt", false, cache.path());
  EXPECT_FALSE(after.from_cache);
  expect_same_count(after, counted_code(dir.path(), dir / "manifest.txt", false, {}));
  EXPECT_GT(after.compressed_bytes, before.compressed_bytes);
  // A file added to the manifest changes the key too.
  test::write_file(dir / "b.h", "int b;\n");
  test::write_file(dir / "manifest.txt", "a.cpp\nb.h\n");
  EXPECT_FALSE(counted_code(dir.path(), dir / "manifest.txt", false, cache.path()).from_cache);
}

TEST(CodeCache, DamagedEntriesAreRecomputedAndAnUnwritableCacheOnlyCostsTime) {
  TempDir dir, cache;
  test::write_file(dir / "a.cpp", "int alpha = 1;\n");
  test::write_file(dir / "manifest.txt", "a.cpp\n");
  const CodeSize fresh = counted_code(dir.path(), dir / "manifest.txt", false, {});
  const fs::path entry = cache / (code_cache_key(code_archive(dir.path(), fresh.files)) + ".json");
  for (const std::string damage : {"{not json", "{}", R"({"key":"0","files":["a.cpp"],"candidates":[],"alone_bytes":[1]})"}) {
    test::write_file(entry, damage);
    const CodeSize count = counted_code(dir.path(), dir / "manifest.txt", false, cache.path());
    EXPECT_FALSE(count.from_cache) << damage;
    expect_same_count(count, fresh);
    EXPECT_TRUE(counted_code(dir.path(), dir / "manifest.txt", false, cache.path()).from_cache) << "rewritten";
  }
  test::write_file(dir / "not_a_dir", "x");
  const CodeSize no_cache = counted_code(dir.path(), dir / "manifest.txt", false, dir / "not_a_dir");
  EXPECT_FALSE(no_cache.from_cache);
  expect_same_count(no_cache, fresh);
}

TEST(CodeCache, FolderComesFromTheEnvironment) {
  const char* old = std::getenv("GOLF_CODE_CACHE");
  const std::string saved = old ? old : "";
  ::setenv("GOLF_CODE_CACHE", "/some/where", 1);
  EXPECT_EQ(code_cache_dir(), fs::path("/some/where"));
  ::setenv("GOLF_CODE_CACHE", "", 1);
  EXPECT_TRUE(code_cache_dir().empty());  // set and empty: no cache
  if (old) ::setenv("GOLF_CODE_CACHE", saved.c_str(), 1);
  else ::unsetenv("GOLF_CODE_CACHE");
}

TEST(CodeArchive, CppSourcesAreMinifiedOtherFilesAreNot) {
  TempDir dir;
  test::write_file(dir / "a.cpp", "int  x; // x\n");
  test::write_file(dir / "b.txt", "keep  // this\n");
  const auto minified = code_archive(dir.path(), {"a.cpp", "b.txt"});
  EXPECT_EQ(std::string(minified.begin(), minified.end()), std::string("a.cpp\0" "7\0" "int x;\n" "b.txt\0" "14\0" "keep  // this\n", 38));
  const auto raw = code_archive(dir.path(), {"a.cpp"}, /*minify=*/false);
  EXPECT_EQ(std::string(raw.begin(), raw.end()), std::string("a.cpp\0" "13\0" "int  x; // x\n", 22));
}

TEST(CodeSize, MarginalBytesAreWhatTheArchiveLosesWithoutTheFile) {
  TempDir dir;
  test::write_file(dir / "a.h", "int alpha_beta_gamma = 1;\n");
  test::write_file(dir / "b.h", "int alpha_beta_gamma_delta = 2; double epsilon;\n");
  test::write_file(dir / "manifest.txt", "*.h\n");
  const CodeSize code = counted_code(dir.path(), dir / "manifest.txt", /*marginal=*/true);
  ASSERT_EQ(code.rows.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    const auto without = code_archive(dir.path(), {code.files[1 - k]});
    EXPECT_EQ(code.rows[k].marginal_bytes, code.compressed_bytes - static_cast<int64_t>(compress_code(code.compressor, without).size()));
  }
  const std::string table = code_table(code);
  EXPECT_TRUE(contains(table, "marginal")) << table;
  EXPECT_TRUE(contains(table, fmt::format("counted code: {} bytes ({}", with_commas(code.compressed_bytes), code.compressor))) << table;
  EXPECT_TRUE(contains(table, "total: 2 files")) << table;
  EXPECT_TRUE(contains(test::error_of([] { compress_code("zip", {}); }), "unknown code compressor 'zip'"));
}

// ---- zpaq ---------------------------------------------------------------------------------------

#define REQUIRE_ZPAQ()                                                                              \
  do {                                                                                              \
    if (find_zpaq().path.empty()) GTEST_SKIP() << "no zpaq here: " << find_zpaq().why_not;          \
  } while (0)

// PATH set to `value` for one scope (find_zpaq looks zpaq up per PATH value).
struct ScopedPath {
  std::string saved = std::getenv("PATH") ? std::getenv("PATH") : "";
  explicit ScopedPath(const std::string& value) { ::setenv("PATH", value.c_str(), 1); }
  ~ScopedPath() { ::setenv("PATH", saved.c_str(), 1); }
};

// An executable shell script `dir/zpaq`.
void fake_zpaq(const TempDir& dir, const std::string& script) {
  test::write_file(dir / "zpaq", "#!/bin/sh\n" + script);
  fs::permissions(dir / "zpaq", fs::perms::owner_all);
}

TEST(CodeZpaq, ArchiveDecodesWithZpaqXToTheArchiveBytesAndIsDeterministic) {
  REQUIRE_ZPAQ();
  EXPECT_TRUE(find_zpaq().version.starts_with("zpaq v7.")) << find_zpaq().version;
  TempDir dir;
  make_tree(dir);
  const auto archive = code_archive(dir.path(), {"a/x.h", "a/y.h", "a/b/z.h", "c.txt"});
  const auto zpaq = compress_code("zpaq-m5", archive);
  ASSERT_GT(zpaq.size(), 4u);
  EXPECT_EQ(std::string(zpaq.begin(), zpaq.begin() + 4), "7kSt");  // a zpaq journaling archive's locator tag
  EXPECT_EQ(compress_code("zpaq-m5", archive), zpaq) << "the same input must give the same bytes";
  // Any zpaq decodes it: one file named c holding the archive.
  TempDir out;
  test::write_file(out / "c.zpaq", std::string(zpaq.begin(), zpaq.end()));
  const auto extract = test::run(fmt::format("cd '{}' && {} x c.zpaq", out.path().string(), find_zpaq().path));
  ASSERT_EQ(extract.exit_code, 0) << extract.output;
  EXPECT_EQ(out.entries(), (std::vector<std::string>{"c", "c.zpaq"}));
  EXPECT_EQ(test::read_file(out / "c"), std::string(archive.begin(), archive.end()));
  // Nothing of the moment or the machine is stored: the file's date is fixed, no permission bits
  // ("0644" would stand before the name), and the update is dated 2000-01-01 (-until), not now.
  const auto list = test::run(fmt::format("cd '{}' && {} l c.zpaq", out.path().string(), find_zpaq().path));
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(std::regex_search(list.output, std::regex("\n- 2000-01-01 00:00:00 +" + std::to_string(archive.size()) + " +c\n")))
      << list.output;
  EXPECT_TRUE(contains(std::string(zpaq.begin(), zpaq.end()), "jDC20000101235959")) << "the transaction header's date";
  // Another input, another archive.
  const auto other = code_archive(dir.path(), {"a/x.h", "a/y.h"});
  EXPECT_NE(compress_code("zpaq-m5", other), zpaq);
}

TEST(CodeZpaq, CountsRealSourcesWhenSmallestAloneSizesAreBrotli) {
  REQUIRE_ZPAQ();
  // A few real sources (~90 KB): large enough for zpaq's ~1 KB of archive headers and model to pay.
  TempDir dir;
  test::write_file(dir / "manifest.txt", "artifact/code_size.*\nartifact/minify.*\nartifact/coders.*\n");
  const fs::path root = GOLF_SOURCE_DIR;
  const CodeSize code = counted_code(root, dir / "manifest.txt", /*marginal=*/true, /*cache_dir=*/{});
  ASSERT_EQ(code.candidates.size(), code_compressors().size());
  EXPECT_EQ(code.not_tried, "");
  const auto smallest = std::min_element(code.candidates.begin(), code.candidates.end(),
                                         [](const auto& x, const auto& y) { return x.second < y.second; });
  EXPECT_EQ(code.compressor, smallest->first);
  EXPECT_EQ(code.compressed_bytes, smallest->second);
  EXPECT_EQ(code.compressor, "zpaq-m5");  // measured: zpaq beats xz and Brotli on source text
  const auto archive = code_archive(root, code.files);
  EXPECT_EQ(code.compressed_bytes, static_cast<int64_t>(compress_code("zpaq-m5", archive).size()));
  for (size_t k = 0; k < code.rows.size(); ++k) {
    const auto alone = code_archive(root, {code.files[k]});
    EXPECT_EQ(code.rows[k].alone_bytes, static_cast<int64_t>(compress_code("brotli-11", alone).size())) << code.files[k];
  }
  // Marginal bytes: with the compressor that counts.
  std::vector<std::string> rest(code.files.begin() + 1, code.files.end());
  EXPECT_EQ(code.rows[0].marginal_bytes,
            code.compressed_bytes - static_cast<int64_t>(compress_code("zpaq-m5", code_archive(root, rest)).size()));
  EXPECT_TRUE(contains(code_table(code), "marginal: bytes the archive (zpaq-m5) loses without the file"));
}

TEST(CodeZpaq, WithoutZpaqTheCountIsTheSmallestOfTheRestAndSaysSo) {
  TempDir dir, empty_bin;
  make_tree(dir);
  test::write_file(dir / "manifest.txt", "a/*.h\nc.txt\n");
  const ScopedPath path(empty_bin.path().string());
  EXPECT_TRUE(find_zpaq().path.empty());
  EXPECT_EQ(find_zpaq().why_not, "zpaq not found on PATH");
  const CodeSize code = counted_code(dir.path(), dir / "manifest.txt", false, /*cache_dir=*/{});
  EXPECT_EQ(code.not_tried, "zpaq-m5 (zpaq not found on PATH)");
  ASSERT_EQ(code.candidates.size(), 3u);
  const auto archive = code_archive(dir.path(), code.files);
  int64_t smallest = INT64_MAX;
  for (size_t c = 0; c < 3; ++c) {
    EXPECT_EQ(code.candidates[c].first, code_compressors()[c]);
    EXPECT_EQ(code.candidates[c].second, static_cast<int64_t>(compress_code(code_compressors()[c], archive).size()));
    smallest = std::min(smallest, code.candidates[c].second);
  }
  EXPECT_EQ(code.compressed_bytes, smallest);
  EXPECT_NE(code.compressor, "zpaq-m5");
  const std::string table = code_table(code);
  EXPECT_TRUE(contains(table, "\nnot tried: zpaq-m5 (zpaq not found on PATH)\n")) << table;
  EXPECT_TRUE(contains(test::error_of([&] { compress_code("zpaq-m5", archive); }), "zpaq-m5: zpaq not found on PATH"));
}

TEST(CodeZpaq, AnotherProgramNamedZpaqIsNotUsedABrokenZpaq7IsAnError) {
  TempDir bin;
  const ScopedPath path(bin.path().string());
  fake_zpaq(bin, "echo 'zpaq 1.10 archiver'\nexit 1\n");  // Ubuntu's old zpaq 1.x has another command line
  EXPECT_TRUE(find_zpaq().path.empty());
  EXPECT_TRUE(contains(find_zpaq().why_not, "is not zpaq 7 (its help begins 'zpaq 1.10 archiver')")) << find_zpaq().why_not;
  TempDir bin7;
  const ScopedPath path7(bin7.path().string());
  fake_zpaq(bin7, "echo 'zpaq v7.15 journaling archiver'\necho 'disk full' >&2\nexit 3\n");
  EXPECT_EQ(find_zpaq().path, (bin7 / "zpaq").string());
  const std::string error = test::error_of([] { compress_code("zpaq-m5", std::vector<uint8_t>(100, 'x')); });
  EXPECT_TRUE(contains(error, "failed (exit status 3): zpaq v7.15 journaling archiver\ndisk full")) << error;
}

TEST(CodeZpaq, CacheKeysDifferWithAndWithoutZpaq) {
  REQUIRE_ZPAQ();
  TempDir dir, cache, empty_bin;
  const fs::path root = GOLF_SOURCE_DIR;
  test::write_file(dir / "manifest.txt", "artifact/code_size.*\nartifact/minify.*\nartifact/coders.*\n");
  const auto archive = code_archive(root, manifest_files(root, dir / "manifest.txt"));
  const std::string with_zpaq = code_cache_key(archive);
  CodeSize without;
  {
    const ScopedPath path(empty_bin.path().string());
    EXPECT_NE(code_cache_key(archive), with_zpaq);
    without = counted_code(root, dir / "manifest.txt", false, cache.path());
    EXPECT_FALSE(without.from_cache);
    EXPECT_TRUE(counted_code(root, dir / "manifest.txt", false, cache.path()).from_cache);
  }
  EXPECT_EQ(code_cache_key(archive), with_zpaq);
  // The count made without zpaq is not reused with it: counted afresh, with zpaq, smaller.
  const CodeSize with = counted_code(root, dir / "manifest.txt", false, cache.path());
  EXPECT_FALSE(with.from_cache);
  EXPECT_EQ(with.compressor, "zpaq-m5");
  EXPECT_LT(with.compressed_bytes, without.compressed_bytes);
  EXPECT_TRUE(counted_code(root, dir / "manifest.txt", false, cache.path()).from_cache);
}

TEST(CodeSize, RealManifestOfThisRepo) {
  const fs::path root = GOLF_SOURCE_DIR;
  const CodeSize code = counted_code(root, root / "artifact/code_manifest.txt");
  for (const std::string f : {"core/error.h", "core/atomic_file.cpp", "artifact/artifact.h", "artifact/artifact.cpp"})
    EXPECT_NE(std::find(code.files.begin(), code.files.end(), f), code.files.end()) << f;
  EXPECT_TRUE(std::is_sorted(code.files.begin(), code.files.end()));
  EXPECT_GT(code.compressed_bytes, 1000);
  EXPECT_LT(code.compressed_bytes, code.raw_bytes / 2);
  EXPECT_LT(code.minified_bytes, code.raw_bytes);
  std::fputs(code_table(code).c_str(), stdout);
}

// ---- budget -----------------------------------------------------------------------------------

std::vector<GroupStats> example_groups() {
  const auto group = [](std::string name, int64_t params, int64_t compressed, double bits_per_weight) {
    GroupStats g;
    g.group = std::move(name);
    g.params = params;
    g.compressed_bytes = compressed;
    g.bits_per_weight = bits_per_weight;
    return g;
  };
  return {group("attention", 11'534'336, 5'000'000, 3.468), group("mlp", 23'068'672, 10'000'000, 3.468),
          group("fp16 passthrough", 100'000, 150'000, 12)};
}

TEST(Budget, SixteenMillionDecimalBytesFitOneMoreDoesNot) {
  EXPECT_EQ(Budget{}.limit, 16'000'000);  // decimal, not 16 MiB = 16,777,216
  const Budget edge{.artifact_bytes = 15'968'000, .code_bytes = 32'000};
  EXPECT_EQ(edge.total(), 16'000'000);
  EXPECT_TRUE(edge.fits());
  const std::string fits = budget_report(edge, example_groups());
  EXPECT_TRUE(contains(fits, "16,000,000 bytes of the 16,000,000-byte limit: fits, 0 bytes to spare")) << fits;
  EXPECT_FALSE(contains(fits, "mlp")) << fits;

  const Budget over{.artifact_bytes = 15'968'001, .code_bytes = 32'000};
  EXPECT_FALSE(over.fits());
  const std::string report = budget_report(over, example_groups());
  EXPECT_TRUE(contains(report, "16,000,001 bytes of the 16,000,000-byte limit: OVER by 1 byte; save at least 1 byte"))
      << report;
  // Largest group first, then the others.
  const size_t mlp = report.find("mlp"), attention = report.find("attention"), fp16 = report.find("fp16 passthrough");
  ASSERT_NE(mlp, std::string::npos);
  EXPECT_LT(mlp, attention);
  EXPECT_LT(attention, fp16);
  EXPECT_TRUE(contains(report, "10,000,000 bytes")) << report;
}

TEST(Budget, ReportSaysWhatASavingMeansPerGroup) {
  const Budget over{.artifact_bytes = 16'100'000, .code_bytes = 50'000};
  const std::string report = budget_report(over, example_groups());
  EXPECT_TRUE(contains(report, "OVER by 150,000 bytes; save at least 150,000 bytes")) << report;
  // mlp: (10,000,000 - 150,000) × 8 / 23,068,672 = 3.416 bits/weight.
  EXPECT_TRUE(contains(report, "3.468 → 3.416 bits/weight")) << report;
  // fp16 passthrough holds exactly 150,000 bytes: it cannot give them all up.
  EXPECT_TRUE(contains(report, "cannot save that much alone")) << report;
}

}  // namespace
}  // namespace golf::artifact
