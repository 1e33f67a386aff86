// golf-train — train the record model; hyperparameters as the records' environment variables.
//
//   NUM_LAYERS=11 MATRIX_LR=0.026 golf-train [--config F.json]... [--set KEY=VALUE]...
//   golf-train --resume runs/RUN_ID
//   golf-train --print-config        (the resolved configuration as JSON, then exit)
//   golf-train --print-config --stage eval [--json]
//                                    (only the settings golf-eval reads; --json: each as
//                                     {"value", "stages", "help"}, for scripts/golf_pipeline.py)
//   golf-train --allow-over-budget   (train although golf-pack plan predicts more than ARTIFACT_BUDGET)
//   golf-train calibrate RUN_DIR [--batches N] [--force] [--set KEY=VALUE]...
//                                    (GPTQ Hessians of a finished run → RUN_DIR/hessians.safetensors,
//                                     for golf-pack; the run's model settings cannot change)
//   golf-train --nproc 8 [--nnodes M --node-rank K --master-addr A --master-port P] ...
//                                    (distributed: N workers per node, see core/dist/launcher.h;
//                                     also runs as a worker under torchrun / Slurm)
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/config.h"
#include "core/device.h"
#include "core/dist/comm.h"
#include "core/dist/launcher.h"
#include "core/error.h"
#include "core/main_error.h"
#include "pack/plan.h"
#include "artifact/policy.h"
#include "train/calibration.h"
#include "train/run_dir.h"
#include "train/trainer.h"

