// pack/code_size.cpp — counted code (manifest → deterministic archive → xz) and the budget report.
#include "pack/code_size.h"

#include <fnmatch.h>
#include <lzma.h>

#include <algorithm>
#include <fstream>

#include "core/error.h"

namespace golf::pack {
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
    const std::string pattern = trim(raw);
    if (pattern.empty() || pattern.starts_with('#')) continue;
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
    files.insert(files.end(), matched.begin(), matched.end());
  }
  if (in.bad()) fail("{}: read error", manifest.string());
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

std::vector<uint8_t> code_archive(const fs::path& repo_root, const std::vector<std::string>& files) {
  std::vector<uint8_t> archive;
  for (const std::string& file : files) {
    const std::vector<uint8_t> contents = read_file_bytes(repo_root / file);
    const std::string head = file + '\0' + std::to_string(contents.size()) + '\0';
    archive.insert(archive.end(), head.begin(), head.end());
    archive.insert(archive.end(), contents.begin(), contents.end());
  }
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

CodeSize counted_code(const fs::path& repo_root, const fs::path& manifest) {
  CodeSize code;
  code.files = manifest_files(repo_root, manifest);
  const std::vector<uint8_t> archive = code_archive(repo_root, code.files);
  for (const std::string& file : code.files) code.raw_bytes += static_cast<int64_t>(fs::file_size(repo_root / file));
  code.compressed_bytes = static_cast<int64_t>(xz_compress(archive).size());
  return code;
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

}  // namespace golf::pack
