// train/loader.h — the training data loaders of golf-train (torch-free).
//
// Two ways to turn fineweb_train_NNNNNN.bin shards into batches of token windows:
//   "packing"  the R16/R29 document-packing loader (model-and-training.md §4.2): shards in sorted
//              order, read sequentially from each shard's first BOS, one packed row per rank.
//   "coprime"  the coprime-stride multi-shard loader of PR #1880 (pr1880.md §3, MT §4.6):
//              seq_len-token windows drawn from many shards at once, each shard walked in a
//              scattered order that visits every window exactly once per cycle.
// Both are deterministic, prepare batches ahead on a background thread, and can report their
// position as JSON so that a resumed run continues with exactly the batches it would have seen.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/config.h"

namespace golf::train {

// How one optimizer step's TRAIN_BATCH_TOKENS are split over ranks and micro-batches:
// accum = GRAD_ACCUM_STEPS, or 8 / world when it is 0 (the records: 8 on 1 GPU, 1 on 8 GPUs);
// tokens_per_rank = TRAIN_BATCH_TOKENS / (world · accum) predictions per micro-batch and rank.
// With the default, a micro-batch has TRAIN_BATCH_TOKENS / 8 tokens whatever the world size, so
// W ranks see exactly the micro-batches one process would (in a different assignment).
// Throws golf::Error naming the values when they do not divide.
struct BatchGeometry {
  int64_t accum = 1, tokens_per_rank = 0;
};
BatchGeometry batch_geometry(const Config& config, int64_t world);

// `rows` windows of `cols + 1` consecutive tokens each (row-major in `tokens`); the model reads
// tokens [0, cols) of a row and predicts tokens [1, cols] (inputs and targets overlap by one).
struct TokenBatch {
  int64_t rows = 0, cols = 0;
  std::vector<uint16_t> tokens;
};

struct LoaderOptions {
  std::filesystem::path data_dir;  // holds fineweb_train_NNNNNN.bin (golf::shard::list(data_dir, "train"))
  int64_t rank = 0, world = 1;     // this process's share of each global batch
  int64_t tokens_per_rank = 0;     // predictions per next() call on this rank (rows*cols)
  int64_t seq_len = 2048;          // coprime: window length (cols); packing: unused (rows = 1, cols = tokens_per_rank)
  uint64_t seed = 1337;            // SEED; the coprime loader also hashes the shard file names as in pr1880.md
  int prefetch = 2;                // batches prepared ahead by a background thread (0 = synchronous)
};
// The one place a loader's options come from the settings, which hold them in three parts: DATA_PATH
// and SEED (run), TRAIN_SEQ_LEN (model), TRAIN_BATCH_TOKENS and GRAD_ACCUM_STEPS (train, through
// batch_geometry). `prefetch` keeps its default.
LoaderOptions loader_options(const Config& config, int64_t rank, int64_t world);

class Loader {
 public:
  virtual ~Loader() = default;
  // The next batch of this rank. Call next() and state() from one thread.
  virtual TokenBatch next() = 0;
  // Everything needed to continue bit-exactly after a restart (checkpoint resume); JSON. It
  // describes the position after the last batch next() returned (batches prefetched but not yet
  // returned are not counted), and is the same on every rank.
  virtual nlohmann::json state() const = 0;
  // kind is "packing" or "coprime". A resume_state must come from state() of a loader of the same
  // kind over the same shards (names and sizes) with the same world, tokens_per_rank and seq_len.
  static std::unique_ptr<Loader> create(const std::string& kind, const LoaderOptions& options,
                                        const nlohmann::json* resume_state = nullptr);
};

// What a Loader draws its batches from. The loaders above are BatchSources wrapped by
// make_loader(); public so that tests and future loaders can use the same prefetch machinery.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual TokenBatch produce() = 0;              // the next batch; advances the position
  virtual nlohmann::json position() const = 0;   // the position after the last produce()
};

// A Loader that runs `source` `prefetch` batches ahead on a background thread (0 = synchronously
// on the caller's thread). The batch sequence does not depend on `prefetch`; an exception thrown
// by the source is rethrown from next() in the place of the batch it failed to produce.
std::unique_ptr<Loader> make_loader(std::unique_ptr<BatchSource> source, int prefetch);

// The coprime loader's data-order seed (pr1880.md §3.1): FNV-1a with the 64-bit prime and a zero
// offset basis over the UTF-8 bytes of every shard path, in order, each written as Python's
// pathlib prints it (no "." components, no repeated or trailing slashes).
uint64_t coprime_path_hash(const std::vector<std::filesystem::path>& shard_paths);

}  // namespace golf::train
