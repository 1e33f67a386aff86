#include "train/calibration.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/error.h"
#include "train/loader.h"

namespace golf::train {

std::map<std::string, at::Tensor> collect_hessians(const Model& model, const Config& cfg, int64_t batches) {
  if (batches <= 0) fail("calibration needs at least one batch, got {}", batches);
  const int64_t accum = cfg.grad_accum_steps > 0 ? cfg.grad_accum_steps : 8;
  LoaderOptions options;
  options.data_dir = cfg.data_path;
  options.tokens_per_rank = cfg.train_batch_tokens / accum;
  options.seq_len = cfg.train_seq_len;
  options.seed = static_cast<uint64_t>(cfg.seed);
  auto loader = Loader::create(cfg.loader, options);
  HessianCollector hessians;
  at::NoGradGuard no_grad;
  std::vector<int64_t> ids;
  for (int64_t b = 0; b < batches; ++b) {
    const TokenBatch batch = loader->next();
    ids.assign(batch.tokens.begin(), batch.tokens.end());
    const at::Tensor t = at::from_blob(ids.data(), {batch.rows, batch.cols + 1}, at::kLong).to(model.device());
    model.logits(t.narrow(1, 0, batch.cols), cfg.num_loops > 0, &hessians);
  }
  return hessians.hessians(cfg.num_layers);
}

}  // namespace golf::train
