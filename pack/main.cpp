// golf-pack — quantize a golf-train run into the artifact, refusing to exceed the byte limit.
//
//   golf-pack RUN_DIR [--out F.golf] [--set MATRIX_BITS=6]... [--val]
//                                    (RUN_DIR/hessians.safetensors: written by golf-train at the end of
//                                     training, or by `golf-train calibrate RUN_DIR`)
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
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/main_error.h"
#include "core/model.h"
#include "core/tensor_io.h"
#include "pack/artifact.h"
#include "pack/code_size.h"
#include "pack/minify.h"
#include "pack/pack_model.h"
#include "pack/plan.h"
#include "train/validation.h"

namespace fs = std::filesystem;
using namespace golf;

namespace {

struct PackArgs {
  fs::path run_dir, out;
  ConfigSources sources;
  int64_t calib_batches = 0;
  int threads = 0;
  fs::path repo_root = GOLF_SOURCE_DIR;
  fs::path manifest;
  bool val = false;
};

// The run's configuration with the user's packing settings on top; a changed model setting is an error.
Config resolve_pack_config(PackArgs& a) {
  const fs::path run_config = a.run_dir / "config.json";
  if (!fs::exists(run_config)) fail("{}: no config.json (not a golf-train run directory)", a.run_dir.string());
  a.sources.json_files.insert(a.sources.json_files.begin(), run_config);
  const Config cfg = resolve_config(a.sources);
  std::ifstream in(run_config);
  const nlohmann::json run = nlohmann::json::parse(in);
  const nlohmann::json now = to_json(cfg);
  for (const auto& key : pack::model_setting_keys())
    if (run.contains(key) && run[key] != now[key])
      fail("{}={} differs from the run's {}={}: golf-pack only changes quantization settings", key, now[key].dump(), key,
           run[key].dump());
  return cfg;
}

std::string tensor_table(const pack::QuantizeResult& r) {
  std::string out = fmt::format("{:<32} {:>4} {:>6} {:>10} {:>12} {:>12} {:>7}\n", "tensor", "bits", "clip", "params",
                                "err GPTQ", "err RTN", "ratio");
  for (const auto& t : r.tensors) {
    if (t.bits == 16) continue;
    const double ratio = t.error_rtn > 0 ? t.error / t.error_rtn : 0;
    out += fmt::format("{:<32} {:>4} {:>6.2f} {:>10} {:>12.4e} {:>12.4e} {:>7.3f}{}\n", t.name, t.bits, t.clip_sigmas,
                       t.params, t.error, t.error_rtn, ratio,
                       t.rtn_fallback ? "  (Cholesky failed: RTN)" : t.damp_retries ? "  (extra damping)" : "");
  }
  int64_t fp16 = 0, fp16_params = 0;
  for (const auto& t : r.tensors)
    if (t.bits == 16) ++fp16, fp16_params += t.params;
  out += fmt::format("{} small tensors ({} values) stored as fp16 passthrough\n", fp16, fp16_params);
  for (const auto& t : r.tensors)
    if (t.lqer)
      out += fmt::format("LQER {}: ‖W − Ŵ‖_F {:.6e} → {:.6e} ({})\n", t.name, t.frob_error, t.lqer_frob_error,
                         t.lqer_asym ? "asymmetric int2/int4" : "symmetric fallback");
  return out;
}

// The counted-code table for the JSON report: compressor, totals and one row per file.
nlohmann::json code_json(const pack::CodeSize& code) {
  nlohmann::json j = {{"compressor", code.compressor}, {"compressed_bytes", code.compressed_bytes},
                      {"raw_bytes", code.raw_bytes}, {"minified_bytes", code.minified_bytes}};
  for (const auto& [name, bytes] : code.candidates) j["candidates"][name] = bytes;
  for (const auto& r : code.rows)
    j["files"].push_back({{"path", r.path}, {"raw_bytes", r.raw_bytes}, {"minified_bytes", r.minified_bytes},
                          {"alone_bytes", r.alone_bytes}});
  return j;
}

int run_pack(PackArgs& a) {
  Config cfg = resolve_pack_config(a);
  if (a.out.empty()) a.out = a.run_dir / "final_model.golf";
  if (a.manifest.empty()) a.manifest = a.repo_root / "pack" / "code_manifest.txt";
  const auto weights = load_tensors(a.run_dir / "ema_model.safetensors");

  // Calibration is golf-train's (train/calibration.h): golf-pack links no trainer.
  std::map<std::string, at::Tensor> hessians;
  if (a.calib_batches > 0)
    fail("--calib-batches moved to golf-train: run `golf-train calibrate {} --batches {}`, then golf-pack",
         a.run_dir.string(), a.calib_batches);
  if (fs::exists(a.run_dir / "hessians.safetensors")) {
    hessians = load_tensors(a.run_dir / "hessians.safetensors");
  } else if (cfg.gptq_enabled) {
    fail("{} has no hessians.safetensors: run `golf-train calibrate {}` to compute them from the training shards",
         a.run_dir.string(), a.run_dir.string());
  }

  // The SMAT gate means travel with the weights (fp16 passthrough) for SMAT_ABLATION=g_mean.
  pack::TensorMap to_pack = weights;
  if (const auto it = hessians.find(pack::kSmatGateMeans); it != hessians.end()) to_pack[it->first] = it->second;
  const pack::QuantizeResult q = pack::quantize_model(to_pack, hessians, cfg, a.threads);
  pack::PackOptions options;
  options.shuffle_stride = static_cast<int>(cfg.shuffle_stride);
  options.compressor = pack::compressor_from_name(cfg.compressor);
  const auto pack_start = std::chrono::steady_clock::now();
  const auto bytes = pack::serialize(q.artifact, options);
  const double pack_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - pack_start).count();
  const auto code = pack::counted_code(a.repo_root, a.manifest);
  pack::Budget budget;
  budget.limit = cfg.artifact_budget;
  budget.artifact_bytes = static_cast<int64_t>(bytes.size());
  budget.code_bytes = code.compressed_bytes;
  // Attributing bytes to groups recompresses each group (as long again as packing): only when over.
  const auto groups = budget.fits() ? std::vector<pack::GroupStats>{} : pack::group_stats(q.artifact, options);

