// train/loader.cpp — the packing and coprime-stride training loaders and their prefetch thread.
//
// Shards are memory-mapped read-only after their headers are validated; a batch is a copy of
// `rows` windows of `cols + 1` tokens out of those mappings.
//
// Document packing (model-and-training.md §4.2, the R16/R29 loader). No randomness. A global
// cursor walks the shards in sorted order, starting at the first BOS of each shard it opens. One
// call takes a global span of world·(tokens_per_rank + 1) tokens; rank r's row is the r-th
// (tokens_per_rank + 1)-token piece of it, and the cursor moves past the whole span. When the next
// global span would run past the end of the shard, the shard's tail is dropped and the next shard
// (after the last: the first) is opened.
//
// Coprime stride (pr1880.md §3; MT §4.6). Windows are L = seq_len (+1) tokens. Each shard has a
// walk: a random phase in [0, min(L−1, n−L−1)], bc = (n−1−phase) // L blocks, a random start
// a ∈ [0, bc) and a random stride k ∈ [1, bc) coprime to bc; its j-th block is (a + j·k) mod bc at
// token offset phase + block·L, so a cycle of bc blocks visits every block once, scattered. A walk
// is drawn when the shard is first used and again when its cycle is used up. Every call builds
// the same global list of world·rows windows on every rank:
//   progress p = min(batches_built / 1800, 1); shard weights (remaining blocks)^(0.9 − 0.4p);
//   mix = round(low + p·(high − low)) distinct shards drawn with those weights, low/high =
//   min(max(8, world) / max(32, 8·world), #shards, world·rows); each drawn shard gets one window
//   plus a multinomial share of the rest; the drawn shards are put in random order, each takes
//   its windows from its walk and shuffles them; then rounds, each visiting the non-empty buckets
//   in a fresh random order and popping one window from the back of each, build the list.
// Rank r takes windows r, r + world, r + 2·world, ….
//
// Faithfulness to the Python of pr1880.md. Bit-faithful: the shard list and block arithmetic,
// the FNV-1a path hash, the walk formulas and rejection of non-coprime strides, progress, α,
// weights and their uniform fallback, the mix bounds with Python's round-half-to-even, the order
// of the random steps, the pop-from-the-back interleave and the rank split. Statistically (not
// bit-) faithful: the random numbers themselves. numpy's Generator(PCG64(seed)) streams and the
// algorithms of its integers/permutation/choice/multinomial are replaced by xoshiro256** with our
// own unbiased bounded integers, Fisher–Yates shuffles, sequential weighted draws without
// replacement and multinomials by direct trials, which sample the same distributions. Two
// deliberate differences: SEED is mixed into the generator seed (pr1880.md's order ignores it),
// and a shard too short for one window is an error instead of being skipped.
#include "train/loader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <span>
#include <thread>

#include "core/error.h"
#include "core/shard.h"

