// golf-eval — score an artifact on the validation split: plain rows, sliding window, score-first
// TTT, and the compliance checks that prove the score legal.
//
//   golf-eval ARTIFACT.golf [--out eval.json] [--ttt] [--ttt-mode sgd|lora|phased] [--no-plain] [--no-sliding] [--stride N]
//             [--check-compliance | --no-compliance] [--config F.json] [--set KEY=VALUE]...
//             [--nproc N [--nnodes …]]       (torchrun-style, as golf-train; see core/dist/launcher.h)
//
// With N ranks, every protocol cuts its windows (and TTT its training rows) into N contiguous
// shares; float64 sums, the coverage bitmap, the ledger and TTT gradients are summed across ranks.
// Rank 0 alone runs the compliance checks (on one process), prints and writes eval.json.
//
// DATA_PATH (validation shards only) and TOKENIZER_PATH come from --set, --config or the
// environment, as in golf-train. The model settings come from the artifact and cannot be changed.
// Output: progress on stderr; the records' log lines, a table and the compliance results on stdout;
// eval.json (written atomically). Exit status 0, 1 on an error, 3 when a compliance check fails.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>

#include "core/atomic_file.h"
#include "core/byte_sidecar.h"
#include "core/byte_table.h"
#include "core/device.h"
#include "core/error.h"
#include "core/main_error.h"
#include "model/model.h"
#include "core/dist/comm.h"
#include "core/dist/launcher.h"
#include "core/tokenizer.h"
#include "scoring/compliance.h"
#include "scoring/ledger.h"
#include "scoring/protocols.h"
#include "scoring/val_data.h"
#include "artifact/artifact.h"
#include "artifact/code_size.h"
#include "artifact/unpack_model.h"

namespace fs = std::filesystem;
using namespace golf;
using namespace golf::eval;