  std::fputs(tensor_table(q).c_str(), stdout);
  fmt::print("quantized {} tensors in {:.1f}s\n", q.tensors.size(), q.seconds);
  fmt::print("compressed with COMPRESSOR={} in {:.1f}s\n", cfg.compressor, pack_seconds);
  std::fputs(pack::code_table(code).c_str(), stdout);
  std::fputs(pack::budget_report(budget, groups).c_str(), stdout);
  if (!budget.fits()) {
    fmt::print(stderr, "golf-pack: error: {} bytes is over the {}-byte limit by {}; no artifact written\n",
               pack::with_commas(budget.total()), pack::with_commas(budget.limit),
               pack::with_commas(budget.total() - budget.limit));
    return 1;
  }
  pack::write_artifact(a.out, bytes);

  nlohmann::json report = {{"artifact", a.out.string()}, {"bytes_model", budget.artifact_bytes},
                           {"bytes_code", budget.code_bytes}, {"bytes_total", budget.total()}, {"limit", budget.limit},
                           {"code_files", code.files.size()}, {"code", code_json(code)},
                           {"quantize_seconds", q.seconds},
                           {"compressor", cfg.compressor}, {"compress_seconds", pack_seconds}};
  for (const auto& t : q.tensors)
    report["tensors"].push_back({{"name", t.name}, {"group", t.group}, {"bits", t.bits}, {"clip_sigmas", t.clip_sigmas},
                                 {"params", t.params}, {"error_gptq", t.error}, {"error_rtn", t.error_rtn},
                                 {"dead_columns", t.dead_columns}, {"rtn_fallback", t.rtn_fallback},
                                 {"frob_error", t.frob_error}, {"lqer", t.lqer}, {"lqer_frob_error", t.lqer_frob_error}});

  if (a.val) {
    const train::Validation validation(cfg);
    const bool looping = cfg.num_loops > 0;
    Model model(cfg, at::kCPU);
    model.load_state(weights);
    const auto pre = validation.evaluate(model, looping);
    pack::load_model_weights(model, pack::dequantize_model(pack::deserialize(bytes, a.out.string())));
    const auto post = validation.evaluate(model, looping);
    fmt::print("pre-quantization post-ema val_loss:{:.8f} val_bpb:{:.8f}\n", pre.loss, pre.bpb);
    fmt::print("quantized val_loss:{:.8f} val_bpb:{:.8f} (gap {:+.5f} bpb)\n", post.loss, post.bpb, post.bpb - pre.bpb);
    report["pre_quant"] = {{"val_loss", pre.loss}, {"val_bpb", pre.bpb}};
    report["quantized"] = {{"val_loss", post.loss}, {"val_bpb", post.bpb}};
  }
  write_file_atomic(a.out.string() + ".json", report.dump(2) + "\n");
  fmt::print("wrote {} ({} bytes) and {}.json\n", a.out.string(), pack::with_commas(budget.artifact_bytes), a.out.string());
  return 0;
}