namespace golf::train {

BatchGeometry batch_geometry(const Config& cfg, int64_t world) {
  BatchGeometry g;
  if (cfg.grad_accum_steps > 0) {
    g.accum = cfg.grad_accum_steps;
  } else {
    if (world > 8 || 8 % world != 0)
      fail("GRAD_ACCUM_STEPS=0 means 8 / world size, but the world size {} does not divide 8; set GRAD_ACCUM_STEPS",
           world);
    g.accum = 8 / world;
  }
  if (cfg.train_batch_tokens % (world * g.accum) != 0)
    fail("TRAIN_BATCH_TOKENS {} is not divisible by world size {} × {} gradient-accumulation steps",
         cfg.train_batch_tokens, world, g.accum);
  g.tokens_per_rank = cfg.train_batch_tokens / (world * g.accum);
  return g;
}

LoaderOptions loader_options(const Config& cfg, int64_t rank, int64_t world) {
  LoaderOptions o;
  o.data_dir = cfg.data_path;
  o.rank = rank;
  o.world = world;
  o.tokens_per_rank = batch_geometry(cfg, world).tokens_per_rank;
  o.seq_len = cfg.train_seq_len;
  o.seed = static_cast<uint64_t>(cfg.seed);
  return o;
}

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ------------------------------------------------------------------------------------------------
// Shards

// One shard's tokens, mapped read-only for the life of the loader.
class MappedShard {
 public:
  MappedShard(const fs::path& path, int advice) : path_(path) {
    num_tokens_ = shard::read_header(path).num_tokens;
    bytes_ = shard::kHeaderBytes + 2 * static_cast<size_t>(num_tokens_);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("{}: cannot open shard: {}", path.string(), std::strerror(errno));
    struct stat st {};
    // The header was checked against the size a moment ago; check again on this descriptor so a
    // file replaced in between cannot be mapped shorter than its header claims.
    if (::fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) != bytes_) {
      ::close(fd);
      fail("{}: shard changed size while being opened", path.string());
    }
    void* mapped = ::mmap(nullptr, bytes_, PROT_READ, MAP_SHARED, fd, 0);
    const int mmap_errno = errno;
    ::close(fd);  // the mapping keeps the file alive
    if (mapped == MAP_FAILED) fail("{}: cannot mmap {} bytes: {}", path.string(), bytes_, std::strerror(mmap_errno));
    base_ = static_cast<const uint8_t*>(mapped);
    ::madvise(mapped, bytes_, advice);  // a hint only; failure is harmless
  }
  ~MappedShard() { ::munmap(const_cast<uint8_t*>(base_), bytes_); }
  MappedShard(const MappedShard&) = delete;
  MappedShard& operator=(const MappedShard&) = delete;

  const fs::path& path() const { return path_; }
  int64_t num_tokens() const { return num_tokens_; }
  std::span<const uint16_t> tokens() const {
    return {reinterpret_cast<const uint16_t*>(base_ + shard::kHeaderBytes), static_cast<size_t>(num_tokens_)};
  }

 private:
  fs::path path_;
  int64_t num_tokens_ = 0;
  size_t bytes_ = 0;
  const uint8_t* base_ = nullptr;
};

using Shards = std::vector<std::unique_ptr<MappedShard>>;

Shards open_shards(const fs::path& data_dir, int advice) {
  Shards shards;
  for (const auto& path : shard::list(data_dir, "train")) shards.push_back(std::make_unique<MappedShard>(path, advice));
  if (shards.empty()) fail("{}: no training shards (fineweb_train_NNNNNN.bin)", data_dir.string());
  return shards;
}

// Copies tokens [offset, offset + count) of a shard to `out`.
void copy_window(const MappedShard& shard, int64_t offset, int64_t count, uint16_t* out) {
  const auto window = shard.tokens().subspan(static_cast<size_t>(offset), static_cast<size_t>(count));
  std::copy(window.begin(), window.end(), out);
}

// ------------------------------------------------------------------------------------------------
// Resume states. Each holds the settings and shard list it was taken with; a resume with
// different ones would not continue the same sequence, so it is refused.

json shard_list(const Shards& shards) {
  json list = json::array();
  for (const auto& s : shards) list.push_back({{"name", s->path().filename().string()}, {"tokens", s->num_tokens()}});
  return list;
}

void check_resume_identity(const json& state, const json& identity) {
  if (!state.is_object()) fail("loader resume state is not a JSON object");
  for (const auto& [key, expected] : identity.items()) {
    const auto found = state.find(key);
    if (found == state.end()) fail("loader resume state has no \"{}\"", key);
    if (key == "shards" && *found != expected) {
      if (!found->is_array() || found->size() != expected.size())
        fail("loader resume state was taken over {} shards but the data directory has {}",
             found->is_array() ? found->size() : 0, expected.size());
      for (size_t i = 0; i < expected.size(); ++i)
        if ((*found)[i] != expected[i])
          fail("loader resume state shard {} is {} but the data directory has {}", i, (*found)[i].dump(),
               expected[i].dump());
    }
    if (*found != expected)
      fail("loader resume state has {} = {} but this loader has {}", key, found->dump(), expected.dump());
  }
}

