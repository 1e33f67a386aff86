// scoring/validation.h — validation loss and exact bits per byte during training.
//
// The validation stream (all fineweb_val_NNNNNN.bin, in order) is cut into rows of TRAIN_SEQ_LEN
// predictions (usable = ⌊(N−1)/L⌋·L, as the records do); every prediction is scored once, with
// attention restricted to BOS-delimited segments inside its row.
//   val_loss = Σ nll / predictions,   val_bpb = Σ nll / (ln 2 · Σ bytes)      (float64 sums)
// Bytes come from the tokenizer's bpb byte table (core/byte_table.h), or for CaseOps data from the
// byte sidecars beside the val shards (core/shard.h), which then replace the table.
//
// Distributed: rank k of W scores the contiguous rows [⌊k·R/W⌋, ⌊(k+1)·R/W⌋) of the R rows, and
// the float64 sums (nll, bytes) are all-reduced, so every rank returns the same result, equal to
// a single process's up to the order of the float64 additions.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "core/byte_table.h"
#include "core/config.h"
#include "model/model.h"

namespace golf::dist {
class Comm;
}

namespace golf::train {

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
  // Collective when `comm` is distributed: every rank must call it.
  ValidationResult evaluate(const Model& model, bool looping, dist::Comm* comm = nullptr) const;
  int64_t predictions() const { return rows_ * row_len_; }
  bool uses_sidecar() const { return !sidecar_.empty(); }

 private:
  Config cfg_;
  std::vector<uint16_t> tokens_;
  std::vector<uint16_t> sidecar_;  // CaseOps: original bytes per token; empty otherwise
  ByteTable table_;
  int64_t row_len_ = 0, rows_ = 0;
};

}  // namespace golf::train
