// scoring/protocols.h — the scoring loops: plain rows, sliding window, score-first TTT (global SGD,
// document-batched LoRA, phased = LoRA + global SGD over already-scored documents).
//
// Every protocol scores predictions j ∈ [0, M) of a token stream — prediction j predicts token j + 1
// from tokens ≤ j — each exactly once, and accumulates in float64
//     S_nll = Σ −log p_j(token j+1),   B = Σ bytes_j (the golf-data byte table, or the CaseOps byte sidecar),
//     val_loss = S_nll / M,   val_bpb = S_nll / (ln 2 · B).
// The work is a list of windows (predictions [begin, end) fed as one row, of which [score_from, end)
// are scored), cut contiguously across ranks; sums are merged across ranks at the end.
//   plain    rows of EVAL_SEQ_LEN = L, each scoring all its positions; EVAL_BATCH_SEQS consecutive
//            rows are packed into one forward whose attention is cut only at the pack start, at
//            each BOS and every L tokens counted from a document start (as the records' eval_val),
//            so a row that begins mid-document keeps its context
//   sliding  window starts ws = 0, s, 2s, … with ws + C < M (C = L − s); the first window scores
//            all its positions, the others their last s — the tiling covers [0, M) exactly once
//   ttt      the sliding windows grouped into chunks of TTT_CHUNK_TOKENS predictions (a window
//            belongs to the chunk of its first scored prediction); per chunk: score it without
//            gradients, then — except for the last chunk — train on the chunk's rows with SGD
//            (momentum, cosine-decayed lr, TTT_EPOCHS passes, gradient-norm clip), one step per
//            batch of up to TTT_BATCH_SEQS rows per rank (the records' per-forward batch)
//   lora     documents (split at BOS) in the records' length-sorted queue, TTT_BATCH_SIZE per
//            batch, each with its own LoRA slice; per chunk of TTT_CHUNK_SIZE predictions: score,
//            then one AdamW step on the chunk (a document's last chunk is never trained on)
//   phased   lora, with global SGD on the base weights over already-scored documents between
//            phases (scoring/protocols_lora.cpp)
// Evaluation forwards cut attention only where the records do (ForwardOptions::seq_len_cut =
// EVAL_SEQ_LEN or TTT_EVAL_SEQ_LEN, never TRAIN_SEQ_LEN).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/byte_table.h"
#include "core/config.h"
#include "scoring/ledger.h"

namespace golf {
class Model;
struct LoraDelta;
}

namespace golf::scoring {

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
  // The same calls for rows the protocol built on the host: host_inputs is `inputs` as a CPU
  // tensor, so a model can derive its attention segments there (once per batch) instead of
  // copying the tokens back from the device every forward. Default: the calls above.
  virtual at::Tensor log_probs_of_rows(const at::Tensor& inputs, const at::Tensor& host_inputs) {
    (void)host_inputs;
    return log_probs(inputs);
  }
  virtual at::Tensor loss_of_rows(const at::Tensor& inputs, const at::Tensor& targets, const at::Tensor& host_inputs) {
    (void)host_inputs;
    return loss(inputs, targets);
  }
};