struct PlanArgs {
  ConfigSources sources;
  fs::path json_out, measure;
  std::string fit;
  int64_t margin = 160'000;  // 1 % of the budget: the planner's target accuracy
  bool total_only = false;    // --measure without the ablations
};

// golf-pack plan: the prediction (or --fit's search, or --measure's calibration data).
int run_plan(PlanArgs& p, const PackArgs& a) {
  const Config cfg = resolve_config(p.sources);  // defaults, --config, environment, --set (as golf-train)
  const fs::path manifest = a.manifest.empty() ? a.repo_root / "pack" / "code_manifest.txt" : a.manifest;
  if (!p.measure.empty()) {
    const auto bytes = pack::read_file_bytes(p.measure);
    const pack::Header header = pack::read_header(bytes, p.measure.string());
    const pack::Artifact artifact = pack::deserialize(bytes, p.measure.string());
    // The artifact's tensors, written with this configuration's COMPRESSOR and SHUFFLE_STRIDE.
    pack::PackOptions options;
    options.compressor = pack::compressor_from_name(cfg.compressor);
    options.shuffle_stride = static_cast<int>(cfg.shuffle_stride);
    const pack::Plan plan = pack::layout(pack::model_shapes(cfg), cfg, pack::lqer_targets(artifact));
    const pack::Measurement m = pack::measure_artifact(artifact, options, plan, !p.total_only);
    if (header.compressor == options.compressor && header.shuffle_stride == options.shuffle_stride &&
        m.file_bytes != static_cast<int64_t>(bytes.size()))
      fail("{}: re-serializing gives {} bytes, the file has {}", p.measure.string(), m.file_bytes, bytes.size());
    nlohmann::json out = pack::plan_json(plan);
    out.erase("predicted");
    out.erase("bytes_model");
    out.erase("bytes_total");
    out.erase("bytes_code");
    out.erase("fits");
    out["artifact"] = p.measure.string();
    out["measured"] = {{"file_bytes", m.file_bytes}};
    if (!p.total_only)
      out["measured"].update({{"gptq_codes", m.gptq_code_bytes}, {"lqer_codes", m.lqer_code_bytes},
                              {"scales", m.scale_bytes},         {"fp16_values", m.value_bytes},
                              {"table", m.table_bytes}, {"gptq_codes_by_group", m.gptq_code_bytes_by_group}});
    out["config"] = {{"NUM_LAYERS", cfg.num_layers}, {"MODEL_DIM", cfg.model_dim}, {"MLP_MULT", cfg.mlp_mult},
                     {"VOCAB_SIZE", cfg.vocab_size}, {"MATRIX_BITS", cfg.matrix_bits}, {"EMBED_BITS", cfg.embed_bits},
                     {"COMPRESSOR", cfg.compressor}};
    const std::string text = out.dump() + "\n";
    if (!p.json_out.empty()) write_file_atomic(p.json_out.string(), text);
    else std::fputs(text.c_str(), stdout);
    return 0;
  }
  const int64_t code_bytes = pack::counted_code(a.repo_root, manifest).compressed_bytes;
  nlohmann::json report;
  if (!p.fit.empty()) {
    if (p.margin < 0) fail("--margin {} must not be negative", p.margin);
    const pack::FitResult r = pack::fit_knob(cfg, p.fit, p.margin, code_bytes);
    std::fputs(pack::plan_table(r.plan).c_str(), stdout);
    fmt::print("fit: the largest {} whose predicted total fits {} - margin {} = {} bytes ({} plans)\n", r.key,
               pack::with_commas(cfg.artifact_budget), pack::with_commas(p.margin),
               pack::with_commas(cfg.artifact_budget - p.margin), r.evaluated);
    fmt::print("{}\n", r.set_line());
    report = pack::plan_json(r.plan);
    report["fit"] = {{"key", r.key}, {"value", r.value}, {"margin", p.margin}, {"set", r.set_line()}};
  } else {
    const pack::Plan plan = pack::plan_config(cfg, code_bytes);
    std::fputs(pack::plan_table(plan).c_str(), stdout);
    report = pack::plan_json(plan);
  }
  if (!p.json_out.empty()) write_file_atomic(p.json_out.string(), report.dump(2) + "\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"golf-pack: GPTQ-quantize a golf-train run into a compressed artifact (COMPRESSOR: golf, brotli or pergroup) within the byte limit"};
  PackArgs a;
  app.add_option("run_dir", a.run_dir, "golf-train run directory (ema_model.safetensors, hessians.safetensors)");
  app.add_option("--out", a.out, "artifact path (default RUN_DIR/final_model.golf)");
  app.add_option("--config", a.sources.json_files, "JSON settings (repeatable)")->check(CLI::ExistingFile);
  app.add_option("--set", a.sources.overrides, "KEY=VALUE quantization setting (repeatable)");
  app.add_option("--calib-batches", a.calib_batches, "moved: use `golf-train calibrate RUN_DIR --batches N`")
      ->group("");  // hidden; kept so that old command lines get the message above
  app.add_option("--threads", a.threads, "GPTQ worker threads (0: all cores)");
  app.add_option("--repo-root", a.repo_root, "source tree whose counted code is measured");
  app.add_option("--manifest", a.manifest, "counted-code manifest (default REPO_ROOT/pack/code_manifest.txt)");
  app.add_flag("--val", a.val, "also report validation bpb before and after quantization (reads DATA_PATH val shards)");

  fs::path artifact_path, unpack_out;
  bool marginal = false;
  auto* code = app.add_subcommand("code", "the counted code: per-file table (raw, minified, compressed) and total");
  code->add_flag("--marginal", marginal, "also measure each file's marginal bytes (one compression per file)");
  fs::path minified_dir;
  code->add_option("--write-minified", minified_dir, "also write the counted files as archived (minified) under this directory");
  auto* inspect = app.add_subcommand("inspect", "describe an artifact: header, tensors, bytes per group, entropy");
  inspect->add_option("artifact", artifact_path)->required()->check(CLI::ExistingFile);
  bool compress_groups = false;  // Brotli-11 per group: as long as packing with brotli (minutes at full size)
  inspect->add_flag("--compress-groups", compress_groups, "also compress each group alone with Brotli (slow)");
  auto* unpack = app.add_subcommand("unpack", "write the dequantized weights (as evaluation uses them) as safetensors");
  unpack->add_option("artifact", artifact_path)->required()->check(CLI::ExistingFile);
  unpack->add_option("--out", unpack_out, "output .safetensors")->required();
  PlanArgs plan_args;
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
      if (a.manifest.empty()) a.manifest = a.repo_root / "pack" / "code_manifest.txt";
      const pack::CodeSize counted = pack::counted_code(a.repo_root, a.manifest, marginal);
      std::fputs(pack::code_table(counted).c_str(), stdout);
      for (const std::string& file : counted.files) {  // for scripts/check_minified.py, which compiles them
        if (minified_dir.empty()) break;
        const auto bytes = pack::read_file_bytes(a.repo_root / file);
        const std::string text(bytes.begin(), bytes.end());
        fs::create_directories((minified_dir / file).parent_path());
        write_file_atomic(minified_dir / file, pack::is_cpp_source(file) ? pack::minify_cpp(text, file) : text);
      }
      return 0;
    }
    if (*plan) {
      plan_args.sources.environment = current_environment();
      return run_plan(plan_args, a);
    }
    if (*inspect || *unpack) {
      const auto bytes = pack::read_file_bytes(artifact_path);
      const pack::Artifact artifact = pack::deserialize(bytes, artifact_path.string());
      if (*inspect) {
        pack::PackOptions options;
        const pack::Header header = pack::read_header(bytes, artifact_path.string());
        options.shuffle_stride = header.shuffle_stride;
        std::fputs(pack::describe(artifact, bytes, options, compress_groups).c_str(), stdout);
      } else {
        Config cfg;
        const auto weights = pack::dequantize_model(artifact, &cfg);
        save_tensors(unpack_out, weights, {{"config", to_json(cfg).dump()}, {"format", "golf-weights-1"}});
        fmt::print("wrote {} ({} tensors)\n", unpack_out.string(), weights.size());
      }
      return 0;
    }
    if (a.run_dir.empty()) fail("give a run directory to pack, or a subcommand (inspect, unpack); see --help");
    a.sources.environment = current_environment();
    return run_pack(a);
  } catch (...) {
    return golf::main_error("golf-pack");  // core/main_error.h
  }
}
