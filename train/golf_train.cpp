// train/golf_train.cpp — golf-train's calls (train/golf_train.h).
#include "train/golf_train.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include "core/device.h"
#include "core/dist/comm.h"
#include "core/dist/launcher.h"
#include "core/error.h"
#include "pack/plan.h"
#include "artifact/policy.h"
#include "train/calibration.h"
#include "train/run_dir.h"
#include "train/trainer.h"

namespace golf::train {

Config resolve_train_config(const TrainOptions& o) {
  if (o.resume && (!o.sources.json_files.empty() || !o.sources.overrides.empty()))
    fail("--resume takes the run's own config.json; --config and --set cannot change a resumed run");
  if (!o.print_config && (!o.print_stage.empty() || o.print_json)) fail("--stage and --json go with --print-config");
  return resolve_config(o.sources);
}

std::string config_text(const TrainOptions& o, const Config& config) {
  const nlohmann::json values = golf::to_json(config);
  std::vector<std::string> names;
  if (o.print_stage.empty())
    for (const auto& field : config_fields()) names.push_back(field.name);
  else
    names = stage_fields(o.print_stage);
  nlohmann::json out = nlohmann::json::object();
  for (const auto& field : config_fields()) {
    if (std::find(names.begin(), names.end(), field.name) == names.end()) continue;
    out[field.name] = o.print_json ? nlohmann::json{{"value", values.at(field.name)},
                                                    {"stages", field_stages(field.name)},
                                                    {"help", field.help}}
                                   : values.at(field.name);
  }
  return out.dump(2) + "\n";
}

Preflight preflight_here(const TrainOptions& o) {
  if (o.resume) return Preflight::none;                                       // planned when it began
  if (!dist::is_worker()) return Preflight::before_launch;                    // one process, or golf's launcher
  if (std::getenv("GOLF_LAUNCHER_PID") != nullptr) return Preflight::none;    // golf's launcher planned
  return Preflight::rank0_in_train;                                           // torchrun / Slurm / by hand
}

std::string preflight_text(const TrainOptions& o, const Config& config) {
  if (preflight_here(o) != Preflight::before_launch) return "";
  return pack::preflight(config, o.source_dir, o.allow_over_budget);
}

TrainReport run_train(const TrainOptions& o, const Config& config) {
  // Under an external launcher no process planned before the workers started: rank 0 plans where
  // the ranks have met, so that a refusal stops the others at once instead of leaving them waiting
  // for rank 0 until DIST_TIMEOUT_SECONDS.
  std::function<void()> plan;
  if (preflight_here(o) == Preflight::rank0_in_train)
    plan = [&] {
      std::fputs(pack::preflight(config, o.source_dir, o.allow_over_budget).c_str(), stdout);
      std::fflush(stdout);
    };
  const TrainResult result = train(config, o.resume, plan);
  TrainReport report;
  report.main_rank = dist::world_from_env().main();
  report.run_dir = result.run_dir;
  report.steps = result.steps;
  report.final_val_bpb = result.final_val.bpb;
  report.ema_val_bpb = result.ema_val.bpb;
  return report;
}

CalibrateReport run_calibrate(const CalibrateOptions& o) {
  const fs::path run_config = o.run_dir / "config.json";
  if (!fs::exists(run_config)) fail("{}: no config.json (not a golf-train run directory)", o.run_dir.string());
  ConfigSources sources = o.sources;
  sources.json_files.insert(sources.json_files.begin(), run_config);
  sources.pinned_json = artifact::model_config_json(RunDir::read_config(o.run_dir));
  sources.pinned_source = run_config.string();
  if (o.batches > 0) sources.overrides.push_back("GPTQ_CALIBRATION_BATCHES=" + std::to_string(o.batches));
  const Config config = resolve_config(sources);
  const CalibrationReport r = calibrate_run(o.run_dir, config, pick_device(config.device), o.force);
  return {r.out, r.batches, r.matrices, r.seconds};
}

}  // namespace golf::train
