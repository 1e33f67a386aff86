// pack/golf_pack.h — golf-pack as calls: each subcommand's options (what the command line says) →
// one call → a report. The CLI (pack/main.cpp) only parses arguments, prints and writes.
//
//   run_pack    RUN_DIR → the artifact (written) and PackReport, whose to_json() is F.golf.json
//   run_code    the counted code (artifact/code_size.h), optionally its minified files written out
//   run_inspect an artifact described as text
//   run_unpack  an artifact's dequantized weights, written as safetensors
//   run_plan    the artifact's bytes predicted from a configuration (pack/plan.h), or --measure's data
//
// Settings come from the run's config.json, then --config files, the environment and --set (as in
// golf-train); only quantization/packing settings may differ from the run's model.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/config.h"
#include "artifact/code_size.h"

namespace golf::pack {

namespace fs = std::filesystem;

// ---- golf-pack RUN_DIR ----------------------------------------------------------------------
struct PackRunOptions {
  fs::path run_dir;           // golf-train run: config.json, ema_model.safetensors, hessians.safetensors
  fs::path out;               // the artifact; empty: RUN_DIR/final_model.golf (its report: OUT.json)
  ConfigSources sources;      // --config, the environment, --set (quantization settings only)
  int64_t calib_batches = 0;  // moved to `golf-train calibrate`: > 0 is an error naming that command
  int threads = 0;            // GPTQ worker threads (0: all cores)
  fs::path repo_root;         // source tree whose counted code is measured
  fs::path manifest;          // empty: REPO_ROOT/artifact/code_manifest.txt
  bool val = false;           // also score the val shards before and after quantization
};

// One quantized tensor's row of tensors[] (bits 16: fp16 passthrough).
struct PackedTensor {
  std::string name, group;
  int bits = 16;
  double clip_sigmas = 0;
  int64_t params = 0;
  double error_gptq = 0, error_rtn = 0;  // Hessian-weighted reconstruction error: GPTQ (or RTN) result, RTN
  int64_t dead_columns = 0;
  bool rtn_fallback = false;
  double frob_error = 0;                 // ‖W − Ŵ‖_F
  bool lqer = false;
  double lqer_frob_error = 0;            // ‖W − Ŵ − Â·B̂‖_F when lqer
};

struct ValScore {
  double val_loss = 0, val_bpb = 0;
};

struct PackReport {
  fs::path artifact, json;     // the artifact written, and where its report goes (ARTIFACT.json)
  int64_t bytes_model = 0, bytes_code = 0, limit = 0;
  int64_t bytes_total() const { return bytes_model + bytes_code; }
  artifact::CodeSize code;               // the counted code
  double quantize_seconds = 0, compress_seconds = 0;
  std::string compressor;      // COMPRESSOR
  std::vector<PackedTensor> tensors;
  std::optional<ValScore> pre_quant, quantized;  // with --val
  // F.golf.json: {"artifact", "bytes_model", "bytes_code", "bytes_total", "limit", "code_files", "code",
  // "quantize_seconds", "compressor", "compress_seconds", "tensors", and with --val "pre_quant", "quantized"}
  nlohmann::json to_json() const;
};

// Every key F.golf.json can hold: the JSON of an example report with each optional part present
// (placeholder values). `golf-pack --print-report-schema` prints it; scripts/ check the keys they
// read against it.
nlohmann::json pack_report_schema();

// Quantizes and packs the run; prints the tensor, code and budget tables as it goes. Over the byte
// limit: golf::Error and no artifact. Writes the artifact (not its JSON report: the caller writes
// report.to_json() to report.json).
PackReport run_pack(const PackRunOptions& options);

// ---- golf-pack code / inspect / unpack ------------------------------------------------------
struct CodeOptions {
  fs::path repo_root, manifest;  // manifest empty: REPO_ROOT/artifact/code_manifest.txt
  bool marginal = false;         // also each file's marginal bytes
  fs::path minified_dir;         // non-empty: write the counted files as archived (minified) under it
};
artifact::CodeSize run_code(const CodeOptions& options);

// compress_groups: also Brotli-11 each group alone (as long as packing with brotli: minutes at full size).
std::string run_inspect(const fs::path& artifact, bool compress_groups = false);

struct UnpackReport {
  fs::path out;
  int64_t tensors = 0;
};
// Writes the dequantized weights (as evaluation uses them) with the artifact's config as metadata.
UnpackReport run_unpack(const fs::path& artifact, const fs::path& out);

// ---- golf-pack plan -------------------------------------------------------------------------
struct PlanOptions {
  ConfigSources sources;
  fs::path repo_root, manifest;  // the counted code of the prediction
  fs::path json_out;             // also write the plan JSON here
  fs::path measure;              // calibration: this artifact's bytes by part
  std::string fit;               // dim | mlp | layers: the largest that fits
  int64_t margin = 160'000;      // 1 % of the budget: the planner's target accuracy
  bool total_only = false;       // --measure without the ablations
};
struct PlanReport {
  std::string text;              // what golf-pack plan prints (the table; with --fit, the --set line)
  std::string json;              // the plan's JSON text (--measure: one line; else indented)
};
PlanReport run_plan(const PlanOptions& options);

}  // namespace golf::pack
