// golf-pack — quantize a golf-train run into the artifact, refusing to exceed the byte limit.
//
//   golf-pack RUN_DIR [--out F.golf] [--set MATRIX_BITS=6]... [--val]
//                                    (RUN_DIR/hessians.safetensors: written by golf-train at the end of
//                                     training, or by `golf-train calibrate RUN_DIR`)
//   golf-pack --print-report-schema  (every key F.golf.json can hold, as an example report)
//   golf-pack inspect F.golf
//   golf-pack unpack F.golf --out weights.safetensors     (the dequantized weights eval uses)
//   golf-pack code [--marginal]                            (the counted code, per file)
//   golf-pack plan [--config C.json]... [--set K=V]... [--json OUT] [--fit dim|mlp|layers [--margin N]]
//                                                       (the artifact's bytes predicted before training)
//   golf-pack plan --measure F.golf --config RUN/config.json [--set K=V]...
//                                                       (calibration data: F.golf's bytes by part)
//
// Settings come from the run's config.json, then --config files, the environment and --set (as in
// golf-train); only quantization/packing settings may differ from the run's model.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/main_error.h"
#include "pack/golf_pack.h"

namespace fs = std::filesystem;
namespace pack = golf::pack;
namespace artifact = golf::artifact;

int main(int argc, char** argv) {
  CLI::App app{"golf-pack: GPTQ-quantize a golf-train run into a compressed artifact (COMPRESSOR: golf, brotli or pergroup) within the byte limit"};
  pack::PackRunOptions a;
  a.repo_root = GOLF_SOURCE_DIR;
  app.add_option("run_dir", a.run_dir, "golf-train run directory (ema_model.safetensors, hessians.safetensors)");
  app.add_option("--out", a.out, "artifact path (default RUN_DIR/final_model.golf)");
  app.add_option("--config", a.sources.json_files, "JSON settings (repeatable)")->check(CLI::ExistingFile);
  app.add_option("--set", a.sources.overrides, "KEY=VALUE quantization setting (repeatable)");
  app.add_option("--calib-batches", a.calib_batches, "moved: use `golf-train calibrate RUN_DIR --batches N`")
      ->group("");  // hidden; kept so that old command lines get the message above
  app.add_option("--threads", a.threads, "GPTQ worker threads (0: all cores)");
  app.add_option("--repo-root", a.repo_root, "source tree whose counted code is measured");
  app.add_option("--manifest", a.manifest, "counted-code manifest (default REPO_ROOT/artifact/code_manifest.txt)");
  app.add_flag("--val", a.val, "also report validation bpb before and after quantization (reads DATA_PATH val shards)");

  app.add_flag_callback("--print-report-schema", [] {
        std::puts(pack::pack_report_schema().dump(2).c_str());
        throw CLI::Success();
      }, "print every key F.golf.json can hold (an example report, for scripts) and exit");

  fs::path artifact_path, unpack_out;
  bool marginal = false;
  auto* code = app.add_subcommand("code", "the counted code: per-file table (raw, minified, compressed) and total");
  code->add_flag("--marginal", marginal, "also measure each file's marginal bytes (one compression per file)");
  fs::path minified_dir;
  code->add_option("--write-minified", minified_dir, "also write the counted files as archived (minified) under this directory");
  auto* inspect = app.add_subcommand("inspect", "describe an artifact: header, tensors, bytes per group, entropy");
  inspect->add_option("artifact", artifact_path)->required()->check(CLI::ExistingFile);
  bool compress_groups = false;
  inspect->add_flag("--compress-groups", compress_groups, "also compress each group alone with Brotli (slow)");
  auto* unpack = app.add_subcommand("unpack", "write the dequantized weights (as evaluation uses them) as safetensors");
  unpack->add_option("artifact", artifact_path)->required()->check(CLI::ExistingFile);
  unpack->add_option("--out", unpack_out, "output .safetensors")->required();
  pack::PlanOptions plan_args;
  auto* plan = app.add_subcommand("plan", "predict the artifact's bytes for a configuration, before training");
  plan->add_option("--config", plan_args.sources.json_files, "JSON settings (repeatable)")->check(CLI::ExistingFile);
  plan->add_option("--set", plan_args.sources.overrides, "KEY=VALUE setting (repeatable)");
  plan->add_option("--json", plan_args.json_out, "also write the plan as JSON to this file");
  plan->add_option("--fit", plan_args.fit, "search the largest dim | mlp | layers that fits the budget")
      ->check(CLI::IsMember({"dim", "mlp", "layers"}));
  plan->add_option("--margin", plan_args.margin, "bytes to keep below ARTIFACT_BUDGET with --fit (default 160000)");
  plan->add_option("--measure", plan_args.measure, "calibration: this artifact's bytes by part (JSON)")
      ->check(CLI::ExistingFile);
  plan->add_flag("--total-only", plan_args.total_only, "with --measure: only the artifact's bytes (no ablations)");
  CLI11_PARSE(app, argc, argv);

  try {
    if (*code) {
      const artifact::CodeSize counted = pack::run_code({a.repo_root, a.manifest, marginal, minified_dir});
      std::fputs(artifact::code_table(counted).c_str(), stdout);
      return 0;
    }
    if (*plan) {
      plan_args.sources.environment = golf::current_environment();
      plan_args.repo_root = a.repo_root;
      plan_args.manifest = a.manifest;
      const pack::PlanReport r = pack::run_plan(plan_args);
      std::fputs(r.text.c_str(), stdout);
      if (!plan_args.json_out.empty()) golf::write_file_atomic(plan_args.json_out.string(), r.json);
      else if (!plan_args.measure.empty()) std::fputs(r.json.c_str(), stdout);
      return 0;
    }
    if (*inspect) {
      std::fputs(pack::run_inspect(artifact_path, compress_groups).c_str(), stdout);
      return 0;
    }
    if (*unpack) {
      const pack::UnpackReport r = pack::run_unpack(artifact_path, unpack_out);
      fmt::print("wrote {} ({} tensors)\n", r.out.string(), r.tensors);
      return 0;
    }
    if (a.run_dir.empty()) golf::fail("give a run directory to pack, or a subcommand (inspect, unpack); see --help");
    a.sources.environment = golf::current_environment();
    const pack::PackReport r = pack::run_pack(a);
    golf::write_file_atomic(r.json, r.to_json().dump(2) + "\n");
    fmt::print("wrote {} ({} bytes) and {}\n", r.artifact.string(), golf::with_commas(r.bytes_model), r.json.string());
    return 0;
  } catch (...) {
    return golf::main_error("golf-pack");  // core/main_error.h
  }
}
