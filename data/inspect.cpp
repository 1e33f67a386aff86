// golf-data inspect: validate shards (headers, sizes, token ids) and count what they hold.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/byte_table.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/shard.h"
#include "core/tokenizer.h"
#include "data/golf_data.h"

namespace golf::data {

static std::string split_of(const fs::path& path) {
  const std::string name = path.filename().string();
  if (name.starts_with("fineweb_train_")) return "train";
  if (name.starts_with("fineweb_val_")) return "val";
  return "?";
}

InspectReport inspect(const fs::path& target, const std::optional<fs::path>& tokenizer_path) {
  InspectReport report;
  std::optional<Tokenizer> tokenizer;
  std::optional<ByteTable> table;
  if (tokenizer_path) {
    tokenizer = Tokenizer::load(*tokenizer_path);
    table = ByteTable::build(*tokenizer);
    report.tokenizer = tokenizer_path;
    report.vocab_size = tokenizer->vocab_size();
  }
  std::vector<fs::path> files;
  for (const char* split : {"train", "val"})
    for (auto& f : shard::list(target, split)) files.push_back(std::move(f));
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  if (files.empty()) fail("{}: no fineweb_{{train,val}}_NNNNNN.bin shards found", target.string());

  int64_t total_bytes = 0;
  for (const auto& f : files) total_bytes += static_cast<int64_t>(fs::file_size(f));
  Progress progress("inspect", total_bytes);
  int64_t done_bytes = 0;
  std::string stream_split;
  int prev = -1;  // predictions continue across the shards of one split
  for (const auto& path : files) {
    const auto tokens = shard::read_tokens(path);
    ShardStats stats;
    stats.path = path;
    stats.split = split_of(path);
    if (stats.split != stream_split) prev = -1, stream_split = stats.split;
    stats.tokens = static_cast<int64_t>(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      const int t = tokens[i];
      if (report.vocab_size && t >= report.vocab_size)
        fail("{}: token id {} at position {} is not below the vocab size {} of tokenizer {} (wrong tokenizer?)",
             path.string(), t, i, report.vocab_size, tokenizer_path->string());
      stats.max_token = std::max(stats.max_token, t);
      stats.documents += t == shard::kBos;
    }
    if (prev == -1 && !tokens.empty() && tokens[0] != shard::kBos)
      fail("{}: the {} stream does not start with BOS ({}), found token {}", path.string(), stats.split, shard::kBos,
           tokens[0]);
    if (table) stats.bytes = table->count(tokens, prev);
    if (!tokens.empty()) prev = tokens.back();
    report.files.push_back(std::move(stats));
    done_bytes += static_cast<int64_t>(fs::file_size(path));
    progress.update(done_bytes);
  }
  return report;
}

namespace {
struct Totals {
  int64_t files = 0, tokens = 0, documents = 0, bytes = 0;
  bool has_bytes = false;
};
std::map<std::string, Totals> totals_by_split(const InspectReport& r) {
  std::map<std::string, Totals> totals;
  for (const auto& f : r.files) {
    auto& t = totals[f.split];
    t.files += 1, t.tokens += f.tokens, t.documents += f.documents;
    if (f.bytes) t.bytes += *f.bytes, t.has_bytes = true;
  }
  return totals;
}
}  // namespace

nlohmann::json to_json(const InspectReport& r) {
  nlohmann::json j;
  j["tokenizer"] = r.tokenizer ? nlohmann::json(r.tokenizer->string()) : nlohmann::json(nullptr);
  j["vocab_size"] = r.vocab_size ? nlohmann::json(r.vocab_size) : nlohmann::json(nullptr);
  j["files"] = nlohmann::json::array();
  for (const auto& f : r.files) {
    nlohmann::json e = {{"path", f.path.string()}, {"split", f.split}, {"tokens", f.tokens},
                        {"documents", f.documents}, {"max_token", f.max_token}};
    e["bytes"] = f.bytes ? nlohmann::json(*f.bytes) : nlohmann::json(nullptr);
    j["files"].push_back(e);
  }
  for (const auto& [split, t] : totals_by_split(r)) {
    nlohmann::json s = {{"files", t.files}, {"tokens", t.tokens}, {"documents", t.documents}};
    s["bytes"] = t.has_bytes ? nlohmann::json(t.bytes) : nlohmann::json(nullptr);
    s["bytes_per_token"] = t.has_bytes && t.tokens ? nlohmann::json(double(t.bytes) / double(t.tokens)) : nlohmann::json(nullptr);
    j["splits"][split] = s;
  }
  return j;
}

std::string to_table(const InspectReport& r) {
  std::string out = fmt::format("{:<28} {:>5} {:>14} {:>10} {:>15} {:>11} {:>9}\n", "file", "split", "tokens",
                                "documents", "bytes (bpb)", "bytes/token", "max id");
  auto bytes_cols = [](bool has, int64_t bytes, int64_t tokens) {
    if (!has) return fmt::format("{:>15} {:>11}", "-", "-");
    return fmt::format("{:>15} {:>11.4f}", bytes, tokens ? double(bytes) / double(tokens) : 0.0);
  };
  for (const auto& f : r.files)
    out += fmt::format("{:<28} {:>5} {:>14} {:>10} {} {:>9}\n", f.path.filename().string(), f.split, f.tokens,
                       f.documents, bytes_cols(f.bytes.has_value(), f.bytes.value_or(0), f.tokens), f.max_token);
  for (const auto& [split, t] : totals_by_split(r))
    out += fmt::format("{:<28} {:>5} {:>14} {:>10} {}\n", fmt::format("total ({} files)", t.files), split, t.tokens,
                       t.documents, bytes_cols(t.has_bytes, t.bytes, t.tokens));
  if (!r.tokenizer) out += "(pass --tokenizer to validate ids against a vocabulary and count bpb bytes)\n";
  return out;
}

}  // namespace golf::data
