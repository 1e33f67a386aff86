// pack/golf_pack.cpp — golf-pack's subcommands as calls (pack/golf_pack.h).
#include "pack/golf_pack.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/model.h"
#include "core/tensor_io.h"
#include "artifact/artifact.h"
#include "artifact/minify.h"
#include "pack/pack_model.h"
#include "pack/plan.h"
#include "scoring/validation.h"

namespace golf::pack {

namespace {

fs::path manifest_or_default(const fs::path& repo_root, const fs::path& manifest) {
  return manifest.empty() ? repo_root / "artifact" / "code_manifest.txt" : manifest;
}

// The run's configuration with the user's packing settings on top; a changed model setting is an error.
Config resolve_pack_config(const PackRunOptions& o) {
  const fs::path run_config = o.run_dir / "config.json";
  if (!fs::exists(run_config)) fail("{}: no config.json (not a golf-train run directory)", o.run_dir.string());
  ConfigSources sources = o.sources;
  sources.json_files.insert(sources.json_files.begin(), run_config);
  const Config cfg = resolve_config(sources);
  std::ifstream in(run_config);
  const nlohmann::json run = nlohmann::json::parse(in);
  const nlohmann::json now = golf::to_json(cfg);
  for (const auto& key : artifact::model_setting_keys())
    if (run.contains(key) && run[key] != now[key])
      fail("{}={} differs from the run's {}={}: golf-pack only changes quantization settings", key, now[key].dump(), key,
           run[key].dump());
  return cfg;
}

std::string tensor_table(const QuantizeResult& r) {
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

// The counted-code table for the JSON report: compressor, totals and one row per file. candidates:
// every code compressor, null for one that could not run here (not_tried says why: no zpaq).
nlohmann::json code_json(const artifact::CodeSize& code) {
  nlohmann::json j = {{"compressor", code.compressor}, {"compressed_bytes", code.compressed_bytes},
                      {"raw_bytes", code.raw_bytes}, {"minified_bytes", code.minified_bytes}, {"not_tried", code.not_tried}};
  for (const std::string& name : artifact::code_compressors()) j["candidates"][name] = nullptr;
  for (const auto& [name, bytes] : code.candidates) j["candidates"][name] = bytes;
  for (const auto& r : code.rows)
    j["files"].push_back({{"path", r.path}, {"raw_bytes", r.raw_bytes}, {"minified_bytes", r.minified_bytes},
                          {"alone_bytes", r.alone_bytes}});
  return j;
}

}  // namespace

nlohmann::json PackReport::to_json() const {
  nlohmann::json j = {{"artifact", artifact.string()}, {"bytes_model", bytes_model},
                      {"bytes_code", bytes_code},       {"bytes_total", bytes_total()}, {"limit", limit},
                      {"code_files", code.files.size()}, {"code", code_json(code)},
                      {"quantize_seconds", quantize_seconds},
                      {"compressor", compressor},       {"compress_seconds", compress_seconds}};
  for (const auto& t : tensors)
    j["tensors"].push_back({{"name", t.name}, {"group", t.group}, {"bits", t.bits}, {"clip_sigmas", t.clip_sigmas},
                            {"params", t.params}, {"error_gptq", t.error_gptq}, {"error_rtn", t.error_rtn},
                            {"dead_columns", t.dead_columns}, {"rtn_fallback", t.rtn_fallback},
                            {"frob_error", t.frob_error}, {"lqer", t.lqer}, {"lqer_frob_error", t.lqer_frob_error}});
  if (pre_quant) j["pre_quant"] = {{"val_loss", pre_quant->val_loss}, {"val_bpb", pre_quant->val_bpb}};
  if (quantized) j["quantized"] = {{"val_loss", quantized->val_loss}, {"val_bpb", quantized->val_bpb}};
  return j;
}

nlohmann::json pack_report_schema() {
  PackReport r;
  r.code.files = {"model/model.cpp"};
  r.code.rows = {artifact::CodeFile{}};
  r.code.candidates = {{"xz-9e", 0}};
  r.tensors = {PackedTensor{}};
  r.pre_quant = r.quantized = ValScore{};
  return r.to_json();
}

PackReport run_pack(const PackRunOptions& o) {
  const Config cfg = resolve_pack_config(o);
  PackReport report;
  report.artifact = o.out.empty() ? o.run_dir / "final_model.golf" : o.out;
  report.json = report.artifact.string() + ".json";
  const auto weights = load_tensors(o.run_dir / "ema_model.safetensors");

  // Calibration is golf-train's (train/calibration.h): golf-pack links no trainer.
  std::map<std::string, at::Tensor> hessians;
  if (o.calib_batches > 0)
    fail("--calib-batches moved to golf-train: run `golf-train calibrate {} --batches {}`, then golf-pack",
         o.run_dir.string(), o.calib_batches);
  if (fs::exists(o.run_dir / "hessians.safetensors")) {
    hessians = load_tensors(o.run_dir / "hessians.safetensors");
  } else if (cfg.gptq_enabled) {
    fail("{} has no hessians.safetensors: run `golf-train calibrate {}` to compute them from the training shards",
         o.run_dir.string(), o.run_dir.string());
  }

  // The SMAT gate means travel with the weights (fp16 passthrough) for SMAT_ABLATION=g_mean.
  artifact::TensorMap to_pack = weights;
  if (const auto it = hessians.find(artifact::kSmatGateMeans); it != hessians.end()) to_pack[it->first] = it->second;
  const QuantizeResult q = quantize_model(to_pack, hessians, cfg, o.threads);
  artifact::PackOptions options;
  options.shuffle_stride = static_cast<int>(cfg.shuffle_stride);
  options.compressor = artifact::compressor_from_name(cfg.compressor);
  const auto pack_start = std::chrono::steady_clock::now();
  const auto bytes = artifact::serialize(q.artifact, options);
  const double pack_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - pack_start).count();
  const auto code = artifact::counted_code(o.repo_root, manifest_or_default(o.repo_root, o.manifest));
  artifact::Budget budget;
  budget.limit = cfg.artifact_budget;
  budget.artifact_bytes = static_cast<int64_t>(bytes.size());
  budget.code_bytes = code.compressed_bytes;
  // Attributing bytes to groups recompresses each group (as long again as packing): only when over.
  const auto groups = budget.fits() ? std::vector<artifact::GroupStats>{} : artifact::group_stats(q.artifact, options);