// state[key] as an integer in [lo, hi].
int64_t state_int(const json& state, const char* key, int64_t lo, int64_t hi) {
  const auto found = state.find(key);
  if (found == state.end() || !found->is_number_integer()) fail("loader resume state has no integer \"{}\"", key);
  const int64_t value = found->get<int64_t>();
  if (value < lo || value > hi) fail("loader resume state has {} = {}, outside [{}, {}]", key, value, lo, hi);
  return value;
}

// ------------------------------------------------------------------------------------------------
// Document packing

class PackingSource final : public BatchSource {
 public:
  PackingSource(const LoaderOptions& options, const json* resume)
      : options_(options), shards_(open_shards(options.data_dir, MADV_SEQUENTIAL)) {
    span_ = options.tokens_per_rank + 1;
    global_span_ = options.world * span_;
    for (const auto& s : shards_) {
      const auto tokens = s->tokens();
      const auto bos = std::find(tokens.begin(), tokens.end(), shard::kBos);
      if (bos == tokens.end()) fail("{}: shard has no BOS token ({}), so no document starts in it", s->path().string(), shard::kBos);
      first_bos_.push_back(bos - tokens.begin());
      // Every shard must yield at least one global span, or the search for the next one would
      // never end.
      if (s->num_tokens() - first_bos_.back() < global_span_)
        fail("{}: shard has {} tokens from its first BOS (at {}), fewer than one global span of world {} × "
             "(tokens_per_rank {} + 1) = {}",
             s->path().string(), s->num_tokens() - first_bos_.back(), first_bos_.back(), options.world,
             options.tokens_per_rank, global_span_);
    }
    cursor_ = first_bos_[0];
    if (resume) restore(*resume);
  }

  TokenBatch produce() override {
    if (cursor_ + global_span_ > shards_[shard_]->num_tokens()) {  // drop the tail, open the next shard
      shard_ = (shard_ + 1) % shards_.size();
      cursor_ = first_bos_[shard_];
    }
    TokenBatch batch{1, options_.tokens_per_rank, std::vector<uint16_t>(static_cast<size_t>(span_))};
    copy_window(*shards_[shard_], cursor_ + options_.rank * span_, span_, batch.tokens.data());
    cursor_ += global_span_;
    ++batches_;
    return batch;
  }

  json position() const override {
    json state = identity();
    state["shard"] = shard_;
    state["cursor"] = cursor_;
    state["batches"] = batches_;
    return state;
  }

 private:
  json identity() const {
    return {{"kind", "packing"},
            {"world", options_.world},
            {"tokens_per_rank", options_.tokens_per_rank},
            {"shards", shard_list(shards_)}};
  }

  void restore(const json& state) {
    check_resume_identity(state, identity());
    shard_ = static_cast<size_t>(state_int(state, "shard", 0, static_cast<int64_t>(shards_.size()) - 1));
    cursor_ = state_int(state, "cursor", 0, shards_[shard_]->num_tokens());
    batches_ = state_int(state, "batches", 0, INT64_MAX);
  }

  LoaderOptions options_;
  Shards shards_;
  std::vector<int64_t> first_bos_;
  int64_t span_ = 0, global_span_ = 0;
  size_t shard_ = 0;
  int64_t cursor_ = 0;  // start of the next global span in shards_[shard_]
  int64_t batches_ = 0;
};

// ------------------------------------------------------------------------------------------------
// Random numbers for the coprime loader