namespace {
// --print-config: {"KEY": value, ...}, all fields or one stage's; with --json each value becomes
// {"value": v, "stages": [...], "help": "..."} (the stage table of core/config.h, read by scripts).
nlohmann::json print_settings(const golf::Config& config, const std::string& stage, bool detailed) {
  const nlohmann::json values = golf::to_json(config);
  std::vector<std::string> names;
  if (stage.empty())
    for (const auto& field : golf::config_fields()) names.push_back(field.name);
  else
    names = golf::stage_fields(stage);
  nlohmann::json out = nlohmann::json::object();
  for (const auto& field : golf::config_fields()) {
    if (std::find(names.begin(), names.end(), field.name) == names.end()) continue;
    out[field.name] = detailed ? nlohmann::json{{"value", values.at(field.name)},
                                                {"stages", golf::field_stages(field.name)},
                                                {"help", field.help}}
                               : values.at(field.name);
  }
  return out;
}

// golf-train calibrate RUN_DIR: settings from the run's config.json (its model settings pinned),
// then --config, the environment and --set as for training; Hessians written into the run.
int run_calibrate(const std::filesystem::path& run_dir, golf::ConfigSources sources, int64_t batches, bool force) {
  const std::filesystem::path run_config = run_dir / "config.json";
  if (!std::filesystem::exists(run_config))
    golf::fail("{}: no config.json (not a golf-train run directory)", run_dir.string());
  sources.json_files.insert(sources.json_files.begin(), run_config);
  sources.pinned_json = golf::pack::model_config_json(golf::train::RunDir::read_config(run_dir));
  sources.pinned_source = run_config.string();
  if (batches > 0) sources.overrides.push_back("GPTQ_CALIBRATION_BATCHES=" + std::to_string(batches));
  const golf::Config config = golf::resolve_config(sources);
  const auto r = golf::train::calibrate_run(run_dir, config, golf::pick_device(config.device), force);
  std::printf("gptq:calibration batches:%lld time:%.0fms\nwrote %s (%lld tensors)\n", static_cast<long long>(r.batches),
              1000 * r.seconds, r.out.c_str(), static_cast<long long>(r.matrices));
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"golf-train: train the Parameter Golf record model (hyperparameters from the environment, "
               "--config files and --set, in increasing priority)"};
  golf::ConfigSources sources;
  std::optional<std::filesystem::path> resume;
  bool print_config = false, print_json = false;
  std::string print_stage;
  app.add_option("--config", sources.json_files, "JSON file of {\"KEY\": value} settings (repeatable)")
      ->check(CLI::ExistingFile);
  app.add_option("--set", sources.overrides, "KEY=VALUE override (repeatable)");
  app.add_option("--resume", resume, "continue the run in this directory from its last checkpoint");
  app.add_flag("--print-config", print_config, "print the resolved configuration as JSON and exit");
  app.add_option("--stage", print_stage, "with --print-config: only the settings this stage reads "
                 "(data | model | train | quant | eval)");
  app.add_flag("--json", print_json, "with --print-config: each setting as {\"value\", \"stages\", \"help\"}");
  bool allow_over_budget = false;
  app.add_flag("--allow-over-budget", allow_over_budget, "train even when the predicted artifact exceeds the budget");
  std::filesystem::path calibrate_dir;
  int64_t calibrate_batches = 0;
  bool calibrate_force = false;
  auto* calibrate = app.add_subcommand("calibrate", "GPTQ calibration Hessians of a finished run, written to "
                                       "RUN_DIR/hessians.safetensors (golf-pack reads them)");
  calibrate->add_option("run_dir", calibrate_dir, "golf-train run directory (config.json, ema_model.safetensors)")
      ->required();
  calibrate->add_option("--batches", calibrate_batches, "training batches (default GPTQ_CALIBRATION_BATCHES)");
  calibrate->add_flag("--force", calibrate_force, "replace an existing hessians.safetensors");
  calibrate->add_option("--config", sources.json_files, "JSON settings (repeatable)")->check(CLI::ExistingFile);
  calibrate->add_option("--set", sources.overrides, "KEY=VALUE setting (repeatable; not a model setting)");
  golf::dist::LaunchOptions launch;
  golf::dist::add_launch_options(app, launch);
  CLI11_PARSE(app, argc, argv);
  try {
    sources.environment = golf::current_environment();
    if (*calibrate) return run_calibrate(calibrate_dir, sources, calibrate_batches, calibrate_force);
    if (resume && (!sources.json_files.empty() || !sources.overrides.empty()))
      golf::fail("--resume takes the run's own config.json; --config and --set cannot change a resumed run");
    if (!print_config && (!print_stage.empty() || print_json)) golf::fail("--stage and --json go with --print-config");
    const golf::Config config = golf::resolve_config(sources);
    if (print_config) {
      std::puts(print_settings(config, print_stage, print_json).dump(2).c_str());
      return 0;
    }
    // Preflight (pack/plan.h): the predicted artifact bytes, before anything is written; a new
    // run predicted over ARTIFACT_BUDGET stops here unless --allow-over-budget.
    // One process plans: a single-process run, golf's launcher (not its workers, which carry
    // GOLF_LAUNCHER_PID), or rank 0 under torchrun / Slurm. The source tree is GOLF_SOURCE_DIR from
    // the environment when set (a copied checkout, the GPU kit), else the one this binary was built from.
    if (!resume && golf::dist::world_from_env().main() && std::getenv("GOLF_LAUNCHER_PID") == nullptr) {
      const char* source_env = std::getenv("GOLF_SOURCE_DIR");
      const std::string source_dir = source_env != nullptr && *source_env != '\0' ? source_env : GOLF_SOURCE_DIR;
      std::fputs(golf::pack::preflight(config, source_dir, allow_over_budget).c_str(), stdout);
    }
    // The launcher checks the configuration first (above), so a bad value is one error, not one
    // per worker; the workers re-run this main with RANK set.
    if (golf::dist::should_launch(launch)) return golf::dist::launch(launch, argc, argv);
    const auto result = golf::train::train(config, resume);
    if (!golf::dist::world_from_env().main()) return 0;  // rank 0 reports for the run
    std::printf("run %s: %lld steps, final val_bpb %.6f, post-EMA val_bpb %.6f\n", result.run_dir.c_str(),
                static_cast<long long>(result.steps), result.final_val.bpb, result.ema_val.bpb);
  } catch (...) {
    return golf::main_error("golf-train");  // core/main_error.h
  }
  return 0;
}