namespace {

const auto kProcessStart = std::chrono::steady_clock::now();  // the eval clock starts with the process

double since_start() { return std::chrono::duration<double>(std::chrono::steady_clock::now() - kProcessStart).count(); }

struct EvalArgs {
  fs::path artifact, out;
  ConfigSources sources;
  bool ttt = false, no_plain = false, no_sliding = false, check = false, no_check = false;
  std::string ttt_mode;  // --ttt-mode (TTT_MODE); implies --ttt
  int64_t stride = 0;
  fs::path repo_root = GOLF_SOURCE_DIR, manifest;
};

// The user's evaluation settings with the artifact's model settings pinned on top (eval-time
// switches such as SMAT_ABLATION are validated against the artifact's model).
Config resolve_eval_config(EvalArgs& a, const pack::Artifact& artifact) {
  a.sources.pinned_json = artifact.config_json;
  a.sources.pinned_source = "the artifact " + a.artifact.string() + " (model settings)";
  // The protocol flags are the last --set, so resolve_config() validates everything once.
  if (a.stride > 0) a.sources.overrides.push_back("EVAL_STRIDE=" + std::to_string(a.stride));
  if (!a.ttt_mode.empty()) {
    a.sources.overrides.push_back("TTT_MODE=" + a.ttt_mode);
    a.ttt = true;
  }
  if (a.ttt) a.sources.overrides.push_back("TTT_ENABLED=1");
  const Config cfg = resolve_config(a.sources);
  if (cfg.ttt_enabled && cfg.ttt_mode != "sgd") validate_lora(cfg, LoraOptions::from(cfg));  // before any output
  return cfg;
}

nlohmann::json totals_json(const Totals& t) {
  return {{"val_loss", t.loss()}, {"val_bpb", t.bpb()}, {"tokens", t.predictions}, {"bytes", t.bytes},
          {"seconds", t.seconds}, {"windows", t.windows}};
}

int run_eval(EvalArgs& a) {
  // ---- inputs: the artifact, the tokenizer, the validation shards (nothing else) ----------------
  const auto artifact_bytes = pack::read_file_bytes(a.artifact);
  const pack::Artifact artifact = pack::deserialize(artifact_bytes, a.artifact.string());
  const Config cfg = resolve_eval_config(a, artifact);
  const auto weights = pack::dequantize_model(artifact);
  const dist::World world = dist::world_from_env();
  const at::Device device = pick_device(cfg.device, world.local_rank);  // core/device.h
  dist::Comm comm(world, device, std::chrono::milliseconds(static_cast<int64_t>(1000 * cfg.dist_timeout_seconds)));
  Ranks ranks{world.rank, world.world_size, {}};
  if (comm.distributed())  // NCCL reduces device tensors, Gloo CPU ones: move there and back
    ranks.sum = [&comm, device](at::Tensor& t) {
      if (t.device() == device) return comm.all_reduce_sum(t);
      at::Tensor on = t.to(device);
      comm.all_reduce_sum(on);
      t.copy_(on);
    };
  const bool main_rank = world.main();
  const ValData val = load_val(cfg);
  const Tokenizer tokenizer = Tokenizer::load(cfg.tokenizer_path);
  check_tokenizer_for_data(tokenizer, cfg.vocab_size, val.has_sidecar(), cfg.data_path);
  // The artifact names the tokenizer its model was trained with (TOKENIZER_SHA256, pinned from it).
  if (cfg.tokenizer_sha256.empty()) {
    if (main_rank)
      fmt::print("warning: the artifact does not record its tokenizer (packed before golf recorded it); cannot check "
                 "that TOKENIZER_PATH {} is the one the model was trained with\n", tokenizer.describe());
  } else if (cfg.tokenizer_sha256 != tokenizer.sha256()) {
    fail("TOKENIZER_PATH {} ({}, sha256 {}) is not the tokenizer the model was trained with ({}, sha256 {}, "
         "recorded in the artifact {})",
         cfg.tokenizer_path, tokenizer.kind(), tokenizer.sha256(), cfg.tokenizer_kind, cfg.tokenizer_sha256,
         a.artifact.string());
  }
  const ByteTable table = ByteTable::build(tokenizer, static_cast<int>(cfg.vocab_size));
  const int64_t M = val.predictions;
  Stream stream{val.tokens, M, &table, {}};
  stream.sidecar = val.sidecar;  // CaseOps: the byte sidecar replaces the table
  const bool compliance = !a.no_check && (a.check || cfg.ttt_enabled);

  auto make_lm = [&]() -> std::unique_ptr<LanguageModel> {
    auto model = std::make_shared<Model>(cfg, device);
    pack::load_model_weights(*model, weights);  // SMAT gate means, if any, go to the model
    return std::make_unique<ModelLM>(model, cfg);
  };
  const double load_seconds = since_start();
  if (main_rank) fmt::print("golf-eval: {} ({} bytes) on {}; {} validation predictions from {} shard(s); EVAL_SEQ_LEN={}\n",
             a.artifact.string(), artifact_bytes.size(), device.str(), M, val.files.size(), cfg.eval_seq_len);
  if (main_rank) fmt::print("golf-eval: reads only fineweb_val_*.bin under DATA_PATH and does not link the training loader: "
             "training data is never read\n");
  if (main_rank && val.has_sidecar()) {
    int64_t sum = 0;
    for (int64_t j = 0; j < M; ++j) sum += val.sidecar[static_cast<size_t>(j + 1)];
    fmt::print("val_bpb:byte_sidecar:enabled files:{} bytes_sum:{} (CaseOps: bytes per prediction from the sidecar, "
               "not the tokenizer's table)\n", val.sidecar_files.size(), sum);
  }
  std::fflush(stdout);

  nlohmann::json report;
  report["artifact"] = a.artifact.string();
  report["bytes_model"] = static_cast<int64_t>(artifact_bytes.size());
  try {
    const auto code = pack::counted_code(a.repo_root, a.manifest.empty() ? a.repo_root / "artifact/code_manifest.txt" : a.manifest);
    report["bytes_code"] = code.compressed_bytes;
    report["bytes_total"] = static_cast<int64_t>(artifact_bytes.size()) + code.compressed_bytes;
  } catch (const Error& e) {
    report["bytes_code"] = nullptr;  // the source tree is not here: say so rather than guess
    report["bytes_code_error"] = e.what();
  }
  report["tokenizer"] = cfg.tokenizer_path;
  report["tokenizer_sha256"] = tokenizer.sha256();
  report["tokenizer_kind"] = tokenizer.kind();
  for (const auto& f : val.files) report["val_files"].push_back(f.string());
  report["byte_sidecar"] = val.has_sidecar();
  for (const auto& f : val.sidecar_files) report["val_sidecar_files"].push_back(f.string());
  report["train_data_read"] = false;
  report["device"] = device.str();
  report["config"] = to_json(cfg);

  // ---- protocols ------------------------------------------------------------------------------
  std::vector<CoverageEntry> coverage;
  UpdateReport updates;
  std::vector<std::pair<std::string, Totals>> rows;
  auto record = [&](const char* name, const char* log_name, const Totals& t) {
    if (main_rank) fmt::print("{} val_loss:{:.8f} val_bpb:{:.8f} eval_time:{:.0f}ms\n", log_name, t.loss(), t.bpb(), t.seconds * 1000);
    std::fflush(stdout);
    report["results"][name] = totals_json(t);
    rows.emplace_back(name, t);
  };
  std::unique_ptr<LanguageModel> lm = make_lm();
  if (!a.no_plain) {
    Ledger ledger(M);
    const Totals t = plain(*lm, stream, cfg, ranks, {&ledger, nullptr, main_rank});
    merge_ledger(ledger, ranks);
    coverage.push_back({"plain", ledger.coverage(), t.windows, (M + cfg.eval_seq_len - 1) / cfg.eval_seq_len});
    record("plain", "quantized", t);
  }
  if (!a.no_sliding) {
    Ledger ledger(M);
    const Totals t = sliding(*lm, stream, cfg, ranks, {&ledger, nullptr, main_rank});
    merge_ledger(ledger, ranks);
    coverage.push_back({"sliding", ledger.coverage(), t.windows, expected_sliding_windows(M, cfg.eval_seq_len, cfg.eval_stride)});
    record("sliding", "quantized_sliding_window", t);
    report["results"]["sliding"]["stride"] = cfg.eval_stride;
  }
  const bool lora_mode = cfg.ttt_enabled && cfg.ttt_mode != "sgd";
  if (cfg.ttt_enabled && !lora_mode) {
    auto fresh = make_lm();  // TTT adapts its own copy of the artifact's weights
    Ledger ledger(M);
    const Totals t = ttt(*fresh, stream, cfg, TttOptions::from(cfg), ranks, {&ledger, nullptr, main_rank});
    merge_ledger(ledger, ranks);
    coverage.push_back({"ttt", ledger.coverage(), t.windows, expected_sliding_windows(M, cfg.eval_seq_len, cfg.eval_stride)});
    updates = ledger.updates();
    record("ttt", "quantized_ttt", t);
    report["results"]["ttt"]["chunks"] = t.chunks;
  }
  if (lora_mode) {  // LoRA TTT, or phased TTT (LoRA + global SGD phases)
    auto fresh = make_lm();
    Ledger ledger(M);
    const Totals t = lora_ttt(*fresh, stream, cfg, LoraOptions::from(cfg), ranks, {&ledger, nullptr, main_rank});
    merge_ledger(ledger, ranks);
    coverage.push_back({"ttt", ledger.coverage(), t.windows, -1});
    updates = ledger.updates();
    record("ttt", cfg.ttt_mode == "phased" ? "quantized_ttt_phased" : "quantized_ttt_lora", t);
    auto& r = report["results"]["ttt"];
    r["documents"] = t.documents;
    r["batches"] = t.batches;
    r["phases"] = t.phases;
    r["global_steps"] = t.global_steps;
    r["updates"] = updates.updates;
  }
  if (cfg.ttt_enabled) {  // which TTT ran, with its settings (make_record.py copies these)
    // The eval stage's TTT settings (the stage table, core/config.h); phased TTT's own only for it.
    nlohmann::json settings;
    const nlohmann::json all = to_json(cfg);
    for (const std::string& k : stage_fields("eval"))
      if (k.starts_with("TTT_") || (cfg.ttt_mode == "phased" && k.find("_TTT_") != std::string::npos))
        settings[k] = all.at(k);
    report["results"]["ttt"]["mode"] = cfg.ttt_mode;
    report["results"]["ttt"]["settings"] = settings;
  }
  if (rows.empty()) fail("nothing to evaluate: --no-plain and --no-sliding without --ttt");
  double protocol_seconds = 0;
  for (const auto& [_, t] : rows) protocol_seconds += t.seconds;

  // ---- compliance -----------------------------------------------------------------------------
  std::vector<CheckResult> checks;
  const double compliance_start = since_start();
  if (compliance && main_rank) {
    const bool cuda = device.is_cuda();
    const double causal_tol = cuda ? 1e-4 : 1e-6, isolation_tol = cuda ? 5e-2 : 1e-5;  // bf16 on CUDA
    const auto factory = [&] { return make_lm(); };
    checks.push_back(check_causality(factory, val.tokens, table, cfg, causality_probe("sliding", cfg, M), causal_tol));
    if (cfg.ttt_enabled && !lora_mode)
      checks.push_back(check_causality(factory, val.tokens, table, cfg, causality_probe("ttt", cfg, M), causal_tol));
    if (lora_mode)
      checks.push_back(check_causality(factory, val.tokens, table, cfg,
                                       lora_causality_probe(cfg, val.tokens, M, LoraOptions::from(cfg)), causal_tol));
    checks.push_back(check_normalization(*lm, val.tokens, cfg));
    checks.push_back(check_score_before_update(updates, cfg.ttt_enabled != 0));
    checks.push_back(check_single_pass(coverage));
    checks.push_back(check_document_isolation(*lm, val.tokens, cfg, isolation_tol));
    if (lora_mode && !cfg.ttt_warm_start_a)  // warm-start A claims no document independence
      checks.push_back(check_lora_document_isolation(factory, val.tokens, table, cfg, LoraOptions::from(cfg), isolation_tol));
    checks.push_back(check_byte_recount(val.tokens, M, table, tokenizer, val.sidecar));
  }
  const double compliance_seconds = since_start() - compliance_start;
  comm.barrier();  // the other ranks wait while rank 0 checks
  if (!main_rank) return 0;
  bool all_pass = true;
  for (const auto& c : checks) {
    all_pass = all_pass && c.passed();
    report["compliance"].push_back({{"check", c.check}, {"status", c.status}, {"passed", c.passed()}, {"detail", c.detail}});
  }
  if (checks.empty()) report["compliance"] = nlohmann::json::array();

  // ---- summary --------------------------------------------------------------------------------
  const auto& [final_name, final_totals] = rows.back();  // ttt > sliding > plain
  const char* final_log = final_name == "ttt" ? "ttt" : final_name == "sliding" ? "sliding_window" : "roundtrip";
  report["final"] = {{"protocol", final_name}, {"val_loss", final_totals.loss()}, {"val_bpb", final_totals.bpb()}};
  const double total = since_start();
  const double projected = load_seconds + protocol_seconds * ranks.world / 8.0;
  report["time"] = {{"load_seconds", load_seconds},       {"protocol_seconds", protocol_seconds},
                    {"compliance_seconds", compliance_seconds}, {"total_seconds", total},
                    {"projected_8gpu_seconds", projected}, {"world_size", ranks.world}};

  fmt::print("\n{:<10} {:>12} {:>12} {:>12} {:>12} {:>10}\n", "protocol", "val_loss", "val_bpb", "tokens", "bytes", "time");
  for (const auto& [name, t] : rows)
    fmt::print("{:<10} {:>12.8f} {:>12.8f} {:>12} {:>12} {:>9.1f}s\n", name, t.loss(), t.bpb(), t.predictions, t.bytes, t.seconds);
  if (!checks.empty()) {
    fmt::print("\ncompliance ({:.1f}s):\n", compliance_seconds);
    for (const auto& c : checks) fmt::print("  {:<4} {:<20} {}\n", c.status, c.check, c.detail);
  }
  fmt::print("\ntime from process start: {:.1f}s (load {:.1f}s, protocols {:.1f}s, compliance {:.1f}s)\n", total, load_seconds,
             protocol_seconds, compliance_seconds);
  fmt::print("projected eval time on 8 GPUs: {:.1f}s (load + protocols x {} rank(s) / 8: linear scaling over devices "
             "like this one ({}); compliance checks excluded)\n",
             projected, ranks.world, device.is_cuda() ? "CUDA" : "CPU, so not an H100 estimate");
  if (projected > cfg.eval_time_limit)
    fmt::print("warning: projected eval time {:.0f}s exceeds EVAL_TIME_LIMIT={:.0f}s\n", projected, cfg.eval_time_limit);
  fmt::print("final_{}_exact val_loss:{:.8f} val_bpb:{:.8f}\n", final_log, final_totals.loss(), final_totals.bpb());

  const fs::path out = a.out.empty() ? a.artifact.parent_path() / "eval.json" : a.out;
  write_file_atomic(out, report.dump(2) + "\n");
  fmt::print("wrote {}\n", out.string());
  if (!all_pass) {
    std::fprintf(stderr, "golf-eval: a compliance check FAILED (see above)\n");
    return 3;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"golf-eval: exact bits per byte of an artifact — plain, sliding window, score-first TTT — with compliance checks"};
  EvalArgs a;
  app.add_option("artifact", a.artifact, "artifact written by golf-pack (.golf)")->required()->check(CLI::ExistingFile);
  app.add_option("--out", a.out, "results JSON (default: eval.json beside the artifact)");
  app.add_flag("--ttt", a.ttt, "score-first test-time training (also TTT_ENABLED=1); TTT_MODE picks which");
  app.add_option("--ttt-mode", a.ttt_mode, "sgd (global SGD), lora (document LoRA) or phased (LoRA + global SGD phases); implies --ttt");
  app.add_flag("--no-plain", a.no_plain, "skip the plain (non-overlapping rows) evaluation");
  app.add_flag("--no-sliding", a.no_sliding, "skip the sliding-window evaluation");
  app.add_option("--stride", a.stride, "sliding-window stride (EVAL_STRIDE)");
  app.add_flag("--check-compliance", a.check, "run the compliance checks (default with --ttt)");
  app.add_flag("--no-compliance", a.no_check, "skip the compliance checks");
  app.add_option("--config", a.sources.json_files, "JSON settings (repeatable)")->check(CLI::ExistingFile);
  app.add_option("--set", a.sources.overrides, "KEY=VALUE evaluation setting (repeatable)");
  app.add_option("--repo-root", a.repo_root, "source tree whose counted code is measured");
  app.add_option("--manifest", a.manifest, "counted-code manifest (default REPO_ROOT/artifact/code_manifest.txt)");
  dist::LaunchOptions launch;
  dist::add_launch_options(app, launch);
  CLI11_PARSE(app, argc, argv);
  try {
    a.sources.environment = current_environment();
    if (dist::should_launch(launch)) return dist::launch(launch, argc, argv);
    return run_eval(a);
  } catch (...) {
    return golf::main_error("golf-eval");  // core/main_error.h
  }
}