  std::fputs(tensor_table(q).c_str(), stdout);
  fmt::print("quantized {} tensors in {:.1f}s\n", q.tensors.size(), q.seconds);
  fmt::print("compressed with COMPRESSOR={} in {:.1f}s\n", cfg.compressor, pack_seconds);
  std::fputs(artifact::code_table(code).c_str(), stdout);
  std::fputs(artifact::budget_report(budget, groups).c_str(), stdout);
  std::fflush(stdout);
  if (!budget.fits())
    fail("{} bytes is over the {}-byte limit by {}; no artifact written", with_commas(budget.total()),
         with_commas(budget.limit), with_commas(budget.total() - budget.limit));
  artifact::write_artifact(report.artifact, bytes);

  report.bytes_model = budget.artifact_bytes;
  report.bytes_code = budget.code_bytes;
  report.limit = budget.limit;
  report.code = code;
  report.quantize_seconds = q.seconds;
  report.compressor = cfg.compressor;
  report.compress_seconds = pack_seconds;
  for (const auto& t : q.tensors)
    report.tensors.push_back({t.name, t.group, t.bits, t.clip_sigmas, t.params, t.error, t.error_rtn, t.dead_columns,
                              t.rtn_fallback, t.frob_error, t.lqer, t.lqer_frob_error});

