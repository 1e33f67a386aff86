// golf-train — train the record model; hyperparameters as the records' environment variables.
//
//   NUM_LAYERS=11 MATRIX_LR=0.026 golf-train [--config F.json]... [--set KEY=VALUE]...
//   golf-train --resume runs/RUN_ID
//   golf-train --print-config        (the resolved configuration as JSON, then exit)
//   golf-train --allow-over-budget   (train although golf-pack plan predicts more than ARTIFACT_BUDGET)
//   golf-train --nproc 8 [--nnodes M --node-rank K --master-addr A --master-port P] ...
//                                    (distributed: N workers per node, see core/dist/launcher.h;
//                                     also runs as a worker under torchrun / Slurm)
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "core/config.h"
#include "core/dist/comm.h"
#include "core/dist/launcher.h"
#include "core/error.h"
#include "pack/plan.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"golf-train: train the Parameter Golf record model (hyperparameters from the environment, "
               "--config files and --set, in increasing priority)"};
  golf::ConfigSources sources;
  std::optional<std::filesystem::path> resume;
  bool print_config = false;
  app.add_option("--config", sources.json_files, "JSON file of {\"KEY\": value} settings (repeatable)")
      ->check(CLI::ExistingFile);
  app.add_option("--set", sources.overrides, "KEY=VALUE override (repeatable)");
  app.add_option("--resume", resume, "continue the run in this directory from its last checkpoint");
  app.add_flag("--print-config", print_config, "print the resolved configuration as JSON and exit");
  bool allow_over_budget = false;
  app.add_flag("--allow-over-budget", allow_over_budget, "train even when the predicted artifact exceeds the budget");
  golf::dist::LaunchOptions launch;
  golf::dist::add_launch_options(app, launch);
  CLI11_PARSE(app, argc, argv);
  try {
    sources.environment = golf::current_environment();
    if (resume && (!sources.json_files.empty() || !sources.overrides.empty()))
      golf::fail("--resume takes the run's own config.json; --config and --set cannot change a resumed run");
    const golf::Config config = golf::resolve_config(sources);
    if (print_config) {
      std::puts(golf::to_json(config).dump(2).c_str());
      return 0;
    }
    // Preflight (pack/plan.h): the predicted artifact bytes, before anything is written; a new
    // run predicted over ARTIFACT_BUDGET stops here unless --allow-over-budget.
    if (!resume) {
      const std::string plan = golf::pack::preflight(config, GOLF_SOURCE_DIR, allow_over_budget);
      if (golf::dist::world_from_env().main()) std::fputs(plan.c_str(), stdout);
    }
    // The launcher checks the configuration first (above), so a bad value is one error, not one
    // per worker; the workers re-run this main with RANK set.
    if (golf::dist::should_launch(launch)) return golf::dist::launch(launch, argc, argv);
    const auto result = golf::train::train(config, resume);
    if (!golf::dist::world_from_env().main()) return 0;  // rank 0 reports for the run
    std::printf("run %s: %lld steps, final val_bpb %.6f, post-EMA val_bpb %.6f\n", result.run_dir.c_str(),
                static_cast<long long>(result.steps), result.final_val.bpb, result.ema_val.bpb);
  } catch (const golf::Error& e) {
    std::fprintf(stderr, "golf-train: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "golf-train: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
