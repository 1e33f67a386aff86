// golf-data inspect: validate shards (headers, sizes, token ids) and count what they hold.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/byte_sidecar.h"
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
  if (name.starts_with("fineweb_val_bytes_")) return "val_bytes";  // a sidecar passed by itself
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
    report.tokenizer_kind = tokenizer->kind();
    report.tokenizer_sha256 = tokenizer->sha256();
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
  const bool caseops = tokenizer && tokenizer->is_caseops();
  std::vector<uint16_t> val_tokens, val_sidecar;  // the CaseOps val stream, for the sidecar audit
  int val_with_sidecar = 0, val_without_sidecar = 0;
  for (const auto& path : files) {
    const auto tokens = shard::read_tokens(path);
    ShardStats stats;
    stats.path = path;
    stats.split = split_of(path);
    if (stats.split != stream_split) prev = -1, stream_split = stats.split;
    stats.tokens = static_cast<int64_t>(tokens.size());
    if (stats.split == "val_bytes") {  // a sidecar alone: its header was validated, count what it holds
      stats.sidecar_bytes = 0;
      for (const uint16_t b : tokens) *stats.sidecar_bytes += b;
      report.files.push_back(std::move(stats));
      continue;
    }
    if (stats.split == "val" && fs::exists(shard::sidecar_path(path))) {
      const auto sidecar = shard::read_sidecar(path, stats.tokens);
      ++val_with_sidecar;
      if (tokenizer && !caseops)
        fail("{} has a byte sidecar (CaseOps data) but tokenizer {} is not a CaseOps tokenizer", path.string(),
             tokenizer->describe());
      stats.sidecar_bytes = 0;
      for (const uint16_t b : sidecar) *stats.sidecar_bytes += b;
      if (caseops) {
        val_tokens.insert(val_tokens.end(), tokens.begin(), tokens.end());
        val_sidecar.insert(val_sidecar.end(), sidecar.begin(), sidecar.end());
      }
    } else if (stats.split == "val") {
      ++val_without_sidecar;
      if (caseops)
        fail("{} has no byte sidecar {}, but tokenizer {} is a CaseOps tokenizer: its bpb needs one", path.string(),
             shard::sidecar_path(path).filename().string(), tokenizer->describe());
    }
    if (val_with_sidecar && val_without_sidecar)
      fail("{}: some validation shards have byte sidecars and others not (e.g. {})", target.string(), path.string());
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
  if (caseops && !val_tokens.empty()) {
    const SidecarAudit a = audit_sidecar(val_tokens, val_sidecar, static_cast<int64_t>(val_tokens.size()) - 1, *tokenizer);
    if (!a.ok()) fail("{}: byte sidecar disagrees with its shards: {}", target.string(), a.violation);
    report.sidecar_total = a.sidecar_bytes;
    report.sidecar_decoded_bytes = a.decoded_bytes;
    report.sidecar_documents = a.documents;
    report.sidecar_documents_differing = a.documents_differing;
  }
  return report;
}

namespace {
struct Totals {
  int64_t files = 0, tokens = 0, documents = 0, bytes = 0, sidecar_bytes = 0;
  bool has_bytes = false, has_sidecar = false;
};
std::map<std::string, Totals> totals_by_split(const InspectReport& r) {
  std::map<std::string, Totals> totals;
  for (const auto& f : r.files) {
    auto& t = totals[f.split];
    t.files += 1, t.tokens += f.tokens, t.documents += f.documents;
    if (f.bytes) t.bytes += *f.bytes, t.has_bytes = true;
    if (f.sidecar_bytes) t.sidecar_bytes += *f.sidecar_bytes, t.has_sidecar = true;
  }
  return totals;
}
}  // namespace

nlohmann::json to_json(const InspectReport& r) {
  nlohmann::json j;
  j["tokenizer"] = r.tokenizer ? nlohmann::json(r.tokenizer->string()) : nlohmann::json(nullptr);
  j["vocab_size"] = r.vocab_size ? nlohmann::json(r.vocab_size) : nlohmann::json(nullptr);
  j["tokenizer_kind"] = r.tokenizer ? nlohmann::json(r.tokenizer_kind) : nlohmann::json(nullptr);
  j["tokenizer_sha256"] = r.tokenizer ? nlohmann::json(r.tokenizer_sha256) : nlohmann::json(nullptr);
  j["files"] = nlohmann::json::array();
  for (const auto& f : r.files) {
    nlohmann::json e = {{"path", f.path.string()}, {"split", f.split}, {"tokens", f.tokens},
                        {"documents", f.documents}, {"max_token", f.max_token}};
    e["bytes"] = f.bytes ? nlohmann::json(*f.bytes) : nlohmann::json(nullptr);
    e["sidecar_bytes"] = f.sidecar_bytes ? nlohmann::json(*f.sidecar_bytes) : nlohmann::json(nullptr);
    j["files"].push_back(e);
  }
  for (const auto& [split, t] : totals_by_split(r)) {
    nlohmann::json s = {{"files", t.files}, {"tokens", t.tokens}, {"documents", t.documents}};
    s["bytes"] = t.has_bytes ? nlohmann::json(t.bytes) : nlohmann::json(nullptr);
    s["bytes_per_token"] = t.has_bytes && t.tokens ? nlohmann::json(double(t.bytes) / double(t.tokens)) : nlohmann::json(nullptr);
    s["sidecar_bytes"] = t.has_sidecar ? nlohmann::json(t.sidecar_bytes) : nlohmann::json(nullptr);
    j["splits"][split] = s;
  }
  if (r.sidecar_total)
    j["sidecar_audit"] = {{"sidecar_bytes", *r.sidecar_total},
                          {"decoded_original_bytes", *r.sidecar_decoded_bytes},
                          {"documents", *r.sidecar_documents},
                          {"documents_differing", *r.sidecar_documents_differing}};
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
  for (const auto& [split, t] : totals_by_split(r))
    if (t.has_sidecar) out += fmt::format("byte sidecar ({}): {} bytes (the bpb denominator for CaseOps data)\n", split, t.sidecar_bytes);
  if (r.sidecar_total)
    out += fmt::format("sidecar audit: BOS and case operators count 0 at every position; {} documents: sidecar {} bytes, "
                       "decoded original text {} bytes ({} documents differ: SentencePiece's NFKC and whitespace "
                       "folding change the decoded text, the sidecar counts the original)\n",
                       *r.sidecar_documents, *r.sidecar_total, *r.sidecar_decoded_bytes, *r.sidecar_documents_differing);
  if (r.tokenizer) out += fmt::format("tokenizer {} ({}, sha256 {})\n", r.tokenizer->string(), r.tokenizer_kind, r.tokenizer_sha256);
  if (!r.tokenizer) out += "(pass --tokenizer to validate ids against a vocabulary and count bpb bytes)\n";
  return out;
}

}  // namespace golf::data
