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

#include <cstdio>
#include <cstdlib>

#include "core/dist/launcher.h"
#include "core/main_error.h"
#include "train/golf_train.h"

namespace gt = golf::train;

int main(int argc, char** argv) {
  CLI::App app{"golf-train: train the Parameter Golf record model (hyperparameters from the environment, "
               "--config files and --set, in increasing priority)"};
  gt::TrainOptions o;
  app.add_option("--config", o.sources.json_files, "JSON file of {\"KEY\": value} settings (repeatable)")
      ->check(CLI::ExistingFile);
  app.add_option("--set", o.sources.overrides, "KEY=VALUE override (repeatable)");
  app.add_option("--resume", o.resume, "continue the run in this directory from its last checkpoint");
  app.add_flag("--print-config", o.print_config, "print the resolved configuration as JSON and exit");
  app.add_option("--stage", o.print_stage, "with --print-config: only the settings this stage reads "
                 "(data | model | train | quant | eval)");
  app.add_flag("--json", o.print_json, "with --print-config: each setting as {\"value\", \"stages\", \"help\"}");
  app.add_flag("--allow-over-budget", o.allow_over_budget, "train even when the predicted artifact exceeds the budget");
  gt::CalibrateOptions c;
  auto* calibrate = app.add_subcommand("calibrate", "GPTQ calibration Hessians of a finished run, written to "
                                       "RUN_DIR/hessians.safetensors (golf-pack reads them)");
  calibrate->add_option("run_dir", c.run_dir, "golf-train run directory (config.json, ema_model.safetensors)")
      ->required();
  calibrate->add_option("--batches", c.batches, "training batches (default GPTQ_CALIBRATION_BATCHES)");
  calibrate->add_flag("--force", c.force, "replace an existing hessians.safetensors");
  calibrate->add_option("--config", o.sources.json_files, "JSON settings (repeatable)")->check(CLI::ExistingFile);
  calibrate->add_option("--set", o.sources.overrides, "KEY=VALUE setting (repeatable; not a model setting)");
  golf::dist::LaunchOptions launch;
  golf::dist::add_launch_options(app, launch);
  CLI11_PARSE(app, argc, argv);
  try {
    o.sources.environment = golf::current_environment();
    if (*calibrate) {
      c.sources = o.sources;
      const gt::CalibrateReport r = gt::run_calibrate(c);
      std::printf("gptq:calibration batches:%lld time:%.0fms\nwrote %s (%lld tensors)\n", static_cast<long long>(r.batches),
                  1000 * r.seconds, r.out.c_str(), static_cast<long long>(r.matrices));
      return 0;
    }
    // The source tree of the preflight's counted code: GOLF_SOURCE_DIR from the environment when set
    // (a copied checkout, the GPU kit), else the one this binary was built from.
    const char* source_env = std::getenv("GOLF_SOURCE_DIR");
    o.source_dir = source_env != nullptr && *source_env != '\0' ? source_env : GOLF_SOURCE_DIR;
    const golf::Config config = gt::resolve_train_config(o);
    if (o.print_config) {
      std::fputs(gt::config_text(o, config).c_str(), stdout);
      return 0;
    }
    std::fputs(gt::preflight_text(o, config).c_str(), stdout);
    // The launcher checks the configuration and plans first (above), so a bad value or an
    // over-budget plan is one error, not one per worker; the workers re-run this main with RANK
    // set and plan no more (train/golf_train.h, preflight_here).
    if (golf::dist::should_launch(launch)) return golf::dist::launch(launch, argc, argv);
    const gt::TrainReport r = gt::run_train(o, config);
    if (!r.main_rank) return 0;  // rank 0 reports for the run
    std::printf("run %s: %lld steps, final val_bpb %.6f, post-EMA val_bpb %.6f\n", r.run_dir.c_str(),
                static_cast<long long>(r.steps), r.final_val_bpb, r.ema_val_bpb);
  } catch (...) {
    return golf::main_error("golf-train");  // core/main_error.h
  }
  return 0;
}