// The golf model, with recurrence as the artifact's config says; TTT_FREEZE_BLOCKS = N leaves
// the first N blocks (their bank rows and per-block tensors) untouched. Attention is cut every
// EVAL_SEQ_LEN tokens of a document (the eval settings'), never every TRAIN_SEQ_LEN.
class ModelLM : public LanguageModel {
 public:
  ModelLM(std::shared_ptr<Model> model, const EvalConfig& eval);  // reads TTT_FREEZE_BLOCKS, EVAL_SEQ_LEN
  // With recurrence on or off as given.
  ModelLM(std::shared_ptr<Model> model, const EvalConfig& eval, bool looping);
  // Read-only (training-time validation: recurrence as the loop's current state): scores a model it
  // does not own, which must outlive it. It only runs forwards; trainable(), after_backward() and
  // model() refuse, as they would change the model.
  ModelLM(const Model& model, const EvalConfig& eval, bool looping);
  at::Tensor log_probs(const at::Tensor& inputs) override;
  at::Tensor loss(const at::Tensor& inputs, const at::Tensor& targets) override;
  // Per-position nll (B, T) with test-time LoRA deltas (one slice per row), cut every seq_len_cut.
  // host_inputs: as in log_probs_of_rows (optional).
  at::Tensor lora_nll(const at::Tensor& inputs, const at::Tensor& targets, const LoraDelta& lora,
                      int64_t seq_len_cut, const at::Tensor& host_inputs = {});
  at::Tensor log_probs_of_rows(const at::Tensor& inputs, const at::Tensor& host_inputs) override;
  at::Tensor loss_of_rows(const at::Tensor& inputs, const at::Tensor& targets, const at::Tensor& host_inputs) override;
  // Mean loss cut every seq_len_cut tokens (phased TTT's global SGD rows), host_inputs as above.
  at::Tensor loss_cut(const at::Tensor& inputs, const at::Tensor& targets, int64_t seq_len_cut,
                      const at::Tensor& host_inputs = {});
  std::vector<at::Tensor> trainable() override;
  void after_backward() override;
  at::Device device() const override;
  Model& model() { return trained(); }  // the model TTT trains; fails on a read-only ModelLM

 private:
  Model& trained();
  std::shared_ptr<Model> owned_;  // null when read-only
  const Model* model_;            // every forward reads through this: owned_ or the borrowed model
  bool looping_;
  int64_t freeze_blocks_;
  int64_t seq_len_cut_;
};

struct Window {
  int64_t begin = 0, end = 0, score_from = 0;  // predictions [begin, end) in the row, [score_from, end) scored
};
std::vector<Window> plain_rows(int64_t predictions, int64_t seq_len);
std::vector<Window> sliding_windows(int64_t predictions, int64_t seq_len, int64_t stride);
// Windows the canonical tiling expects: 1 + ⌈(M − C) / s⌉ when M > C, else 1.
int64_t expected_sliding_windows(int64_t predictions, int64_t seq_len, int64_t stride);

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
  int64_t documents = 0, batches = 0, phases = 0, global_steps = 0;  // LoRA / phased TTT
  double loss() const;
  double bpb() const;
};

// Watches the TTT loops (Hooks::observer): ttt() and lora_ttt() call it at fixed points with what
// they are about to do. Every call defaults to nothing, and without an observer the protocols run as
// specified. Besides watching (progress, statistics), a caller may act through what a call hands
// over; the compliance tests plant their violations this way (tests/scoring/planted.h), so the scoring
// loops hold no test-only branch.
class TttObserver {
 public:
  virtual ~TttObserver() = default;
  // A chunk is about to be scored (ttt: a chunk of TTT_CHUNK_TOKENS; lora/phased: chunk c of a
  // batch of documents). `train` makes the update the protocol makes on this chunk after scoring it
  // (ttt: the chunk's SGD epochs; lora: one AdamW step); empty when the chunk is not trained on.
  virtual void before_score(const std::function<void()>& /*train*/) {}
  // Phased: global SGD is about to train on the documents `train` (indices into documents());
  // `next`: the documents of the first batch not scored yet (empty at the end of the queue).
  virtual void before_phase(std::vector<int64_t>& /*train*/, std::span<const int64_t> /*next*/) {}
};

struct Hooks {
  Ledger* ledger = nullptr;              // score/update evidence (C3, C4); merged across ranks at the end
  std::vector<double>* nll = nullptr;    // per-prediction nll (M entries), this rank's scores only
  bool progress = false;                 // live progress line on stderr
  TttObserver* observer = nullptr;       // the TTT loops' fixed points (above)
  // Read the scores back after every forward (the plain path of GOLF_NO_SYNC=0) instead of once
  // at the end (or every 2¹⁸ values): the same doubles added in the same order, bit-identical.
  bool read_each_batch = false;
};

// Scores `windows` (each prediction of [score_from, end) once; `pack`: consecutive windows as one
// row, as plain does); plain and sliding are this with their tilings. label: the progress line's.
Totals score_windows(LanguageModel& lm, const Stream& stream, const std::vector<Window>& windows, const EvalConfig& cfg,
                     const Ranks& ranks, Hooks hooks = {}, const char* label = "windows", bool pack = false);