uint64_t splitmix64(uint64_t& z) {
  z += 0x9E3779B97F4A7C15ull;
  uint64_t x = z;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// xoshiro256** seeded through splitmix64: its stream is the same on every platform (unlike the
// implementation-defined std:: distributions) and its whole state is four words for the resume
// state.
class Rng {
 public:
  Rng(uint64_t path_hash, uint64_t seed) {
    uint64_t seed_mix = seed;
    uint64_t z = path_hash ^ splitmix64(seed_mix);
    for (auto& word : s_) word = splitmix64(z);
  }
  uint64_t next() {
    const uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = std::rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n) for n ≥ 1; the 2^64 mod n lowest outputs are rejected so no value is favoured.
  uint64_t below(uint64_t n) {
    const uint64_t reject_under = (0 - n) % n;
    for (;;)
      if (const uint64_t x = next(); x >= reject_under) return x % n;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  template <class T>
  void shuffle(std::vector<T>& items) {  // Fisher–Yates
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }
  const std::array<uint64_t, 4>& words() const { return s_; }
  void set_words(const std::array<uint64_t, 4>& words) { s_ = words; }

 private:
  std::array<uint64_t, 4> s_{};
};

// `count` distinct indices drawn one after another, each with probability proportional to its
// weight among those not yet drawn: the distribution of numpy's choice(replace=False, p=...).
// Weights must be positive and count ≤ weights.size().
std::vector<size_t> draw_distinct(Rng& rng, std::vector<double> weights, size_t count) {
  std::vector<size_t> drawn;
  for (size_t k = 0; k < count; ++k) {
    const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    const double u = rng.uniform() * total;
    size_t pick = weights.size();
    double cumulative = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      if (weights[i] <= 0) continue;
      pick = i;  // rounding can leave u ≥ the final sum: then the last candidate is taken
      cumulative += weights[i];
      if (u < cumulative) break;
    }
    drawn.push_back(pick);
    weights[pick] = 0;
  }
  return drawn;
}

// Counts of `trials` independent draws from the categories with probabilities ∝ weights: the
// distribution of numpy's multinomial, sampled trial by trial (a few hundred per batch).
std::vector<int64_t> multinomial(Rng& rng, const std::vector<double>& weights, int64_t trials) {
  std::vector<double> cumulative(weights.size());
  std::partial_sum(weights.begin(), weights.end(), cumulative.begin());
  std::vector<int64_t> counts(weights.size(), 0);
  for (int64_t t = 0; t < trials; ++t) {
    const double u = rng.uniform() * cumulative.back();
    const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
    ++counts[std::min<size_t>(it - cumulative.begin(), weights.size() - 1)];
  }
  return counts;
}

// Python's str(pathlib.PurePosixPath(p)): "." components and empty ones (repeated or trailing
// slashes) dropped, "." for nothing left.
std::string pathlib_string(const fs::path& path) {
  const std::string raw = path.generic_string();
  std::string out = raw.starts_with('/') ? "/" : "";
  size_t begin = 0;
  while (begin <= raw.size()) {
    const size_t end = std::min(raw.find('/', begin), raw.size());
    const std::string_view part(raw.data() + begin, end - begin);
    if (!part.empty() && part != ".") {
      if (!out.empty() && out.back() != '/') out += '/';
      out += part;
    }
    begin = end + 1;
  }
  return out.empty() ? "." : out;
}

// ------------------------------------------------------------------------------------------------
// Coprime stride

constexpr double kMixRampBatches = 1800;  // batches over which progress goes from 0 to 1

class CoprimeSource final : public BatchSource {
 public:
  CoprimeSource(const LoaderOptions& options, const json* resume)
      : options_(options),
        shards_(open_shards(options.data_dir, MADV_RANDOM)),
        window_(options.seq_len),
        rows_(options.tokens_per_rank / options.seq_len),
        rng_(path_hash(), options.seed),
        walks_(shards_.size()) {
    for (const auto& s : shards_)
      if (s->num_tokens() < window_ + 1)
        fail("{}: shard has {} tokens, fewer than one window of seq_len {} + 1", s->path().string(), s->num_tokens(),
             window_);
    if (resume) restore(*resume);
  }

  TokenBatch produce() override {
    const std::vector<Window> windows = global_windows();
    TokenBatch batch{rows_, window_, std::vector<uint16_t>(static_cast<size_t>(rows_ * (window_ + 1)))};
    for (int64_t row = 0; row < rows_; ++row) {
      const Window& w = windows[static_cast<size_t>(options_.rank + row * options_.world)];
      copy_window(*shards_[w.shard], w.offset, window_ + 1, batch.tokens.data() + row * (window_ + 1));
    }
    ++batches_built_;
    return batch;
  }

  json position() const override {
    json state = identity();
    state["batches_built"] = batches_built_;
    state["rng"] = rng_.words();
    json walks = json::array();
    for (const Walk& w : walks_)
      walks.push_back(w.started ? json{{"phase", w.phase}, {"blocks", w.blocks}, {"start", w.start},
                                       {"stride", w.stride}, {"next", w.next}}
                                : json(nullptr));
    state["walks"] = std::move(walks);
    return state;
  }

 private:
  struct Window {
    size_t shard;
    int64_t offset;  // first token; the window is window_ + 1 tokens
  };
  // A shard's current cycle: block j of it is (start + j·stride) mod blocks.
  struct Walk {
    bool started = false;
    int64_t phase = 0, blocks = 0, start = 0, stride = 1, next = 0;
  };

  uint64_t path_hash() const {
    std::vector<fs::path> paths;
    for (const auto& s : shards_) paths.push_back(s->path());
    return coprime_path_hash(paths);
  }

  int64_t full_blocks(size_t s) const { return (shards_[s]->num_tokens() - 1) / window_; }

  void restart_walk(size_t s) {
    Walk& w = walks_[s];
    const int64_t n = shards_[s]->num_tokens();
    const int64_t max_phase = std::min(window_ - 1, std::max<int64_t>(0, n - window_ - 1));
    w.phase = max_phase > 0 ? static_cast<int64_t>(rng_.below(static_cast<uint64_t>(max_phase) + 1)) : 0;
    w.blocks = (n - 1 - w.phase) / window_;
    w.start = w.blocks > 1 ? static_cast<int64_t>(rng_.below(static_cast<uint64_t>(w.blocks))) : 0;
    w.stride = 1;
    if (w.blocks > 1) do
        w.stride = 1 + static_cast<int64_t>(rng_.below(static_cast<uint64_t>(w.blocks - 1)));
      while (std::gcd(w.stride, w.blocks) != 1);
    w.next = 0;
    w.started = true;
  }

  // Token offset of the next block of shard s's walk, starting a new cycle when the last is used up.
  int64_t take_block(size_t s) {
    Walk& w = walks_[s];
    if (!w.started || w.next >= w.blocks) restart_walk(s);
    const int64_t block = (w.start + w.next * w.stride) % w.blocks;
    ++w.next;
    return w.phase + block * window_;
  }

  // The world·rows windows of this call, identical on every rank.
  std::vector<Window> global_windows() {
    const int64_t global_rows = options_.world * rows_;
    const int64_t num_shards = static_cast<int64_t>(shards_.size());
    const double progress = std::min(static_cast<double>(batches_built_) / kMixRampBatches, 1.0);
    const double alpha = 0.9 - 0.4 * progress;

    std::vector<double> weights(shards_.size());
    for (size_t s = 0; s < shards_.size(); ++s) {
      const Walk& w = walks_[s];
      const int64_t remaining = w.started ? std::max<int64_t>(w.blocks - w.next, 1) : full_blocks(s);
      weights[s] = std::pow(static_cast<double>(remaining), alpha);
    }
    const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    if (!std::isfinite(total) || total <= 0) std::fill(weights.begin(), weights.end(), 1.0);

    const int64_t low = std::min({std::max<int64_t>(8, options_.world), num_shards, global_rows});
    const int64_t high = std::min({std::max<int64_t>(32, 8 * options_.world), num_shards, global_rows});
    // nearbyint in the default rounding mode rounds halves to even, as Python's round() does.
    const int64_t mix = std::clamp(static_cast<int64_t>(std::nearbyint(low + progress * (high - low))), int64_t{1},
                                   std::min(num_shards, global_rows));

    const std::vector<size_t> chosen = draw_distinct(rng_, weights, static_cast<size_t>(mix));
    std::vector<double> chosen_weights;
    for (size_t s : chosen) chosen_weights.push_back(weights[s]);
    std::vector<int64_t> counts = multinomial(rng_, chosen_weights, global_rows - mix);
    for (auto& c : counts) ++c;  // every chosen shard gives at least one window

    std::vector<size_t> order(chosen.size());
    std::iota(order.begin(), order.end(), size_t{0});
    rng_.shuffle(order);
    std::vector<std::vector<Window>> buckets;
    for (size_t i : order) {
      auto& bucket = buckets.emplace_back();
      for (int64_t k = 0; k < counts[i]; ++k) bucket.push_back({chosen[i], take_block(chosen[i])});
      rng_.shuffle(bucket);
    }

    std::vector<Window> windows;
    windows.reserve(static_cast<size_t>(global_rows));
    for (;;) {
      std::vector<size_t> live;
      for (size_t b = 0; b < buckets.size(); ++b)
        if (!buckets[b].empty()) live.push_back(b);
      if (live.empty()) break;
      rng_.shuffle(live);
      for (size_t b : live) {
        windows.push_back(buckets[b].back());
        buckets[b].pop_back();
      }
    }
    return windows;
  }

  json identity() const {
    return {{"kind", "coprime"},
            {"world", options_.world},
            {"tokens_per_rank", options_.tokens_per_rank},
            {"seq_len", options_.seq_len},
            {"shards", shard_list(shards_)}};
  }

  void restore(const json& state) {
    check_resume_identity(state, identity());
    batches_built_ = state_int(state, "batches_built", 0, INT64_MAX);
    const auto rng = state.find("rng");
    if (rng == state.end() || !rng->is_array() || rng->size() != 4 ||
        !std::all_of(rng->begin(), rng->end(), [](const json& w) { return w.is_number_unsigned(); }))
      fail("loader resume state has no \"rng\" of 4 unsigned integers");
    rng_.set_words(rng->get<std::array<uint64_t, 4>>());
    const auto walks = state.find("walks");
    if (walks == state.end() || !walks->is_array() || walks->size() != shards_.size())
      fail("loader resume state has no \"walks\" list of {} entries", shards_.size());
    for (size_t s = 0; s < shards_.size(); ++s) {
      const json& saved = (*walks)[s];
      Walk& w = walks_[s];
      w = Walk{};
      if (saved.is_null()) continue;
      w.started = true;
      w.phase = state_int(saved, "phase", 0, window_ - 1);
      w.blocks = state_int(saved, "blocks", 1, full_blocks(s));
      w.start = state_int(saved, "start", 0, w.blocks - 1);
      w.stride = state_int(saved, "stride", 1, std::max<int64_t>(w.blocks - 1, 1));
      w.next = state_int(saved, "next", 0, w.blocks);
      if (w.blocks != (shards_[s]->num_tokens() - 1 - w.phase) / window_ || std::gcd(w.stride, w.blocks) != 1)
        fail("loader resume state walk of shard {} ({}) does not fit the shard", s, shards_[s]->path().string());
    }
  }

  LoaderOptions options_;
  Shards shards_;
  int64_t window_;  // L = seq_len
  int64_t rows_;    // windows per rank per call
  Rng rng_;
  std::vector<Walk> walks_;
  int64_t batches_built_ = 0;
};

// ------------------------------------------------------------------------------------------------
// Prefetch

class SourceLoader final : public Loader {
 public:
  SourceLoader(std::unique_ptr<BatchSource> source, int prefetch) : source_(std::move(source)), prefetch_(prefetch) {
    if (prefetch_ < 0) fail("loader prefetch {} must be ≥ 0", prefetch_);
    if (prefetch_ > 0) {
      returned_position_ = source_->position();  // the worker owns the source from here on
      worker_ = std::thread([this] { run(); });
    }
  }

  ~SourceLoader() override {
    if (!worker_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    room_.notify_all();
    worker_.join();
  }

  TokenBatch next() override {
    if (prefetch_ == 0) return source_->produce();
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return !queue_.empty(); });
    Prepared& front = queue_.front();
    if (front.error) std::rethrow_exception(front.error);  // left queued: later calls fail the same way
    TokenBatch batch = std::move(front.batch);
    returned_position_ = std::move(front.position);
    queue_.pop_front();
    lock.unlock();
    room_.notify_one();
    return batch;
  }

  json state() const override { return prefetch_ == 0 ? source_->position() : returned_position_; }

 private:
  struct Prepared {
    TokenBatch batch;
    json position;  // the source's position right after producing `batch`
    std::exception_ptr error;
  };

  void run() {
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        room_.wait(lock, [&] { return stop_ || queue_.size() < static_cast<size_t>(prefetch_); });
        if (stop_) return;
      }
      Prepared item;
      try {
        item.batch = source_->produce();
        item.position = source_->position();
      } catch (...) {
        item.error = std::current_exception();
      }
      const bool failed = item.error != nullptr;
      {
        std::lock_guard lock(mutex_);
        queue_.push_back(std::move(item));
      }
      ready_.notify_one();
      if (failed) return;
    }
  }

  std::unique_ptr<BatchSource> source_;
  int prefetch_;
  json returned_position_;
  std::mutex mutex_;
  std::condition_variable ready_, room_;
  std::deque<Prepared> queue_;
  bool stop_ = false;
  std::thread worker_;  // last: starts after everything it touches exists
};

