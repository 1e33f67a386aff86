#include "train/calibration.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <nlohmann/json.hpp>

#include <chrono>

#include "core/device.h"
#include "core/dist/comm.h"
#include "core/error.h"
#include "model/fast_paths.h"
#include "model/varlen.h"
#include "core/tensor_io.h"
#include "train/loader.h"

namespace golf::train {

std::map<std::string, at::Tensor> collect_hessians(Model& model, const Config& cfg, int64_t batches,
                                                   dist::Comm* comm) {
  if (batches <= 0) fail("calibration needs at least one batch, got {}", batches);
  const int64_t W = comm ? comm->world_size() : 1;
  const LoaderOptions options = loader_options(cfg, comm ? comm->rank() : 0, W);  // train/loader.h
  batches = (batches + W - 1) / W;  // per rank
  auto loader = Loader::create(cfg.loader, options);
  HessianCollector hessians;
  hessians.passthrough_max_numel = cfg.passthrough_max_numel;
  const ForwardProbes probes{.hessians = &hessians};
  at::NoGradGuard no_grad;
  std::vector<int64_t> ids;
  std::vector<at::Tensor> inputs;  // kept for the SMAT gate means
  for (int64_t b = 0; b < batches; ++b) {
    const TokenBatch batch = loader->next();
    ids.assign(batch.tokens.begin(), batch.tokens.end());
    const at::Tensor host = at::from_blob(ids.data(), {batch.rows, batch.cols + 1}, at::kLong);
    ForwardOptions forward;  // varlen: segment bounds from the host batch, not read back from the device
    if (model.fast_paths().attn != AttnBackend::sdpa) forward.cu_seqlens = varlen_segments(host.narrow(1, 0, batch.cols), cfg).cu_seqlens;
    const at::Tensor t = golf::to_device(host, model.device());  // core/device.h
    model.logits(t.narrow(1, 0, batch.cols), cfg.num_loops > 0, &probes, forward);
    // A copy: on the CPU `t` is `host`, a view of `ids`, which the next batch overwrites.
    if (cfg.smat_use_g) inputs.push_back(t.narrow(1, 0, batch.cols).clone());
  }
  if (comm && comm->distributed()) {
    for (auto& [name, sum] : hessians.sums) comm->all_reduce_sum(sum);  // same names, same order on every rank
    std::vector<double> rows;
    for (const auto& [name, n] : hessians.rows) rows.push_back(static_cast<double>(n));
    comm->all_reduce_sum(rows);
    size_t i = 0;
    for (auto& [name, n] : hessians.rows) n = static_cast<int64_t>(rows[i++]);
  }
  auto out = hessians.hessians(cfg.num_layers);
  if (cfg.smat_use_g) {
    const auto& means = model.calibrate_smat_gate_means(inputs, cfg.num_loops > 0);
    at::Tensor m = at::tensor(std::vector<double>(means.begin(), means.end()), at::kDouble);
    if (comm && comm->distributed()) {
      std::vector<double> v(means.begin(), means.end());
      comm->all_reduce_sum(v);  // every rank ran the same number of batches: the mean of means
      for (auto& x : v) x /= static_cast<double>(W);
      m = at::tensor(v, at::kDouble);
      model.set_smat_gate_means(v);
    }
    out["smat_gate_means"] = m.to(at::kFloat);
  }
  return out;
}

CalibrationReport calibrate_run(const std::filesystem::path& run_dir, const Config& cfg, at::Device device,
                                bool overwrite) {
  const auto start = std::chrono::steady_clock::now();
  CalibrationReport r;
  r.out = run_dir / "hessians.safetensors";
  r.batches = cfg.gptq_calibration_batches;
  const std::filesystem::path weights = run_dir / "ema_model.safetensors";
  if (!std::filesystem::exists(weights))
    fail("{}: no ema_model.safetensors (the run has not finished training)", run_dir.string());
  if (std::filesystem::exists(r.out) && !overwrite)
    fail("{} exists already; pass --force to replace it", r.out.string());
  at::manual_seed(cfg.seed);
  Model model(cfg, device);
  model.load_state(load_tensors(weights));
  const auto hessians = collect_hessians(model, cfg, r.batches);
  r.matrices = static_cast<int64_t>(hessians.size());
  save_tensors(r.out, hessians, {{"config", to_json(cfg).dump()}, {"format", "golf-weights-1"}});  // as RunDir::save_weights
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace golf::train
