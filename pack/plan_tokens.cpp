// pack/plan_tokens.cpp — token_coverage (pack/plan.h): how many embedding rows the planned
// training prefix holds often enough to train them as their own.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "core/shard.h"
#include "pack/plan.h"

namespace golf::pack {

namespace {

// Reads tokens [from, from + n) of a validated shard in blocks, calling f(block) on each.
template <class F>
void for_each_block(const std::filesystem::path& path, int64_t from, int64_t n, F&& f) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) fail("{}: cannot open", path.string());
  std::vector<uint16_t> block(size_t{1} << 20);
  if (std::fseek(file, static_cast<long>(shard::kHeaderBytes + 2 * from), SEEK_SET) != 0) {
    std::fclose(file);
    fail("{}: cannot seek to token {}", path.string(), from);
  }
  while (n > 0) {
    const size_t want = static_cast<size_t>(std::min<int64_t>(n, static_cast<int64_t>(block.size())));
    if (std::fread(block.data(), 2, want, file) != want) {
      std::fclose(file);
      fail("{}: short read at token {}", path.string(), from);
    }
    f(std::span<const uint16_t>(block.data(), want));
    from += static_cast<int64_t>(want);
    n -= static_cast<int64_t>(want);
  }
  std::fclose(file);
}

// The position of the first BOS of a shard (its tokens before it are never trained on), or -1.
int64_t first_bos(const std::filesystem::path& path, int64_t tokens) {
  int64_t at = -1, seen = 0;
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) fail("{}: cannot open", path.string());
  std::fseek(file, static_cast<long>(shard::kHeaderBytes), SEEK_SET);
  std::vector<uint16_t> block(4096);
  while (at < 0 && seen < tokens) {
    const size_t got = std::fread(block.data(), 2, static_cast<size_t>(std::min<int64_t>(4096, tokens - seen)), file);
    if (got == 0) break;
    const auto it = std::find(block.begin(), block.begin() + static_cast<ptrdiff_t>(got), shard::kBos);
    if (it != block.begin() + static_cast<ptrdiff_t>(got)) at = seen + (it - block.begin());
    seen += static_cast<int64_t>(got);
  }
  std::fclose(file);
  return at;
}

}  // namespace

TokenCoverage token_coverage(const Config& cfg, int64_t seen_count, int64_t often_count) {
  const auto t0 = std::chrono::steady_clock::now();
  TokenCoverage c;
  c.rows = c.rows_seen = c.rows_seen_often = cfg.vocab_size;
  c.seen_count = seen_count;
  c.often_count = std::max(often_count, seen_count);
  c.steps = cfg.iterations;
  const int64_t accum = cfg.grad_accum_steps > 0 ? cfg.grad_accum_steps : 8;  // one process (train/loader.h)
  const int64_t span = cfg.train_batch_tokens / accum + 1;                   // inputs and targets
  c.planned_tokens = cfg.iterations * accum * span;
  if (cfg.loader != "packing") {
    c.note = fmt::format("LOADER={}: its windows are not reproduced, every embedding row taken as seen (the larger "
                         "prediction)", cfg.loader);
    return c;
  }
  std::vector<std::filesystem::path> shards;
  try {
    shards = shard::list(cfg.data_path, "train");
  } catch (const Error&) {
    shards.clear();  // a missing directory: as no shards
  }
  if (shards.empty()) {
    c.note = fmt::format("no fineweb_train_*.bin at DATA_PATH={}: every embedding row taken as seen (the larger "
                         "prediction)", cfg.data_path);
    return c;
  }
  // Count the loader's prefix: per shard the whole spans from its first BOS, in shard order, until
  // the plan's tokens, the scan limit or (all shards read once) the loader's wrap.
  std::vector<int64_t> counts(static_cast<size_t>(cfg.vocab_size), 0);
  int64_t want = std::min(c.planned_tokens, kCoverageScanTokens), below = cfg.vocab_size;
  for (const auto& path : shards) {
    if (want <= 0 || below == 0) break;
    const int64_t tokens = shard::read_header(path).num_tokens, bos = first_bos(path, tokens);
    if (bos < 0) continue;
    const int64_t n = std::min(want, (tokens - bos) / span * span);
    for_each_block(path, bos, n, [&](std::span<const uint16_t> block) {
      for (const uint16_t id : block) {
        if (id >= cfg.vocab_size) fail("{}: token id {} ≥ VOCAB_SIZE {}", path.string(), id, cfg.vocab_size);
        if (++counts[id] == c.often_count) --below;  // often_count ≥ seen_count: both reached
      }
    });
    c.tokens_read += n;
    want -= n;
  }
  if (c.tokens_read == 0) {
    c.note = fmt::format("the train shards at DATA_PATH={} hold no whole span of {} tokens: every embedding row "
                         "taken as seen (the larger prediction)", cfg.data_path, span);
    return c;
  }
  // Every row already at often_count: the rest of the plan cannot unsee it. Otherwise scale.
  const double scale = below == 0 ? 1.0 : static_cast<double>(c.planned_tokens) / static_cast<double>(c.tokens_read);
  c.rows_seen = c.rows_seen_often = 0;
  for (const int64_t n : counts) {
    c.rows_seen += static_cast<double>(n) * scale >= static_cast<double>(seen_count);
    c.rows_seen_often += static_cast<double>(n) * scale >= static_cast<double>(c.often_count);
  }
  c.measured = true;
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  c.note = fmt::format("embedding rows seen ≥ {} times in the planned {} training tokens: {} of {}{} ({} tokens of {} "
                       "read, {:.2f} s)", seen_count, with_commas(c.planned_tokens), with_commas(c.rows_seen),
                       with_commas(c.rows),
                       c.often_count > seen_count
                           ? fmt::format(", ≥ {} times: {}", c.often_count, with_commas(c.rows_seen_often))
                           : "",
                       with_commas(c.tokens_read), cfg.data_path, c.seconds);
  return c;
}

}  // namespace golf::pack
