// scoring/protocols_internal.h — pieces shared by the scoring loops of protocols.cpp (plain, sliding,
// global SGD TTT) and protocols_lora.cpp (LoRA and phased TTT). Not part of golf-eval's API.
#pragma once
#include <ATen/ATen.h>

#include <chrono>
#include <span>
#include <utility>
#include <vector>

#include "scoring/protocols.h"

namespace golf {
class Progress;
}

namespace golf::scoring::detail {

double seconds_since(std::chrono::steady_clock::time_point t0);

// [lo, hi) of `n` items for rank `rank` of `world`: contiguous shares, as the records split windows and rows.
std::pair<int64_t, int64_t> share(int64_t n, int rank, int world);
inline std::pair<int64_t, int64_t> share(int64_t n, const Ranks& ranks) { return share(n, ranks.rank, ranks.world); }

// A host tensor on `device` without a stream synchronisation (a blocking host→device copy waits
// for the stream): staged through pinned memory, whose caching allocator keeps the block until the
// copy is done, then copied non-blocking. On the CPU: the tensor itself.
at::Tensor to_device_async(const at::Tensor& host, at::Device device);

void all_sum(at::Tensor& t, const Ranks& ranks);
// Each parameter's gradient after a backward (zeros where none flowed), summed across ranks in one
// float32 all-reduce: the step's gradient when every rank's loss was weighted by its share of rows.
std::vector<at::Tensor> summed_grads(std::vector<at::Tensor>& params, const Ranks& ranks);
// The largest of one value per rank (an all-reduce SUM of a one-hot vector).
int64_t all_max(int64_t v, const Ranks& ranks);

// Scores windows [lo, hi) of `windows`, `batch` rows per forward, into `acc`. pack: the batch's
// windows are consecutive rows of the stream, fed as one sequence (plain evaluation). The rows go
// to the model with their host copy (cu_seqlens without a device sync); the scored values stay on
// the device and are read back once at the end (or every 2¹⁸ values), then added in scoring order:
// the totals, ledger and per-prediction hooks are those of a per-batch read, bit for bit.
void score_range(LanguageModel& lm, const Stream& s, std::span<const Window> windows, int64_t lo, int64_t hi,
                 int64_t batch, Totals& acc, Hooks& hooks, Progress* progress, int64_t progress_base, bool pack = false);

// Sums (nll, predictions, bytes, windows) across ranks in float64.
void merge_totals(Totals& t, const Ranks& ranks);

// SGD with momentum (buf = μ·buf + g; p −= lr·buf; momentum kept between steps) after a global
// gradient-norm clip (torch.nn.utils.clip_grad_norm_: g ·= min(1, clip / (‖g‖ + 1e-6))).
// fused: one _foreach_norm and at::_fused_sgd_, no host synchronisation; else a per-tensor loop
// with the norm in float64 (the reference).
struct Sgd {
  std::vector<at::Tensor> params, momentum;
  bool fused = false;
  at::Tensor lr_device;  // fused: the learning rate on the params' device (fp32), refilled when lr changes
  double lr_host = 0;
  Sgd(std::vector<at::Tensor> params, TttOptions::Sgd mode);
  void step(const std::vector<at::Tensor>& grads, double lr, double mu, double clip);
};

// One pass of row-batched SGD steps over `rows` rows of `row_len` tokens: rows[ρ] = (inputs,
// targets) token offsets into `in`/`tg` (each row_len long). Rows are cut contiguously across
// ranks; step k takes up to `batch_seqs` rows per rank; the step's gradient is the mean loss over
// all its rows on all ranks. `on_step(k, lo, hi)` is called after each step with this step's row
// range on each rank via `rows_of(k, r)` — the ledger's hook.
struct RowBatches {
  int64_t rows = 0, batch_seqs = 32;
  int64_t steps(const Ranks& ranks) const;                                       // per epoch
  std::pair<int64_t, int64_t> rows_of(int64_t step, int rank, int world) const;  // [lo, hi)
  int64_t rows_in_step(int64_t step, int world) const;                           // over all ranks
};

}  // namespace golf::scoring::detail
