// Training loaders: the packing loader's sequential spans, the coprime loader's walks, shard mix
// and rank split, and for both: prefetch, resume and errors. Shards are small synthetic ones whose
// token values encode where they come from, so every row can be traced back to its shard offset.
#include "train/loader.h"

#include <atomic>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/shard.h"
#include "tests/test_util.h"

namespace golf::train {
namespace {

using test::TempDir;
using Rows = std::vector<std::vector<uint16_t>>;

void write_shard(const TempDir& dir, int index, const std::vector<uint16_t>& tokens) {
  shard::write(dir / shard::file_name("train", index), tokens);
}

// The batch as one vector per row (cols + 1 tokens each).
Rows rows_of(const TokenBatch& batch) {
  Rows rows;
  const auto width = static_cast<size_t>(batch.cols + 1);
  EXPECT_EQ(batch.tokens.size(), static_cast<size_t>(batch.rows) * width);
  for (int64_t r = 0; r < batch.rows; ++r)
    rows.emplace_back(batch.tokens.begin() + static_cast<ptrdiff_t>(r * width),
                      batch.tokens.begin() + static_cast<ptrdiff_t>((r + 1) * width));
  return rows;
}

std::vector<Rows> take(Loader& loader, int count) {
  std::vector<Rows> batches;
  for (int i = 0; i < count; ++i) batches.push_back(rows_of(loader.next()));
  return batches;
}

std::string error_of(const std::string& kind, const LoaderOptions& options, const nlohmann::json* resume = nullptr) {
  return test::error_of([&] { Loader::create(kind, options, resume); });
}

// ------------------------------------------------------------------------------------------------
// Packing

// Tokens 2, 3, 4, … counting on from `first` (never BOS), with BOS at the given positions.
std::vector<uint16_t> packing_shard(int64_t size, int64_t first, std::initializer_list<int64_t> bos_at) {
  std::vector<uint16_t> tokens(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) tokens[static_cast<size_t>(i)] = static_cast<uint16_t>(2 + (first + i) % 60000);
  for (int64_t p : bos_at) tokens[static_cast<size_t>(p)] = shard::kBos;
  return tokens;
}

std::vector<uint16_t> slice(const std::vector<uint16_t>& tokens, int64_t begin, int64_t end) {
  return {tokens.begin() + begin, tokens.begin() + end};
}

LoaderOptions packing_options(const TempDir& dir, int64_t rank, int64_t world, int64_t tokens_per_rank) {
  LoaderOptions o;
  o.data_dir = dir.path();
  o.rank = rank;
  o.world = world;
  o.tokens_per_rank = tokens_per_rank;
  o.prefetch = 0;
  return o;
}

TEST(PackingLoader, StartsAtTheFirstBosAndTakesConsecutiveSpans) {
  TempDir dir;
  const auto tokens = packing_shard(100, 0, {7, 30});
  write_shard(dir, 0, tokens);
  auto loader = Loader::create("packing", packing_options(dir, 0, 1, 9));
  const TokenBatch first = loader->next();
  EXPECT_EQ(first.rows, 1);
  EXPECT_EQ(first.cols, 9);
  EXPECT_EQ(first.tokens, slice(tokens, 7, 17));  // span = tokens_per_rank + 1
  EXPECT_EQ(loader->next().tokens, slice(tokens, 17, 27));
  EXPECT_EQ(loader->next().tokens, slice(tokens, 27, 37));
}

TEST(PackingLoader, RanksTakeAdjacentSpansThatTogetherAreTheSingleRankStream) {
  TempDir dir;
  // world 3 × span 6 = 18 tokens per call. The shards hold whole global spans after their first BOS,
  // so the world-1 loader switches shards at the same places and its stream is the reference.
  const auto shard0 = packing_shard(4 + 3 * 18, 0, {4, 20});
  const auto shard1 = packing_shard(2 + 2 * 18, 1000, {2});
  write_shard(dir, 0, shard0);
  write_shard(dir, 1, shard1);
  auto single = Loader::create("packing", packing_options(dir, 0, 1, 5));
  const auto stream = take(*single, 3 * 15);  // three passes over both shards
  // The world-1 stream itself is the shards cut into consecutive spans from the first BOS.
  for (int64_t k = 0; k < 9; ++k) EXPECT_EQ(stream[k][0], slice(shard0, 4 + 6 * k, 10 + 6 * k));
  for (int64_t k = 0; k < 6; ++k) EXPECT_EQ(stream[9 + k][0], slice(shard1, 2 + 6 * k, 8 + 6 * k));
  EXPECT_EQ(stream[15], stream[0]);
  for (int64_t rank = 0; rank < 3; ++rank) {
    auto loader = Loader::create("packing", packing_options(dir, rank, 3, 5));
    for (int k = 0; k < 15; ++k) ASSERT_EQ(rows_of(loader->next())[0], stream[3 * k + rank][0]) << "rank " << rank << " call " << k;
  }
}

TEST(PackingLoader, DropsTheShardTailAndOpensTheNextShardAtItsFirstBos) {
  TempDir dir;
  // world 2, span 5: 10 tokens per call; shard 0 has two calls after its BOS at 3 and a 7-token tail.
  const auto shard0 = packing_shard(3 + 2 * 10 + 7, 0, {3, 12});
  const auto shard1 = packing_shard(6 + 10, 1000, {6});
  write_shard(dir, 0, shard0);
  write_shard(dir, 1, shard1);
  auto rank0 = Loader::create("packing", packing_options(dir, 0, 2, 4));
  auto rank1 = Loader::create("packing", packing_options(dir, 1, 2, 4));
  EXPECT_EQ(rank0->next().tokens, slice(shard0, 3, 8));
  EXPECT_EQ(rank1->next().tokens, slice(shard0, 8, 13));
  EXPECT_EQ(rank0->next().tokens, slice(shard0, 13, 18));
  EXPECT_EQ(rank1->next().tokens, slice(shard0, 18, 23));
  // Tokens [23, 30) of shard 0 would make only part of a global span: dropped.
  EXPECT_EQ(rank0->next().tokens, slice(shard1, 6, 11));
  EXPECT_EQ(rank1->next().tokens, slice(shard1, 11, 16));
}

TEST(PackingLoader, WrapsToTheFirstShardAfterTheLast) {
  TempDir dir;
  const auto shard0 = packing_shard(50, 0, {1});
  const auto shard1 = packing_shard(35, 1000, {5});
  write_shard(dir, 0, shard0);
  write_shard(dir, 1, shard1);
  auto loader = Loader::create("packing", packing_options(dir, 0, 1, 9));
  // Shard 0 gives 4 spans of 10 from position 1, shard 1 gives 3 from position 5; then shard 0 again.
  const auto first_pass = take(*loader, 7);
  EXPECT_EQ(first_pass[3][0], slice(shard0, 31, 41));
  EXPECT_EQ(first_pass[6][0], slice(shard1, 25, 35));
  EXPECT_EQ(take(*loader, 7), first_pass);
}

TEST(PackingLoader, RejectsAShardShorterThanOneGlobalSpan) {
  TempDir dir;
  write_shard(dir, 0, packing_shard(100, 0, {0}));
  write_shard(dir, 1, packing_shard(40, 0, {10}));  // 30 tokens from its BOS; world 2 × span 16 = 32
  const auto msg = error_of("packing", packing_options(dir, 0, 2, 15));
  EXPECT_NE(msg.find("fineweb_train_000001.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("30 tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("= 32"), std::string::npos) << msg;
}

TEST(PackingLoader, RejectsAShardWithoutBos) {
  TempDir dir;
  write_shard(dir, 0, packing_shard(100, 0, {}));
  const auto msg = error_of("packing", packing_options(dir, 0, 1, 15));
  EXPECT_NE(msg.find("fineweb_train_000000.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no BOS"), std::string::npos) << msg;
}

// ------------------------------------------------------------------------------------------------
// Coprime stride

// Token i of shard s is s·1024 + i, so a window's first token says where it was read from.
constexpr int64_t kShardStride = 1024;

std::vector<uint16_t> coprime_shard(int64_t shard, int64_t size) {
  std::vector<uint16_t> tokens(static_cast<size_t>(size));
  std::iota(tokens.begin(), tokens.end(), static_cast<uint16_t>(shard * kShardStride));
  return tokens;
}

void write_coprime_corpus(const TempDir& dir, const std::vector<int64_t>& sizes) {
  for (size_t s = 0; s < sizes.size(); ++s) write_shard(dir, static_cast<int>(s), coprime_shard(static_cast<int64_t>(s), sizes[s]));
}

struct WindowAt {
  int64_t shard, offset;
  auto operator<=>(const WindowAt&) const = default;
};

// Where a row was read from; checks that it is consecutive tokens of one shard.
WindowAt locate(const std::vector<uint16_t>& row) {
  for (size_t j = 1; j < row.size(); ++j) EXPECT_EQ(row[j], row[0] + j) << "row is not one run of a shard";
  return {row[0] / kShardStride, row[0] % kShardStride};
}

LoaderOptions coprime_options(const TempDir& dir, int64_t rank, int64_t world, int64_t rows, int64_t seq_len) {
  LoaderOptions o;
  o.data_dir = dir.path();
  o.rank = rank;
  o.world = world;
  o.seq_len = seq_len;
  o.tokens_per_rank = rows * seq_len;
  o.prefetch = 0;
  return o;
}

TEST(CoprimeLoader, OneShardIsWalkedWithACoprimeStrideThatVisitsEveryBlockOncePerCycle) {
  TempDir dir;
  write_coprime_corpus(dir, {200});  // L = 8: 24 blocks whatever the phase in [0, 7]
  auto loader = Loader::create("coprime", coprime_options(dir, 0, 1, 1, 8));  // one window per call
  std::set<int64_t> phases, strides;
  for (int cycle = 0; cycle < 12; ++cycle) {
    std::vector<int64_t> blocks;
    int64_t phase = -1;
    for (int j = 0; j < 24; ++j) {
      const TokenBatch batch = loader->next();
      ASSERT_EQ(batch.rows, 1);
      ASSERT_EQ(batch.cols, 8);
      const WindowAt at = locate(batch.tokens);
      if (j == 0) phase = at.offset % 8;
      ASSERT_EQ(at.offset % 8, phase) << "cycle " << cycle << " changed phase mid-cycle";
      blocks.push_back((at.offset - phase) / 8);
    }
    ASSERT_LE(phase, 7);
    const int64_t stride = ((blocks[1] - blocks[0]) % 24 + 24) % 24;
    EXPECT_EQ(std::gcd(stride, int64_t{24}), 1) << "stride " << stride;
    for (int j = 0; j < 24; ++j) ASSERT_EQ(blocks[j], (blocks[0] + j * stride) % 24) << "cycle " << cycle;
    phases.insert(phase);
    strides.insert(stride);
  }
  // New cycles draw new phases and strides.
  EXPECT_GT(phases.size(), 1u);
  EXPECT_GT(strides.size(), 1u);
}

// Follows each shard's cycles through batches whose windows come out shuffled: a batch holds
// the rest of the shard's current cycle and possibly the start of the next one, each block once.
class CycleTracker {
 public:
  CycleTracker(int64_t shard_tokens, int64_t seq_len) : n_(shard_tokens), L_(seq_len) {}

  void add_batch(std::multiset<int64_t> offsets) {
    if (offsets.size() > left_.size()) {
      for (int64_t offset : left_) {  // the current cycle must be finished first
        const auto it = offsets.find(offset);
        ASSERT_NE(it, offsets.end()) << "block at " << offset << " skipped before the cycle ended";
        offsets.erase(it);
      }
      const int64_t phase = *offsets.begin() % L_;
      left_.clear();
      for (int64_t b = 0; b < (n_ - 1 - phase) / L_; ++b) left_.insert(phase + b * L_);
      ++cycles_started_;
    }
    for (int64_t offset : offsets) ASSERT_EQ(left_.erase(offset), 1u) << "block at " << offset << " repeated in a cycle";
  }
  int completed_cycles() const { return cycles_started_ - (left_.empty() ? 0 : 1); }

 private:
  int64_t n_, L_;
  std::set<int64_t> left_;
  int cycles_started_ = 0;
};

TEST(CoprimeLoader, EveryBlockOfEveryShardIsVisitedOncePerCycle) {
  TempDir dir;
  std::vector<int64_t> sizes;
  for (int64_t s = 0; s < 12; ++s) sizes.push_back(150 + 37 * s);
  write_coprime_corpus(dir, sizes);
  auto loader = Loader::create("coprime", coprime_options(dir, 0, 1, 10, 8));
  std::vector<CycleTracker> trackers;
  for (int64_t n : sizes) trackers.emplace_back(n, 8);
  for (int b = 0; b < 500; ++b) {
    std::map<int64_t, std::multiset<int64_t>> per_shard;
    for (const auto& row : rows_of(loader->next())) {
      const WindowAt at = locate(row);
      per_shard[at.shard].insert(at.offset);
    }
    for (auto& [shard, offsets] : per_shard) {
      trackers[static_cast<size_t>(shard)].add_batch(std::move(offsets));
      if (HasFatalFailure()) FAIL() << "batch " << b << " shard " << shard;
    }
  }
  for (size_t s = 0; s < sizes.size(); ++s) EXPECT_GE(trackers[s].completed_cycles(), 3) << "shard " << s;
}

TEST(CoprimeLoader, ShardMixGrowsFrom8To32ShardsOver1800Batches) {
  TempDir dir;
  write_coprime_corpus(dir, std::vector<int64_t>(40, 101));  // 40 shards of 25 four-token blocks
  auto loader = Loader::create("coprime", coprime_options(dir, 0, 1, 40, 4));
  // Every drawn shard gives at least one window, so the distinct shards of a call are its mix:
  // round(8 + min(b/1800, 1)·(32 − 8)) for world 1 and 40 windows per call.
  const std::map<int, size_t> expected = {{0, 8}, {450, 14}, {900, 20}, {1800, 32}, {2000, 32}};
  for (int b = 0; b <= 2000; ++b) {
    const TokenBatch batch = loader->next();
    const auto want = expected.find(b);
    if (want == expected.end()) continue;
    std::set<int64_t> shards;
    for (const auto& row : rows_of(batch)) shards.insert(locate(row).shard);
    EXPECT_EQ(shards.size(), want->second) << "batch " << b;
  }
}

TEST(CoprimeLoader, RankRowsAreEveryWorldthRowOfTheGlobalBatch) {
  TempDir dir;
  // With 3 shards the mix bounds are min(…, #shards) = 3 for any world ≤ 8, so the world-1 loader
  // with the same global batch draws the same global window list.
  write_coprime_corpus(dir, {300, 260, 333});
  for (int64_t world : {2, 4}) {
    auto global = Loader::create("coprime", coprime_options(dir, 0, 1, 3 * world, 8));
    std::vector<std::unique_ptr<Loader>> ranks;
    for (int64_t r = 0; r < world; ++r) ranks.push_back(Loader::create("coprime", coprime_options(dir, r, world, 3, 8)));
    for (int b = 0; b < 30; ++b) {
      const Rows all = rows_of(global->next());
      for (int64_t r = 0; r < world; ++r) {
        const Rows mine = rows_of(ranks[static_cast<size_t>(r)]->next());
        ASSERT_EQ(mine.size(), 3u);
        for (int64_t j = 0; j < 3; ++j)
          ASSERT_EQ(mine[static_cast<size_t>(j)], all[static_cast<size_t>(r + j * world)])
              << "world " << world << " rank " << r << " batch " << b << " row " << j;
      }
    }
  }
}

TEST(CoprimeLoader, OrderIsDeterministicPerSeedAndChangesWithIt) {
  TempDir dir;
  write_coprime_corpus(dir, {300, 260, 333, 500, 410});
  auto options = coprime_options(dir, 0, 1, 6, 8);
  options.seed = 7;
  const auto a = take(*Loader::create("coprime", options), 20);
  const auto b = take(*Loader::create("coprime", options), 20);
  EXPECT_EQ(a, b);
  options.seed = 8;
  EXPECT_NE(take(*Loader::create("coprime", options), 20), a);
}

TEST(CoprimeLoader, PathHashIsZeroBasisFnv1aOverPathlibStrings) {
  // Values from Python: seed = ((seed ^ b) * 1099511628211) % 2**64 over str(Path(p)).encode().
  const std::filesystem::path shard0 = "data/datasets/fineweb10B_sp8192/fineweb_train_000000.bin";
  const std::filesystem::path shard1 = "data/datasets/fineweb10B_sp8192/fineweb_train_000001.bin";
  EXPECT_EQ(coprime_path_hash({shard0}), 13954401633136213214ull);
  EXPECT_EQ(coprime_path_hash({"./data//datasets/./fineweb10B_sp8192/fineweb_train_000000.bin"}),
            13954401633136213214ull);
  EXPECT_EQ(coprime_path_hash({shard0, shard1}), 13369638481169819015ull);
  EXPECT_NE(coprime_path_hash({shard1, shard0}), 13369638481169819015ull);
}

TEST(CoprimeLoader, RejectsAShardShorterThanOneWindow) {
  TempDir dir;
  write_coprime_corpus(dir, {100, 8});  // a window of seq_len 8 needs 9 tokens
  const auto msg = error_of("coprime", coprime_options(dir, 0, 1, 2, 8));
  EXPECT_NE(msg.find("fineweb_train_000001.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("8 tokens"), std::string::npos) << msg;
}

TEST(CoprimeLoader, RejectsTokensPerRankNotAMultipleOfSeqLen) {
  TempDir dir;
  write_coprime_corpus(dir, {100});
  auto options = coprime_options(dir, 0, 1, 2, 8);
  options.tokens_per_rank = 20;
  const auto msg = error_of("coprime", options);
  EXPECT_NE(msg.find("tokens_per_rank 20 is not a multiple of seq_len 8"), std::string::npos) << msg;
}

// ------------------------------------------------------------------------------------------------
// Both loaders

// Five shards with BOS here and there, usable by either loader; options with two ranks.
class BothLoaders : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    for (int s = 0; s < 5; ++s) write_shard(dir_, s, packing_shard(120 + 45 * s, 1000 * s, {s, 50, 99}));
  }
  LoaderOptions options(int prefetch, int64_t rank = 1) const {
    LoaderOptions o = GetParam() == "packing" ? packing_options(dir_, rank, 2, 15) : coprime_options(dir_, rank, 2, 3, 8);
    o.prefetch = prefetch;
    return o;
  }
  std::unique_ptr<Loader> create(int prefetch, const nlohmann::json* resume = nullptr) const {
    return Loader::create(GetParam(), options(prefetch), resume);
  }
  TempDir dir_;
};

TEST_P(BothLoaders, PrefetchDoesNotChangeTheBatches) {
  const auto synchronous = take(*create(0), 60);
  EXPECT_EQ(take(*create(1), 60), synchronous);
  EXPECT_EQ(take(*create(3), 60), synchronous);
}

TEST_P(BothLoaders, ResumeContinuesWithTheBatchesOfAnUninterruptedRun) {
  const auto uninterrupted = take(*create(0), 30);
  const std::vector<Rows> after_seven(uninterrupted.begin() + 7, uninterrupted.end());
  auto reference_state = [&] {
    auto loader = create(0);
    take(*loader, 7);
    return loader->state();
  }();
  for (int prefetch : {0, 2}) {
    auto first = create(prefetch);
    take(*first, 7);
    // With prefetch the worker is ahead by now; the state is still that of the 7 batches returned.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const nlohmann::json state = nlohmann::json::parse(first->state().dump());  // as read back from a checkpoint
    EXPECT_EQ(state, reference_state) << "prefetch " << prefetch;
    first.reset();
    auto resumed = create(prefetch, &state);
    EXPECT_EQ(take(*resumed, 23), after_seven) << "prefetch " << prefetch;
  }
}

TEST_P(BothLoaders, StateDoesNotDependOnRank) {
  auto rank0 = Loader::create(GetParam(), options(0, 0));
  auto rank1 = Loader::create(GetParam(), options(0, 1));
  take(*rank0, 5);
  take(*rank1, 5);
  EXPECT_EQ(rank0->state(), rank1->state());
}

TEST_P(BothLoaders, ResumeRefusesAStateFromOtherSettings) {
  auto loader = create(0);
  take(*loader, 3);
  const nlohmann::json state = loader->state();

  LoaderOptions wider = options(0);
  wider.world = 4;
  wider.rank = 3;
  auto msg = error_of(GetParam(), wider, &state);
  EXPECT_NE(msg.find("world = 2 but this loader has 4"), std::string::npos) << msg;

  const std::string other_kind = GetParam() == "packing" ? "coprime" : "packing";
  LoaderOptions other = options(0);
  other.seq_len = other.tokens_per_rank;  // valid for both kinds
  msg = error_of(other_kind, other, &state);
  EXPECT_NE(msg.find("kind = \"" + GetParam() + "\""), std::string::npos) << msg;

  const std::string field = GetParam() == "packing" ? "cursor" : "rng";
  nlohmann::json broken = state;
  broken.erase(field);
  msg = error_of(GetParam(), options(0), &broken);
  EXPECT_NE(msg.find("\"" + field + "\""), std::string::npos) << msg;

  write_shard(dir_, 5, packing_shard(300, 0, {0}));
  msg = error_of(GetParam(), options(0), &state);
  EXPECT_NE(msg.find("5 shards but the data directory has 6"), std::string::npos) << msg;
}

TEST_P(BothLoaders, RejectsBadOptions) {
  TempDir empty;
  LoaderOptions o = options(0);
  o.data_dir = empty.path();
  auto msg = error_of(GetParam(), o);
  EXPECT_NE(msg.find(empty.path().string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("no training shards"), std::string::npos) << msg;

  o = options(0);
  o.rank = 2;
  EXPECT_NE(error_of(GetParam(), o).find("rank 2 is outside [0, world 2)"), std::string::npos);
  o = options(0);
  o.tokens_per_rank = 0;
  EXPECT_NE(error_of(GetParam(), o).find("tokens_per_rank 0"), std::string::npos);
  o = options(-1);
  EXPECT_NE(error_of(GetParam(), o).find("prefetch -1"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Kinds, BothLoaders, ::testing::Values("packing", "coprime"),
                         [](const auto& info) { return info.param; });

TEST(Loader, RejectsAnUnknownKind) {
  TempDir dir;
  write_shard(dir, 0, packing_shard(100, 0, {0}));
  EXPECT_NE(error_of("shuffled", packing_options(dir, 0, 1, 8)).find("unknown loader kind \"shuffled\""),
            std::string::npos);
}

// The loader's options come from the settings' three parts in one place: DATA_PATH and SEED (run),
// TRAIN_SEQ_LEN (model), and this rank's share of TRAIN_BATCH_TOKENS (train, batch_geometry).
TEST(Loader, OptionsComeFromTheRunModelAndTrainSettings) {
  Config cfg;
  cfg.data_path = "/data/shards";
  cfg.seed = 42;
  cfg.train_seq_len = 256;
  cfg.train_batch_tokens = 8192;
  cfg.grad_accum_steps = 2;
  const LoaderOptions o = loader_options(cfg, 1, 4);
  EXPECT_EQ(o.data_dir, "/data/shards");
  EXPECT_EQ(o.seed, 42u);
  EXPECT_EQ(o.seq_len, 256);
  EXPECT_EQ(o.rank, 1);
  EXPECT_EQ(o.world, 4);
  EXPECT_EQ(o.tokens_per_rank, 8192 / (4 * 2));
  EXPECT_EQ(o.tokens_per_rank, batch_geometry(cfg, 4).tokens_per_rank);
  EXPECT_EQ(o.prefetch, LoaderOptions{}.prefetch);
}

// ------------------------------------------------------------------------------------------------
// Prefetch machinery, driven by a source that counts and can fail

class CountingSource final : public BatchSource {
 public:
  CountingSource(std::atomic<int>& produced, int fail_at) : produced_(produced), fail_at_(fail_at) {}
  TokenBatch produce() override {
    if (produced_ == fail_at_) fail("source failed at batch {}", fail_at_);
    const int n = produced_++;
    return {1, 1, {static_cast<uint16_t>(n), static_cast<uint16_t>(n + 1)}};
  }
  nlohmann::json position() const override { return produced_.load(); }

 private:
  std::atomic<int>& produced_;
  int fail_at_;
};

TEST(LoaderPrefetch, AWorkerExceptionIsRethrownFromNextInPlaceOfItsBatch) {
  for (int prefetch : {0, 2}) {
    std::atomic<int> produced = 0;
    auto loader = make_loader(std::make_unique<CountingSource>(produced, 3), prefetch);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(loader->next().tokens[0], i) << "prefetch " << prefetch;
    EXPECT_EQ(loader->state(), 3);
    try {
      loader->next();
      ADD_FAILURE() << "no exception, prefetch " << prefetch;
    } catch (const Error& e) {
      EXPECT_STREQ(e.what(), "source failed at batch 3");
    }
    EXPECT_THROW(loader->next(), Error);  // and stays failed
  }
}

TEST(LoaderPrefetch, PreparesExactlyPrefetchBatchesAheadAndStopsCleanly) {
  std::atomic<int> produced = 0;
  auto loader = make_loader(std::make_unique<CountingSource>(produced, -1), 2);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (produced < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(produced, 2);  // the queue is full; the worker waits
  EXPECT_EQ(loader->state(), 0);
  EXPECT_EQ(loader->next().tokens[0], 0);
  while (produced < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(loader->state(), 1);
  loader.reset();  // joins the worker blocked on the full queue
  EXPECT_EQ(produced, 3);
}

}  // namespace
}  // namespace golf::train
