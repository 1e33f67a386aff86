// train/golf_train.h — golf-train as calls: TrainOptions (what the command line says) → the resolved
// configuration → the preflight → run_train → TrainReport; and `golf-train calibrate` as
// CalibrateOptions → run_calibrate → CalibrateReport. The CLI (train/main.cpp) only parses arguments,
// launches the workers of --nproc between the preflight and training, and prints.
//
// The run's files (config.json, metrics.jsonl, train.log, the weights) are written by the trainer
// (train/trainer.h, train/run_dir.h) as the run goes.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "core/config.h"

namespace golf::train {

namespace fs = std::filesystem;

struct TrainOptions {
  ConfigSources sources;               // --config, the environment, --set
  std::optional<fs::path> resume;      // --resume RUN_DIR: the run's own config.json, no --config/--set
  bool allow_over_budget = false;      // train although the preflight predicts more than ARTIFACT_BUDGET
  fs::path source_dir;                 // the counted code of the preflight's plan
  // --print-config [--stage S] [--json]: print the settings instead of training
  bool print_config = false, print_json = false;
  std::string print_stage;
};

// The settings, validated once. Throws golf::Error for --resume with --config/--set, --stage or
// --json without --print-config, and any bad setting.
Config resolve_train_config(const TrainOptions& options);

// --print-config: {"KEY": value, ...}, all fields or one stage's; with --json each value becomes
// {"value": v, "stages": [...], "help": "..."} (the stage table of core/config.h, read by scripts).
std::string config_text(const TrainOptions& options, const Config& config);

// Preflight (pack/plan.h): the predicted artifact bytes, before anything is written; a new run
// predicted over ARTIFACT_BUDGET is a golf::Error unless allow_over_budget. One process per job
// plans, never each worker (--resume: none, the run was planned when it began):
//   before_launch   a single process, or golf's launcher (--nproc N) before it starts its workers;
//   none            golf's launcher's workers (they carry GOLF_LAUNCHER_PID);
//   rank0_in_train  a job of torchrun / Slurm / workers started by hand: rank 0 plans inside
//                   run_train, where the ranks have met, and a refusal stops every rank at once.
enum class Preflight { none, before_launch, rank0_in_train };
Preflight preflight_here(const TrainOptions& options);

// The plan's text where preflight_here is before_launch, "" elsewhere.
std::string preflight_text(const TrainOptions& options, const Config& config);

struct TrainReport {
  bool main_rank = true;               // false on ranks > 0 (rank 0 reports for the run)
  fs::path run_dir;
  int64_t steps = 0;
  double final_val_bpb = 0, ema_val_bpb = 0;  // validation at the end, before and after EMA
};
TrainReport run_train(const TrainOptions& options, const Config& config);

// golf-train calibrate RUN_DIR: settings from the run's config.json (its model settings pinned),
// then --config, the environment and --set as for training; Hessians written into the run.
struct CalibrateOptions {
  fs::path run_dir;
  ConfigSources sources;
  int64_t batches = 0;                 // > 0: GPTQ_CALIBRATION_BATCHES
  bool force = false;                  // replace an existing hessians.safetensors
};
struct CalibrateReport {
  fs::path out;
  int64_t batches = 0, matrices = 0;
  double seconds = 0;
};
CalibrateReport run_calibrate(const CalibrateOptions& options);

}  // namespace golf::train