void check_options(const std::string& kind, const LoaderOptions& o) {
  if (o.world < 1) fail("loader world size {} must be ≥ 1", o.world);
  if (o.rank < 0 || o.rank >= o.world) fail("loader rank {} is outside [0, world {})", o.rank, o.world);
  if (o.tokens_per_rank < 1) fail("loader tokens_per_rank {} must be ≥ 1", o.tokens_per_rank);
  if (o.prefetch < 0) fail("loader prefetch {} must be ≥ 0", o.prefetch);
  if (kind == "coprime") {
    if (o.seq_len < 1) fail("loader seq_len {} must be ≥ 1", o.seq_len);
    if (o.tokens_per_rank % o.seq_len != 0)
      fail("loader tokens_per_rank {} is not a multiple of seq_len {}", o.tokens_per_rank, o.seq_len);
  }
}

}  // namespace

uint64_t coprime_path_hash(const std::vector<fs::path>& shard_paths) {
  uint64_t hash = 0;  // FNV-1a's usual offset basis is not used: pr1880.md starts from zero
  for (const auto& path : shard_paths)
    for (const char c : pathlib_string(path)) hash = (hash ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return hash;
}

std::unique_ptr<Loader> make_loader(std::unique_ptr<BatchSource> source, int prefetch) {
  return std::make_unique<SourceLoader>(std::move(source), prefetch);
}

std::unique_ptr<Loader> Loader::create(const std::string& kind, const LoaderOptions& options,
                                       const json* resume_state) {
  if (kind != "packing" && kind != "coprime")
    fail("unknown loader kind \"{}\" (expected \"packing\" or \"coprime\")", kind);
  check_options(kind, options);
  std::unique_ptr<BatchSource> source;
  try {
    if (kind == "packing")
      source = std::make_unique<PackingSource>(options, resume_state);
    else
      source = std::make_unique<CoprimeSource>(options, resume_state);
  } catch (const json::exception& e) {  // a resume state with fields of the wrong type
    fail("loader resume state is malformed: {}", e.what());
  }
  return make_loader(std::move(source), options.prefetch);
}

}  // namespace golf::train
