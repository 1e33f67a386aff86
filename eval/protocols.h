// eval/protocols.h — the scoring loops: plain rows, sliding window, score-first TTT.
//
// Every protocol scores predictions j ∈ [0, M) of a token stream — prediction j predicts token j + 1
// from tokens ≤ j — each exactly once, and accumulates in float64
//     S_nll = Σ −log p_j(token j+1),   B = Σ bytes_j (the golf-data byte table, or the CaseOps byte sidecar),
//     val_loss = S_nll / M,   val_bpb = S_nll / (ln 2 · B).
// The work is a list of windows (predictions [begin, end) fed as one row, of which [score_from, end)
// are scored), cut contiguously across ranks; sums are merged across ranks at the end.
//   plain    rows of EVAL_SEQ_LEN = L, each scoring all its positions
//   sliding  window starts ws = 0, s, 2s, … with ws + C < M (C = L − s); the first window scores
//            all its positions, the others their last s — the tiling covers [0, M) exactly once
//   ttt      the sliding windows grouped into chunks of TTT_CHUNK_TOKENS predictions (a window
//            belongs to the chunk of its first scored prediction); per chunk: score it without
//            gradients, then — except for the last chunk — train on the chunk's rows with SGD
//            (momentum, cosine-decayed lr, TTT_EPOCHS passes, gradient-norm clip)
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/byte_table.h"
#include "core/config.h"
#include "eval/ledger.h"

namespace golf {
class Model;
}

namespace golf::eval {

// What a protocol needs from a model. log_probs never receives the targets: the scored
// distribution is fixed before the token it scores is looked at (compliance condition C2).
class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  // (B, T) int64 inputs → (B, T, V) fp32 log-probabilities over the full vocabulary.
  virtual at::Tensor log_probs(const at::Tensor& inputs) = 0;
  // Mean cross-entropy of `targets` given `inputs` (both (B, T)), differentiable (TTT).
  virtual at::Tensor loss(const at::Tensor& inputs, const at::Tensor& targets) = 0;
  virtual std::vector<at::Tensor> trainable() = 0;
  virtual void after_backward() {}  // e.g. zero the gradients of frozen blocks
  virtual at::Device device() const = 0;
};

// The golf model, with recurrence as the artifact's config says; TTT_FREEZE_BLOCKS = N leaves
// the first N blocks (their bank rows and per-block tensors) untouched.
class ModelLM : public LanguageModel {
 public:
  ModelLM(std::shared_ptr<Model> model, int64_t freeze_blocks = 0);
  at::Tensor log_probs(const at::Tensor& inputs) override;
  at::Tensor loss(const at::Tensor& inputs, const at::Tensor& targets) override;
  std::vector<at::Tensor> trainable() override;
  void after_backward() override;
  at::Device device() const override;
  Model& model() { return *model_; }

 private:
  std::shared_ptr<Model> model_;
  bool looping_;
  int64_t freeze_blocks_;
};

struct Window {
  int64_t begin = 0, end = 0, score_from = 0;  // predictions [begin, end) in the row, [score_from, end) scored
};
std::vector<Window> plain_rows(int64_t predictions, int64_t seq_len);
std::vector<Window> sliding_windows(int64_t predictions, int64_t seq_len, int64_t stride);
// Windows the canonical tiling expects: 1 + ⌈(M − C) / s⌉ when M > C, else 1.
int64_t expected_sliding_windows(int64_t predictions, int64_t seq_len, int64_t stride);
// The early sliding implementation (§4.3 of the rules notes: every ws < M, each window scoring its
// last min(s, len) positions), which scores the tail more than once. Kept only as a planted
// violation that the single-pass check must catch.
std::vector<Window> legacy_sliding_windows(int64_t predictions, int64_t seq_len, int64_t stride);

struct Stream {
  std::span<const uint16_t> tokens;  // N tokens: the model's inputs (and TTT's training data)
  int64_t predictions = 0;           // M ≤ N − 1
  const ByteTable* table = nullptr;
  // Targets to score (same length as tokens); empty: tokens. The causality check scores a
  // perturbed stream against the original targets.
  std::span<const uint16_t> score_targets;
  // CaseOps byte sidecar (same length as tokens), replacing the table: prediction j costs
  // sidecar[j + 1] bytes. Empty: the table.
  std::span<const uint16_t> sidecar;
  // Bytes of prediction j (previous token, target) — the one place protocols count bytes.
  int64_t bytes(int64_t j, std::span<const uint16_t> targets) const {
    if (!sidecar.empty()) return sidecar[static_cast<size_t>(j + 1)];
    return table->bytes(tokens[static_cast<size_t>(j)], targets[static_cast<size_t>(j + 1)]);
  }
};

// How work is split across processes. `sum` all-reduces a tensor in place (SUM); unset for one.
struct Ranks {
  int rank = 0, world = 1;
  std::function<void(at::Tensor&)> sum;
};

struct Totals {
  double nll = 0, seconds = 0;
  int64_t predictions = 0, bytes = 0, windows = 0, chunks = 0;
  double loss() const;
  double bpb() const;
};

struct Hooks {
  Ledger* ledger = nullptr;              // score/update evidence (C3, C4); merged across ranks at the end
  std::vector<double>* nll = nullptr;    // per-prediction nll (M entries), this rank's scores only
  bool progress = false;                 // live progress line on stderr
};

Totals plain(LanguageModel& lm, const Stream& stream, const Config& cfg, const Ranks& ranks, Hooks hooks = {});
Totals sliding(LanguageModel& lm, const Stream& stream, const Config& cfg, const Ranks& ranks, Hooks hooks = {},
               bool legacy_tiling = false);

struct TttOptions {
  double lr = 0.005, momentum = 0.9, grad_clip = 1.0;
  int64_t epochs = 3, chunk_tokens = 32768;
  bool train_before_score = false;  // planted violation (tests of the ledger only): train on a chunk, then score it
  static TttOptions from(const Config& cfg);
};
Totals ttt(LanguageModel& lm, const Stream& stream, const Config& cfg, const TttOptions& options, const Ranks& ranks,
           Hooks hooks = {});

// Merges a ledger's per-prediction state across ranks (element-wise sums); a no-op for one process.
void merge_ledger(Ledger& ledger, const Ranks& ranks);

}  // namespace golf::eval