Totals plain(LanguageModel& lm, const Stream& stream, const EvalConfig& cfg, const Ranks& ranks, Hooks hooks = {});
Totals sliding(LanguageModel& lm, const Stream& stream, const EvalConfig& cfg, const Ranks& ranks, Hooks hooks = {});

struct TttOptions {
  double lr = 0.005, momentum = 0.9, grad_clip = 1.0;
  int64_t epochs = 3, chunk_tokens = 32768, batch_seqs = 32;
  // SGD through at::_fused_sgd_ and one _foreach_norm for the clip (no host sync per step); the
  // per-tensor loop is the reference. Default: fused on CUDA.
  enum class Sgd { automatic, loop, fused } sgd = Sgd::automatic;
  static TttOptions from(const EvalConfig& cfg);
};
Totals ttt(LanguageModel& lm, const Stream& stream, const EvalConfig& cfg, const TttOptions& options, const Ranks& ranks,
           Hooks hooks = {});

// ---- LoRA TTT and phased TTT (scoring/protocols_lora.cpp) ---------------------------------------
// A document: predictions [begin, end), i.e. tokens [begin, end] — from its BOS up to and including
// the next document's BOS (so it also predicts that BOS); the first runs from the stream start,
// the last ends at M. Documents without predictions are dropped.
struct Document {
  int64_t begin = 0, end = 0;
  int64_t predictions() const { return end - begin; }
};
std::vector<Document> documents(const Stream& stream, int64_t bos_token_id);
// The records' queue: documents sorted by predictions ascending (ties by position), cut into
// batches of batch_size, batches ordered by descending longest document (ties by batch index).
// Each batch lists document indices, shortest first.
std::vector<std::vector<int64_t>> lora_queue(const std::vector<Document>& docs, int64_t batch_size);

struct LoraOptions {
  int64_t rank = 96, chunk = 48, seq_len = 2048, batch_size = 64, grad_steps = 1;
  double alpha = 144, lr = 1e-4, weight_decay = 1.0, beta1 = 0.0, beta2 = 0.999, eps = 1e-10;
  bool k = true, o = true, mlp = true, warm_start_a = false;
  uint64_t seed = 1337;
  // Phased TTT: after the queue has scored the batches holding the first b_k = ⌊prefix·k/phases⌋
  // documents (queue order), global SGD on the base weights over b_k already-scored documents.
  bool phased = false;
  int64_t prefix_docs = 2000, num_phases = 3, global_chunk_tokens = 32768, global_epochs = 1, global_batch_seqs = 32;
  double global_lr = 0.001, global_momentum = 0.9, global_grad_clip = 1.0;
  TttOptions::Sgd sgd = TttOptions::Sgd::automatic;
  static LoraOptions from(const EvalConfig& cfg, int64_t seed);  // seed: SEED (run settings)
};
// One clear error (golf::Error) when a setting cannot apply to this model: a LoRA rank larger than
// a LoRA'd layer's smaller side, or MoA (no LoRA sites).
void validate_lora(const ModelConfig& cfg, const LoraOptions& options);

// Where each prediction stands in the declared evaluation order: (segment, batch) of its
// document — a phase boundary separates segments. Predictions of a document share its place.
struct QueuePlace {
  std::vector<int64_t> doc_of;  // per prediction: document index (−1: none)
  std::vector<int64_t> batch_of_doc, segment_of_doc;
};
QueuePlace lora_queue_places(const Stream& stream, const Config& cfg, const LoraOptions& options);

// LoRA TTT, or phased TTT with options.phased. lm must be a ModelLM (the LoRA goes into its model).
Totals lora_ttt(LanguageModel& lm, const Stream& stream, const Config& cfg, const LoraOptions& options,
                const Ranks& ranks, Hooks hooks = {});

// Merges a ledger's per-prediction state across ranks (element-wise sums); a no-op for one process.
void merge_ledger(Ledger& ledger, const Ranks& ranks);

}  // namespace golf::scoring
