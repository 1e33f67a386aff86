#include "scoring/val_data.h"

#include <regex>

#include "core/error.h"
#include "core/shard.h"

namespace golf::scoring {

namespace fs = std::filesystem;

bool is_val_shard_name(const std::string& filename) {
  static const std::regex pattern("fineweb_val_[0-9]{6}\\.bin");
  return std::regex_match(filename, pattern);
}

ValData load_val(const Config& cfg) { return load_val(cfg, cfg.eval_seq_len, "EVAL_SEQ_LEN"); }

ValData load_val(const Config& cfg, int64_t seq_len, const char* seq_len_name) {
  ValData v;
  const auto files = shard::list(cfg.data_path, "val");  // a directory: only fineweb_val_*.bin
  if (files.empty()) fail("DATA_PATH {}: no fineweb_val_NNNNNN.bin shards", cfg.data_path);
  for (const auto& f : files) {
    // A single file passed as DATA_PATH comes back as is: refuse anything but a val shard.
    if (!is_val_shard_name(f.filename().string()))
      fail("DATA_PATH {}: golf-eval reads only validation shards (fineweb_val_NNNNNN.bin), not {}", cfg.data_path,
           f.filename().string());
    const auto t = shard::read_tokens(f);
    v.files.push_back(f);
    v.tokens.insert(v.tokens.end(), t.begin(), t.end());
    const bool sidecar = fs::exists(shard::sidecar_path(f));
    if (sidecar != v.has_sidecar() && v.files.size() > 1)
      fail("DATA_PATH {}: {} has {} byte sidecar but the shards before it {}: all validation shards need one, or none",
           cfg.data_path, f.filename().string(), sidecar ? "a" : "no", sidecar ? "have none" : "have one");
    if (sidecar) {
      const auto b = shard::read_sidecar(f, static_cast<int64_t>(t.size()));
      v.sidecar_files.push_back(shard::sidecar_path(f));
      v.sidecar.insert(v.sidecar.end(), b.begin(), b.end());
    }
    if (cfg.val_max_tokens > 0 && static_cast<int64_t>(v.tokens.size()) >= cfg.val_max_tokens + 1) break;
  }
  if (cfg.val_max_tokens > 0 && static_cast<int64_t>(v.tokens.size()) > cfg.val_max_tokens + 1)
    v.tokens.resize(static_cast<size_t>(cfg.val_max_tokens + 1));
  if (v.has_sidecar()) v.sidecar.resize(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i] >= cfg.vocab_size)
      fail("validation shards hold token id {} at position {}, ≥ VOCAB_SIZE {}", v.tokens[i], i, cfg.vocab_size);
  const int64_t L = seq_len;
  v.predictions = (static_cast<int64_t>(v.tokens.size()) - 1) / L * L;
  if (v.predictions == 0)
    fail("validation split has {} tokens, fewer than one {}={} row plus one", v.tokens.size(), seq_len_name, L);
  return v;
}

}  // namespace golf::scoring
