// scoring/validation.h — validation loss and exact bits per byte during training (and golf-pack --val).
//
// Not a second scorer: the stream is golf-eval's (scoring/val_data.h: all fineweb_val_NNNNNN.bin in
// order, the CaseOps byte sidecars beside them replacing the tokenizer's byte table) and the score is
// golf-eval's plain protocol (scoring/protocols.h), configured with the training settings:
//   rows of TRAIN_SEQ_LEN = L (usable = ⌊(N−1)/L⌋·L predictions, as the records); VAL_BATCH_SIZE /
//   (world × grad-accumulation steps × L) consecutive rows (rows_per_forward) packed into one forward
//   with attention cut at the pack start, at each BOS and every L tokens of a document (the
//   records' eval_val), every prediction scored once;
//   val_loss = Σ nll / predictions,   val_bpb = Σ nll / (ln 2 · Σ bytes)      (float64 sums)
// so golf-eval's plain with EVAL_SEQ_LEN = L and EVAL_BATCH_SEQS = rows_per_forward gives the same
// bits on the same weights and data.
//
// Distributed: rank k of W scores the contiguous rows [⌊k·R/W⌋, ⌊(k+1)·R/W⌋) of the R rows, and
// the float64 sums (nll, predictions, bytes) are all-reduced, so every rank returns the same
// result, equal to a single process's up to the order of the float64 additions.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "core/byte_table.h"
#include "core/config.h"
#include "model/model.h"
#include "scoring/val_data.h"

namespace golf::dist {
class Comm;
}

namespace golf::scoring {

struct ValidationResult {
  double loss = 0, bpb = 0;
  int64_t predictions = 0, bytes = 0;
  double seconds = 0;
};

class Validation {
 public:
  // Reads the val shards under DATA_PATH and the tokenizer's byte table; VAL_MAX_TOKENS caps the
  // stream (for quick runs).
  explicit Validation(const Config& config);
  // Collective when `comm` is distributed: every rank must call it. GOLF_NO_SYNC (the model's fast
  // paths): the scores stay on the device until the end; otherwise they are read after each forward
  // (the plain path). Same additions in the same order either way: bit-identical results.
  // Rows of TRAIN_SEQ_LEN packed into one forward: VAL_BATCH_TOKENS / (world × accum × L), at least 1.
  static int64_t rows_per_forward(const Config& cfg, int64_t world);
  ValidationResult evaluate(const Model& model, bool looping, dist::Comm* comm = nullptr) const;
  int64_t predictions() const { return val_.predictions; }
  bool uses_sidecar() const { return val_.has_sidecar(); }

 private:
  Config cfg_;
  ValData val_;
  ByteTable table_;
};

}  // namespace golf::scoring
