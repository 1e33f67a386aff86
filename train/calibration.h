// train/calibration.h — GPTQ calibration Hessians (XᵀX per quantized matrix) from training data.
// Used at the end of golf-train (inside the GPTQ reserve) and by `golf-train calibrate RUN_DIR` for a
// run directory that has none. Never reads validation data: it draws from a fresh training loader.
#pragma once
#include <ATen/core/Tensor.h>

#include <c10/core/Device.h>

#include <filesystem>
#include <map>
#include <string>

#include "core/config.h"
#include "model/model.h"

namespace golf::dist {
class Comm;
}

namespace golf::train {

// Runs `batches` micro-batches of the training stream through `model` (recurrence on when the
// config has loops) and returns the mean XᵀX per matrix name (see HessianCollector). For a model
// with the SMAT value gate (SMAT_USE_G=1) it also returns "smat_gate_means" (NUM_LAYERS): the mean
// gate per layer on the same batches, which the artifact carries for SMAT_ABLATION=g_mean.
// Distributed (collective: every rank calls it): each rank runs ⌈batches / W⌉ micro-batches of its
// own share of the stream (so `batches` is rounded up to a multiple of W), and the XᵀX sums and
// row counts are all-reduced: every rank returns the same mean over all ranks' micro-batches.
std::map<std::string, at::Tensor> collect_hessians(Model& model, const Config& config, int64_t batches,
                                                   dist::Comm* comm = nullptr);

// golf-train calibrate RUN_DIR: a finished run's Hessians computed afresh. Loads
// RUN_DIR/ema_model.safetensors into a model on `device`, collects GPTQ_CALIBRATION_BATCHES batches
// (collect_hessians, one process) and writes RUN_DIR/hessians.safetensors with the configuration in
// its metadata, as the end of training does. An existing hessians.safetensors is kept unless
// `overwrite`: one clear error, nothing written.
struct CalibrationReport {
  std::filesystem::path out;
  int64_t batches = 0, matrices = 0;
  double seconds = 0;
};
CalibrationReport calibrate_run(const std::filesystem::path& run_dir, const Config& config, at::Device device,
                                bool overwrite = false);

}  // namespace golf::train
