#include "scoring/validation.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>

#include "core/device.h"
#include "core/dist/comm.h"
#include "core/error.h"
#include "model/fast_paths.h"
#include "core/shard.h"
#include "core/tokenizer.h"
#include "model/varlen.h"

namespace golf::train {

Validation::Validation(const Config& cfg) : cfg_(cfg) {
  const auto files = shard::list(cfg.data_path, "val");
  if (files.empty()) fail("DATA_PATH {}: no fineweb_val_NNNNNN.bin shards", cfg.data_path);
  for (const auto& f : files) {
    const auto t = shard::read_tokens(f);
    tokens_.insert(tokens_.end(), t.begin(), t.end());
    if (std::filesystem::exists(shard::sidecar_path(f))) {  // CaseOps: the sidecar replaces the table
      const auto b = shard::read_sidecar(f, static_cast<int64_t>(t.size()));
      sidecar_.insert(sidecar_.end(), b.begin(), b.end());
    }
    if (!sidecar_.empty() && sidecar_.size() != tokens_.size())
      fail("DATA_PATH {}: only some validation shards have byte sidecars (e.g. not {})", cfg.data_path, f.string());
    if (cfg.val_max_tokens > 0 && static_cast<int64_t>(tokens_.size()) >= cfg.val_max_tokens + 1) break;
  }
  if (cfg.val_max_tokens > 0 && static_cast<int64_t>(tokens_.size()) > cfg.val_max_tokens + 1)
    tokens_.resize(static_cast<size_t>(cfg.val_max_tokens + 1));
  if (!sidecar_.empty()) sidecar_.resize(tokens_.size());
  const Tokenizer tokenizer = Tokenizer::load(cfg.tokenizer_path);
  table_ = ByteTable::build(tokenizer, static_cast<int>(cfg.vocab_size));
  for (const uint16_t t : tokens_)
    if (t >= cfg.vocab_size) fail("validation shards hold token id {} ≥ VOCAB_SIZE {}", t, cfg.vocab_size);
  row_len_ = cfg.train_seq_len;
  rows_ = (static_cast<int64_t>(tokens_.size()) - 1) / row_len_;
  if (rows_ == 0) fail("validation split has {} tokens, fewer than one row of {}", tokens_.size(), row_len_ + 1);
}

ValidationResult Validation::evaluate(const Model& model, bool looping, dist::Comm* comm) const {
  const auto start = std::chrono::steady_clock::now();
  at::NoGradGuard no_grad;
  const int64_t L = row_len_;
  const int64_t rows_per_batch = std::max<int64_t>(1, cfg_.val_batch_tokens / L);
  // This rank's rows [first, last).
  const int64_t W = comm ? comm->world_size() : 1, k = comm ? comm->rank() : 0;
  const int64_t first = rows_ * k / W, last = rows_ * (k + 1) / W;
  double nll = 0;
  at::Tensor nll_sum;  // float64 on the device, read once at the end: no sync per batch
  int64_t bytes = 0;
  std::vector<int64_t> buf;
  for (int64_t r0 = first; r0 < last; r0 += rows_per_batch) {
    const int64_t n = std::min(rows_per_batch, last - r0);
    buf.assign(static_cast<size_t>(n * (L + 1)), 0);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j <= L; ++j) {
        const size_t idx = static_cast<size_t>((r0 + r) * L + j);
        buf[static_cast<size_t>(r * (L + 1) + j)] = tokens_[idx];
        if (j > 0) bytes += sidecar_.empty() ? table_.bytes(tokens_[idx - 1], tokens_[idx]) : sidecar_[idx];
      }
    const at::Tensor host = at::from_blob(buf.data(), {n, L + 1}, at::kLong);
    // Varlen attention: segment bounds from the host rows (no device→host read in the forward).
    // GOLF_NO_SYNC on CUDA: batch and bounds go through pinned memory without blocking (buf is
    // reused next batch), and the loss sum stays on the device until the end.
    ForwardOptions forward;
    const bool async = model.device().is_cuda() && model.fast_paths().no_sync;
    if (model.fast_paths().attn != AttnBackend::sdpa) {
      forward.cu_seqlens = varlen_segments(host.narrow(1, 0, L), cfg_).cu_seqlens;
      if (async) forward.cu_seqlens = forward.cu_seqlens.pin_memory();
    }
    const at::Tensor batch = golf::to_device(host, model.device(), async);  // core/device.h
    const at::Tensor losses = model.token_losses(batch.narrow(1, 0, L), batch.narrow(1, 1, L), looping, nullptr, forward);
    // The same float64 additions in the same order as reading each batch's sum: bit-identical.
    const at::Tensor batch_sum = losses.to(at::kDouble).sum();
    if (model.fast_paths().no_sync)
      nll_sum = nll_sum.defined() ? nll_sum + batch_sum : batch_sum;
    else
      nll += batch_sum.item<double>();  // the plain path's read per batch
  }
  if (nll_sum.defined()) nll = nll_sum.item<double>();
  if (comm && comm->distributed()) {
    std::vector<double> sums{nll, static_cast<double>(bytes)};  // bytes < 2^53: exact in float64
    comm->all_reduce_sum(sums);
    nll = sums[0];
    bytes = static_cast<int64_t>(sums[1]);
  }
  ValidationResult r;
  r.predictions = rows_ * L;
  r.bytes = bytes;
  r.loss = nll / static_cast<double>(r.predictions);
  r.bpb = nll / (std::log(2.0) * static_cast<double>(bytes));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace golf::train
