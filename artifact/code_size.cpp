// artifact/code_size.cpp — counted code (manifest → minified deterministic archive → the smallest of
// xz / raw LZMA2 / Brotli / zpaq) with its per-file table, and the budget report.
#include "artifact/code_size.h"

#include <brotli/encode.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <lzma.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"
#include "artifact/coders.h"
#include "artifact/minify.h"

namespace golf::artifact {
namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r") - begin + 1);
}

bool has_wildcard(const std::string& component) { return component.find_first_of("*?[\\") != std::string::npos; }

// Relative paths of the regular files under `root` that `pattern` matches. Expanded one component
// at a time, so only the directories the pattern can reach are listed (never the build trees).
std::vector<std::string> expand(const fs::path& root, const std::vector<std::string>& components) {
  std::vector<std::string> prefixes = {""};  // matched so far, relative, "" = the root itself
  for (size_t i = 0; i < components.size(); ++i) {
    const bool last = i + 1 == components.size();
    const auto wanted = [&](const fs::path& p) {
      std::error_code ec;
      return last ? fs::is_regular_file(p, ec) : fs::is_directory(p, ec);
    };
    std::vector<std::string> next;
    for (const std::string& prefix : prefixes) {
      const auto join = [&](const std::string& name) { return prefix.empty() ? name : prefix + "/" + name; };
      if (!has_wildcard(components[i])) {
        if (wanted(root / join(components[i]))) next.push_back(join(components[i]));
        continue;
      }
      std::error_code ec;
      for (fs::directory_iterator it(root / prefix, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (::fnmatch(components[i].c_str(), name.c_str(), FNM_PATHNAME) == 0 && wanted(it->path()))
          next.push_back(join(name));
      }
    }
    prefixes = std::move(next);
  }
  return prefixes;
}

}  // namespace