  if (o.val) {
    const scoring::Validation validation(cfg);
    const bool looping = cfg.num_loops > 0;
    Model model(cfg, at::kCPU);
    model.load_state(weights);
    const auto pre = validation.evaluate(model, looping);
    artifact::load_model_weights(model, artifact::dequantize_model(artifact::deserialize(bytes, report.artifact.string())));
    const auto post = validation.evaluate(model, looping);
    fmt::print("pre-quantization post-ema val_loss:{:.8f} val_bpb:{:.8f}\n", pre.loss, pre.bpb);
    fmt::print("quantized val_loss:{:.8f} val_bpb:{:.8f} (gap {:+.5f} bpb)\n", post.loss, post.bpb, post.bpb - pre.bpb);
    report.pre_quant = ValScore{pre.loss, pre.bpb};
    report.quantized = ValScore{post.loss, post.bpb};
  }
  return report;
}

artifact::CodeSize run_code(const CodeOptions& o) {
  const artifact::CodeSize counted = artifact::counted_code(o.repo_root, manifest_or_default(o.repo_root, o.manifest), o.marginal);
  for (const std::string& file : counted.files) {  // for scripts/check_minified.py, which compiles them
    if (o.minified_dir.empty()) break;
    const auto bytes = artifact::read_file_bytes(o.repo_root / file);
    const std::string text(bytes.begin(), bytes.end());
    fs::create_directories((o.minified_dir / file).parent_path());
    write_file_atomic(o.minified_dir / file, artifact::is_cpp_source(file) ? artifact::minify_cpp(text, file) : text);
  }
  return counted;
}

std::string run_inspect(const fs::path& artifact_path, bool compress_groups) {
  const auto bytes = artifact::read_file_bytes(artifact_path);
  const artifact::Artifact artifact = artifact::deserialize(bytes, artifact_path.string());
  artifact::PackOptions options;
  const artifact::Header header = artifact::read_header(bytes, artifact_path.string());
  options.shuffle_stride = header.shuffle_stride;
  return artifact::describe(artifact, bytes, options, compress_groups);
}

UnpackReport run_unpack(const fs::path& artifact_path, const fs::path& out) {
  const auto bytes = artifact::read_file_bytes(artifact_path);
  const artifact::Artifact artifact = artifact::deserialize(bytes, artifact_path.string());
  Config cfg;
  const auto weights = artifact::dequantize_model(artifact, &cfg);
  save_tensors(out, weights, {{"config", golf::to_json(cfg).dump()}, {"format", "golf-weights-1"}});
  return {out, static_cast<int64_t>(weights.size())};
}

PlanReport run_plan(const PlanOptions& p) {
  const Config cfg = resolve_config(p.sources);  // defaults, --config, environment, --set (as golf-train)
  PlanReport report;
  if (!p.measure.empty()) {
    const auto bytes = artifact::read_file_bytes(p.measure);
    const artifact::Header header = artifact::read_header(bytes, p.measure.string());
    const artifact::Artifact artifact = artifact::deserialize(bytes, p.measure.string());
    // The artifact's tensors, written with this configuration's COMPRESSOR and SHUFFLE_STRIDE.
    artifact::PackOptions options;
    options.compressor = artifact::compressor_from_name(cfg.compressor);
    options.shuffle_stride = static_cast<int>(cfg.shuffle_stride);
    const Plan plan = layout(model_shapes(cfg), cfg, lqer_targets(artifact));
    const Measurement m = measure_artifact(artifact, options, plan, !p.total_only);
    if (header.compressor == options.compressor && header.shuffle_stride == options.shuffle_stride &&
        m.file_bytes != static_cast<int64_t>(bytes.size()))
      fail("{}: re-serializing gives {} bytes, the file has {}", p.measure.string(), m.file_bytes, bytes.size());
    nlohmann::json out = plan_json(plan);
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
    report.json = out.dump() + "\n";
    return report;
  }
  const int64_t code_bytes = artifact::counted_code(p.repo_root, manifest_or_default(p.repo_root, p.manifest)).compressed_bytes;
  nlohmann::json json;
  if (!p.fit.empty()) {
    if (p.margin < 0) fail("--margin {} must not be negative", p.margin);
    const FitResult r = fit_knob(cfg, p.fit, p.margin, code_bytes);
    report.text = plan_table(r.plan);
    report.text += fmt::format("fit: the largest {} whose predicted total fits {} - margin {} = {} bytes ({} plans)\n",
                               r.key, with_commas(cfg.artifact_budget), with_commas(p.margin),
                               with_commas(cfg.artifact_budget - p.margin), r.evaluated);
    report.text += fmt::format("{}\n", r.set_line());
    json = plan_json(r.plan);
    json["fit"] = {{"key", r.key}, {"value", r.value}, {"margin", p.margin}, {"set", r.set_line()}};
  } else {
    const Plan plan = plan_config(cfg, code_bytes);
    report.text = plan_table(plan);
    json = plan_json(plan);
  }
  report.json = json.dump(2) + "\n";
  return report;
}

}  // namespace golf::pack
