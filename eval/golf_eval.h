// eval/golf_eval.h — golf-eval as a call: EvalOptions (what the command line says) → run_eval →
// EvalReport, whose to_json() is eval.json. The CLI (eval/main.cpp) only parses arguments into
// EvalOptions, prints the report's summary and writes its JSON.
//
// run_eval prints the records' progress lines while it runs (stdout, rank 0); the summary table,
// the compliance lines and the final_*_exact line come from summary_text(report).
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/config.h"

namespace golf::eval {

namespace fs = std::filesystem;

struct EvalOptions {
  fs::path artifact;                 // written by golf-pack (.golf)
  fs::path out;                      // eval.json; empty: eval.json beside the artifact
  ConfigSources sources;             // --config, the environment, --set (model settings: the artifact's)
  bool ttt = false;                  // --ttt (TTT_ENABLED=1)
  std::string ttt_mode;              // --ttt-mode (TTT_MODE); implies --ttt
  bool no_plain = false, no_sliding = false;
  bool check = false, no_check = false;  // --check-compliance / --no-compliance (default: with TTT)
  int64_t stride = 0;                // --stride (EVAL_STRIDE); 0: the setting's
  fs::path repo_root;                // source tree whose counted code is measured
  fs::path manifest;                 // empty: REPO_ROOT/artifact/code_manifest.txt
  // The eval clock (load_seconds, total_seconds): golf-eval starts it with the process.
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

// One protocol's row of results{} (val_loss and val_bpb as exact float64 sums, tokens = predictions).
struct ProtocolResult {
  std::string name;                  // plain | sliding | ttt
  double val_loss = 0, val_bpb = 0, seconds = 0;
  int64_t tokens = 0, bytes = 0, windows = 0;
  std::optional<int64_t> stride;     // sliding: EVAL_STRIDE
  std::optional<int64_t> chunks;     // ttt (sgd)
  std::optional<int64_t> documents, batches, phases, global_steps, updates;  // ttt (lora, phased)
};

struct ComplianceResult {
  std::string check, status, detail;  // status PASS | FAIL | SKIP
  bool passed = true;
};

struct EvalReport {
  bool main_rank = true;             // false on ranks > 0: nothing to print or write
  fs::path out;                      // where eval.json goes (the options' out, or beside the artifact)
  fs::path artifact;
  int64_t bytes_model = 0;
  std::optional<int64_t> bytes_code; // counted code; absent when the source tree is not there:
  std::string bytes_code_error;      //   then this says why (bytes_total is absent too)
  std::string tokenizer, tokenizer_sha256, tokenizer_kind;
  std::vector<fs::path> val_files, val_sidecar_files;
  bool byte_sidecar = false;
  std::string device;
  Config config;                     // the resolved settings (the artifact's model settings pinned)
  std::vector<ProtocolResult> results;  // in the order run: plain, sliding, ttt
  std::vector<ComplianceResult> compliance;  // empty without compliance checks
  double load_seconds = 0, protocol_seconds = 0, compliance_seconds = 0, total_seconds = 0;
  double projected_8gpu_seconds = 0; // load + protocols × ranks / 8
  int world_size = 1;

  const ProtocolResult& final_result() const { return results.back(); }  // ttt > sliding > plain
  bool all_passed() const;
  // eval.json: {"artifact", "bytes_model", "bytes_code", "bytes_total" | "bytes_code_error", "tokenizer",
  // "tokenizer_sha256", "tokenizer_kind", "val_files", "byte_sidecar", "val_sidecar_files" (with
  // sidecars), "train_data_read": false, "device", "config", "results", "compliance", "final", "time"}
  nlohmann::json to_json() const;
};

// Every key eval.json can hold: the JSON of an example report with each optional part present (both
// alternatives of bytes_code; every protocol's fields; placeholder values). `golf-eval
// --print-report-schema` prints it; scripts/ check the keys they read against it.
nlohmann::json eval_report_schema();

// Scores the artifact. Throws golf::Error on bad input (before any output where it can). With
// --nproc every rank calls it; only rank 0's report has main_rank set.
EvalReport run_eval(const EvalOptions& options);

// The summary golf-eval prints after the protocols: the table, the compliance results, the times
// and the records' final_<protocol>_exact line.
std::string summary_text(const EvalReport& report);

}  // namespace golf::eval