std::vector<std::string> manifest_files(const fs::path& repo_root, const fs::path& manifest) {
  std::ifstream in(manifest);
  if (!in) fail("{}: cannot open the code manifest", manifest.string());
  std::vector<std::string> files;
  std::string raw;
  for (int line_no = 1; std::getline(in, raw); ++line_no) {
    std::string pattern = trim(raw);
    if (pattern.empty() || pattern.starts_with('#')) continue;
    const bool exclude = pattern.starts_with('!');
    if (exclude) pattern = trim(pattern.substr(1));
    const std::string where = fmt::format("{}:{}: pattern '{}'", manifest.string(), line_no, pattern);
    if (pattern.starts_with('/')) fail("{} is absolute; patterns are relative to the repo root {}", where, repo_root.string());
    std::vector<std::string> components;
    for (size_t begin = 0; begin <= pattern.size();) {
      const size_t end = std::min(pattern.find('/', begin), pattern.size());
      const std::string c = pattern.substr(begin, end - begin);
      if (c == "..") fail("{} leaves the repo root (contains '..')", where);
      if (!c.empty() && c != ".") components.push_back(c);
      begin = end + 1;
    }
    if (components.empty()) fail("{} names no file", where);
    const auto matched = expand(repo_root, components);
    if (matched.empty()) fail("{} matches no file under {}", where, repo_root.string());
    if (!exclude) {
      files.insert(files.end(), matched.begin(), matched.end());
      continue;
    }
    const auto before = files.size();
    std::erase_if(files, [&](const std::string& f) { return std::find(matched.begin(), matched.end(), f) != matched.end(); });
    if (files.size() == before) fail("{} excludes no file listed above it", where);
  }
  if (in.bad()) fail("{}: read error", manifest.string());
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

namespace {

std::string file_contents(const fs::path& repo_root, const std::string& file, bool minify) {
  const std::vector<uint8_t> bytes = read_file_bytes(repo_root / file);
  std::string text(bytes.begin(), bytes.end());
  return minify && is_cpp_source(file) ? minify_cpp(text, file) : text;
}

void append_entry(std::vector<uint8_t>& archive, const std::string& file, const std::string& contents) {
  const std::string head = file + '\0' + std::to_string(contents.size()) + '\0';
  archive.insert(archive.end(), head.begin(), head.end());
  archive.insert(archive.end(), contents.begin(), contents.end());
}

std::vector<uint8_t> lzma2_raw_compress(std::span<const uint8_t> bytes) {
  lzma_options_lzma options;
  if (lzma_lzma_preset(&options, 9 | LZMA_PRESET_EXTREME)) fail("liblzma has no preset 9e");
  const lzma_filter filters[] = {{LZMA_FILTER_LZMA2, &options}, {LZMA_VLI_UNKNOWN, nullptr}};
  std::vector<uint8_t> out(lzma_stream_buffer_bound(bytes.size()));
  size_t size = 0;
  const lzma_ret r = lzma_raw_buffer_encode(filters, nullptr, bytes.data(), bytes.size(), out.data(), &size, out.size());
  if (r != LZMA_OK) fail("raw LZMA2 compression of {} bytes failed (liblzma error {})", bytes.size(), static_cast<int>(r));
  out.resize(size);
  return out;
}

// Runs f(0..n-1) on all cores; the first error is rethrown.
template <typename F>
void parallel_for(size_t n, F f) {
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  const auto work = [&] {
    for (size_t k; (k = next++) < n;) try {
        f(k);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
      }
  };
  std::vector<std::thread> threads;
  const size_t count = std::min<size_t>(n, std::max(1u, std::thread::hardware_concurrency()));
  for (size_t t = 1; t < count; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace

std::vector<uint8_t> code_archive(const fs::path& repo_root, const std::vector<std::string>& files, bool minify) {
  std::vector<uint8_t> archive;
  for (const std::string& file : files) append_entry(archive, file, file_contents(repo_root, file, minify));
  return archive;
}

std::vector<uint8_t> xz_compress(std::span<const uint8_t> bytes) {
  std::vector<uint8_t> out(lzma_stream_buffer_bound(bytes.size()));
  size_t size = 0;
  const lzma_ret r = lzma_easy_buffer_encode(9 | LZMA_PRESET_EXTREME, LZMA_CHECK_CRC64, nullptr, bytes.data(), bytes.size(),
                                             out.data(), &size, out.size());
  if (r != LZMA_OK) fail("xz compression of {} bytes failed (liblzma error {})", bytes.size(), static_cast<int>(r));
  out.resize(size);
  return out;
}

namespace {

// A private temporary folder, removed with its contents.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    std::string name = (fs::temp_directory_path() / "golf-zpaq.XXXXXX").string();
    if (!::mkdtemp(name.data())) fail("cannot create a temporary folder {}", name);
    path = name;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Runs argv (argv[0] a path; no shell) in `dir`, stdin from /dev/null, stdout and stderr to dir/log.
// The exit status, or -1 when it could not start or was killed.
int run_in(const fs::path& dir, const std::vector<std::string>& argv) {
  const std::string log = (dir / "log").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int started = ::posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (started != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

ZpaqProgram look_for_zpaq(const std::string& path_variable) {
  ZpaqProgram zpaq;
  for (size_t begin = 0; begin <= path_variable.size() && zpaq.path.empty();) {
    const size_t end = std::min(path_variable.find(':', begin), path_variable.size());
    const fs::path candidate = fs::path(end > begin ? path_variable.substr(begin, end - begin) : ".") / "zpaq";
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) zpaq.path = candidate.string();
    begin = end + 1;
  }
  const auto unusable = [](std::string why) {
    ZpaqProgram none;
    none.why_not = std::move(why);
    return none;
  };
  if (zpaq.path.empty()) return unusable("zpaq not found on PATH");
  const ScratchDir dir;
  run_in(dir.path, {zpaq.path});  // the help, which exits 1
  const std::string help = read_text(dir.path / "log");
  zpaq.version = help.substr(0, help.find('\n'));
  if (!zpaq.version.starts_with("zpaq v7."))
    return unusable(fmt::format("{} is not zpaq 7 (its help begins '{}')", zpaq.path, zpaq.version.substr(0, 60)));
  return zpaq;
}

// The zpaq-m5 archive of `bytes` (code_compressors()).
std::vector<uint8_t> zpaq_compress(std::span<const uint8_t> bytes) {
  const ZpaqProgram zpaq = find_zpaq();
  if (zpaq.path.empty()) fail("zpaq-m5: {}", zpaq.why_not);
  const ScratchDir dir;
  write_file_atomic(dir.path / "c", std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  const timespec date[2] = {{946684800, 0}, {946684800, 0}};  // 2000-01-01 00:00:00 UTC: zpaq stores the file's date
  if (::utimensat(AT_FDCWD, (dir.path / "c").c_str(), date, 0) != 0) fail("cannot set the date of {}", (dir.path / "c").string());
  const int status =
      run_in(dir.path, {zpaq.path, "a", "c.zpaq", "c", "-m5", "-noattributes", "-until", "2000-01-01", "-t1"});
  std::error_code ec;
  if (status != 0 || !fs::is_regular_file(dir.path / "c.zpaq", ec))
    fail("{} a c.zpaq c -m5 ... in {} failed (exit status {}): {}", zpaq.path, dir.path.string(), status,
         read_text(dir.path / "log").substr(0, 500));
  return read_file_bytes(dir.path / "c.zpaq");
}

}  // namespace

ZpaqProgram find_zpaq() {
  static std::mutex mutex;
  static std::map<std::string, ZpaqProgram> found;  // by PATH
  const char* path = std::getenv("PATH");
  const std::string key = path ? path : "";
  std::lock_guard lock(mutex);
  const auto it = found.find(key);
  return it != found.end() ? it->second : found[key] = look_for_zpaq(key);
}

const std::vector<std::string>& code_compressors() {
  static const std::vector<std::string> names = {"xz-9e", "lzma2-9e", "brotli-11", "zpaq-m5"};
  return names;
}

std::vector<uint8_t> compress_code(const std::string& compressor, std::span<const uint8_t> bytes) {
  if (compressor == "xz-9e") return xz_compress(bytes);
  if (compressor == "lzma2-9e") return lzma2_raw_compress(bytes);
  if (compressor == "brotli-11") return brotli_compress(bytes, 11, BrotliSetting{.window = 24, .mode = 1});
  if (compressor == "zpaq-m5") return zpaq_compress(bytes);
  fail("unknown code compressor '{}' (known: xz-9e, lzma2-9e, brotli-11, zpaq-m5)", compressor);
}

fs::path code_cache_dir() {
  if (const char* dir = std::getenv("GOLF_CODE_CACHE")) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fs::path(xdg) / "golf" / "counted-code";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "golf" / "counted-code";
  return {};
}

std::string code_cache_key(std::span<const uint8_t> archive) {
  // The compressors' versions are in the key: a different liblzma, Brotli or zpaq may compress
  // differently, and a count made without zpaq must not be reused with it, nor the reverse.
  const ZpaqProgram zpaq = find_zpaq();
  const std::string tag = fmt::format("golf counted code v2\n{}\n{}\n{}\n", lzma_version_string(), BrotliEncoderVersion(),
                                      zpaq.path.empty() ? "none" : zpaq.version);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, tag.data(), tag.size()) == 1 &&
                  EVP_DigestUpdate(ctx, archive.data(), archive.size()) == 1 && EVP_DigestFinal_ex(ctx, digest, &len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) fail("SHA-256 of the counted-code archive failed (OpenSSL)");
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

namespace {

// The cached sizes of `key` into `code` (its files and rows already listed); false when there is
// no usable entry (missing, unreadable, another key or file list: all recomputed, never trusted).
bool read_code_cache(const fs::path& file, const std::string& key, const std::vector<std::string>& names, CodeSize& code) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return false;
  try {
    const auto bytes = read_file_bytes(file);
    const nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end());
    if (j.at("key").get<std::string>() != key || j.at("files").get<std::vector<std::string>>() != code.files) return false;
    const auto alone = j.at("alone_bytes").get<std::vector<int64_t>>();
    const auto candidates = j.at("candidates").get<std::vector<std::pair<std::string, int64_t>>>();
    if (alone.size() != code.rows.size() || candidates.size() != names.size()) return false;
    for (size_t c = 0; c < candidates.size(); ++c)
      if (candidates[c].first != names[c] || candidates[c].second <= 0) return false;
    for (size_t k = 0; k < alone.size(); ++k) code.rows[k].alone_bytes = alone[k];
    code.candidates = candidates;
    return true;
  } catch (const std::exception&) {  // a damaged entry is a miss
    return false;
  }
}

void write_code_cache(const fs::path& file, const std::string& key, const CodeSize& code) {
  nlohmann::json j = {{"key", key}, {"files", code.files}, {"candidates", code.candidates}};
  std::vector<int64_t> alone;
  for (const CodeFile& r : code.rows) alone.push_back(r.alone_bytes);
  j["alone_bytes"] = alone;
  try {
    std::error_code ec;
    fs::create_directories(file.parent_path(), ec);
    write_file_atomic(file, j.dump() + "\n");
  } catch (const std::exception&) {  // a read-only or missing cache only costs the time
  }
}

}  // namespace

CodeSize counted_code(const fs::path& repo_root, const fs::path& manifest, bool marginal, const fs::path& cache_dir) {
  CodeSize code;
  code.files = manifest_files(repo_root, manifest);
  std::vector<std::string> minified(code.files.size());
  parallel_for(code.files.size(), [&](size_t k) { minified[k] = file_contents(repo_root, code.files[k], true); });
  std::vector<uint8_t> archive;
  for (size_t k = 0; k < code.files.size(); ++k) {
    append_entry(archive, code.files[k], minified[k]);
    CodeFile row{.path = code.files[k], .raw_bytes = static_cast<int64_t>(fs::file_size(repo_root / code.files[k])),
                 .minified_bytes = static_cast<int64_t>(minified[k].size())};
    code.raw_bytes += row.raw_bytes;
    code.minified_bytes += row.minified_bytes;
    code.rows.push_back(row);
  }
  // The compressors that can run here: zpaq-m5 only with the zpaq program (else the count is the
  // smallest of the rest, the larger side, and says so).
  const ZpaqProgram zpaq = find_zpaq();
  std::vector<std::string> names;
  for (const std::string& name : code_compressors())
    if (name != "zpaq-m5" || !zpaq.path.empty()) names.push_back(name);
  if (zpaq.path.empty()) code.not_tried = fmt::format("zpaq-m5 ({})", zpaq.why_not);
  const std::string key = cache_dir.empty() ? "" : code_cache_key(archive);
  const fs::path cache_file = cache_dir.empty() ? fs::path() : cache_dir / (key + ".json");
  code.from_cache = !cache_file.empty() && read_code_cache(cache_file, key, names, code);
  if (!code.from_cache) {
    code.candidates.resize(names.size());
    parallel_for(names.size(), [&](size_t c) {
      code.candidates[c] = {names[c], static_cast<int64_t>(compress_code(names[c], archive).size())};
    });
  }
  const auto best = std::min_element(code.candidates.begin(), code.candidates.end(),
                                     [](const auto& x, const auto& y) { return x.second < y.second; });
  code.compressor = best->first;
  code.compressed_bytes = best->second;
  if (code.from_cache && !marginal) return code;

  parallel_for(code.rows.size(), [&](size_t k) {
    if (!code.from_cache) {
      std::vector<uint8_t> alone;
      append_entry(alone, code.files[k], minified[k]);
      // Brotli, whatever counts: fast and in process, where zpaq's ~1 KB of archive header and model
      // per file would hide the small files' sizes (and take ~0.1 s of process start-up each).
      code.rows[k].alone_bytes = static_cast<int64_t>(compress_code("brotli-11", alone).size());
    }
    if (!marginal) return;
    std::vector<uint8_t> without;
    for (size_t j = 0; j < code.files.size(); ++j)
      if (j != k) append_entry(without, code.files[j], minified[j]);
    code.rows[k].marginal_bytes = code.compressed_bytes - static_cast<int64_t>(compress_code(code.compressor, without).size());
  });
  if (!cache_file.empty() && !code.from_cache) write_code_cache(cache_file, key, code);
  return code;
}

std::string code_table(const CodeSize& code) {
  std::vector<CodeFile> rows = code.rows;
  const bool marginal = !rows.empty() && rows[0].marginal_bytes >= 0;
  std::stable_sort(rows.begin(), rows.end(), [&](const CodeFile& x, const CodeFile& y) {
    return marginal ? x.marginal_bytes > y.marginal_bytes : x.alone_bytes > y.alone_bytes;
  });
  std::string out = fmt::format("{:<44} {:>9} {:>9} {:>8} {:>9}\n", "counted file", "raw", "minified", "alone",
                                marginal ? "marginal" : "");
  for (const CodeFile& r : rows)
    out += fmt::format("{:<44} {:>9} {:>9} {:>8} {:>9}\n", r.path, with_commas(r.raw_bytes), with_commas(r.minified_bytes),
                       with_commas(r.alone_bytes), marginal ? with_commas(r.marginal_bytes) : "");
  out += fmt::format("{:<44} {:>9} {:>9}\n", fmt::format("total: {} files", rows.size()), with_commas(code.raw_bytes),
                     with_commas(code.minified_bytes));
  std::string tried;
  for (const auto& [name, bytes] : code.candidates) tried += fmt::format("{}{} {}", tried.empty() ? "" : ", ", name, with_commas(bytes));
  out += fmt::format("counted code: {} bytes ({}, the smallest of: {})\n", with_commas(code.compressed_bytes), code.compressor,
                     tried);
  if (!code.not_tried.empty()) out += fmt::format("not tried: {}\n", code.not_tried);
  if (marginal)
    out += fmt::format("alone: the minified file compressed by itself (brotli-11); marginal: bytes the archive ({}) loses without the file\n", code.compressor);
  else
    out += "alone: the minified file compressed by itself (brotli-11; golf-pack code --marginal: bytes the archive loses without each file)\n";
  return out;
}

std::string budget_report(const Budget& b, const std::vector<GroupStats>& groups) {
  std::string out;
  const auto bytes = [](int64_t n) { return fmt::format("{:>12} bytes", with_commas(n)); };
  out += fmt::format("artifact {}\n", bytes(b.artifact_bytes));
  out += fmt::format("code     {}\n", bytes(b.code_bytes));
  const int64_t slack = b.limit - b.total();
  if (b.fits()) {
    out += fmt::format("total    {} of the {}-byte limit: fits, {} bytes to spare\n", bytes(b.total()),
                       with_commas(b.limit), with_commas(slack));
    return out;
  }
  const int64_t save = -slack;
  const std::string amount = fmt::format("{} byte{}", with_commas(save), save == 1 ? "" : "s");
  out += fmt::format("total    {} of the {}-byte limit: OVER by {}; save at least {}\n", bytes(b.total()),
                     with_commas(b.limit), amount, amount);
  if (groups.empty()) return out;
  std::vector<GroupStats> sorted = groups;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const GroupStats& x, const GroupStats& y) { return x.compressed_bytes > y.compressed_bytes; });
  int64_t group_total = 0;
  for (const GroupStats& g : sorted) group_total += g.compressed_bytes;
  out += "compressed bytes by group (largest first; each group compressed alone):\n";
  for (const GroupStats& g : sorted) {
    std::string fix = "cannot save that much alone";
    if (g.params > 0 && g.compressed_bytes > save)
      fix = fmt::format("saving it here alone: {:.3f} → {:.3f} bits/weight", g.bits_per_weight,
                        static_cast<double>(g.compressed_bytes - save) * 8 / static_cast<double>(g.params));
    out += fmt::format("  {:<16} {} {:5.1f}%  {}\n", g.group, bytes(g.compressed_bytes),
                       group_total ? 100.0 * static_cast<double>(g.compressed_bytes) / static_cast<double>(group_total) : 0.0,
                       fix);
  }
  return out;
}

}  // namespace golf::artifact
