// eval/golf_eval.cpp — run_eval: the artifact, the tokenizer and the val shards in; the protocols,
// the compliance checks and the EvalReport out (eval/golf_eval.h).
#include "eval/golf_eval.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "core/byte_sidecar.h"
#include "core/byte_table.h"
#include "core/device.h"
#include "core/dist/comm.h"
#include "core/error.h"
#include "model/model.h"
#include "core/tokenizer.h"
#include "scoring/compliance.h"
#include "scoring/ledger.h"
#include "scoring/protocols.h"
#include "scoring/val_data.h"
#include "artifact/artifact.h"
#include "artifact/code_size.h"
#include "artifact/unpack_model.h"

namespace golf::eval {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The user's evaluation settings with the artifact's model settings pinned on top (eval-time
// switches such as SMAT_ABLATION are validated against the artifact's model).
Config resolve_eval_config(const EvalOptions& o, const artifact::Artifact& artifact) {
  ConfigSources sources = o.sources;
  sources.pinned_json = artifact.config_json;
  sources.pinned_source = "the artifact " + o.artifact.string() + " (model settings)";
  // The protocol flags are the last --set, so resolve_config() validates everything once.
  if (o.stride > 0) sources.overrides.push_back("EVAL_STRIDE=" + std::to_string(o.stride));
  if (!o.ttt_mode.empty()) sources.overrides.push_back("TTT_MODE=" + o.ttt_mode);
  if (o.ttt || !o.ttt_mode.empty()) sources.overrides.push_back("TTT_ENABLED=1");
  const Config cfg = resolve_config(sources);
  if (cfg.ttt_enabled && cfg.ttt_mode != "sgd") scoring::validate_lora(cfg, scoring::LoraOptions::from(cfg, cfg.seed));  // before any output
  return cfg;
}

ProtocolResult protocol_result(const std::string& name, const scoring::Totals& t) {
  ProtocolResult r;
  r.name = name;
  r.val_loss = t.loss();
  r.val_bpb = t.bpb();
  r.tokens = t.predictions;
  r.bytes = t.bytes;
  r.seconds = t.seconds;
  r.windows = t.windows;
  return r;
}

}  // namespace

bool EvalReport::all_passed() const {
  for (const auto& c : compliance)
    if (!c.passed) return false;
  return true;
}

nlohmann::json EvalReport::to_json() const {
  nlohmann::json j;
  j["artifact"] = artifact.string();
  j["bytes_model"] = bytes_model;
  if (bytes_code) {
    j["bytes_code"] = *bytes_code;
    j["bytes_total"] = bytes_model + *bytes_code;
  } else {
    j["bytes_code"] = nullptr;  // the source tree is not here: say so rather than guess
    j["bytes_code_error"] = bytes_code_error;
  }
  j["tokenizer"] = tokenizer;
  j["tokenizer_sha256"] = tokenizer_sha256;
  j["tokenizer_kind"] = tokenizer_kind;
  for (const auto& f : val_files) j["val_files"].push_back(f.string());
  j["byte_sidecar"] = byte_sidecar;
  for (const auto& f : val_sidecar_files) j["val_sidecar_files"].push_back(f.string());
  j["train_data_read"] = false;
  j["device"] = device;
  const nlohmann::json settings_all = golf::to_json(config);
  j["config"] = settings_all;
  for (const auto& r : results) {
    nlohmann::json row = {{"val_loss", r.val_loss}, {"val_bpb", r.val_bpb}, {"tokens", r.tokens}, {"bytes", r.bytes},
                          {"seconds", r.seconds},   {"windows", r.windows}};
    if (r.stride) row["stride"] = *r.stride;
    if (r.chunks) row["chunks"] = *r.chunks;
    if (r.documents) row["documents"] = *r.documents;
    if (r.batches) row["batches"] = *r.batches;
    if (r.phases) row["phases"] = *r.phases;
    if (r.global_steps) row["global_steps"] = *r.global_steps;
    if (r.updates) row["updates"] = *r.updates;
    if (r.name == "ttt") {  // which TTT ran, with its settings (make_record.py copies these)
      // The eval stage's TTT settings (the stage table, core/config.h); phased TTT's own only for it.
      nlohmann::json settings;
      for (const std::string& k : stage_fields("eval"))
        if (k.starts_with("TTT_") || (config.ttt_mode == "phased" && k.find("_TTT_") != std::string::npos))
          settings[k] = settings_all.at(k);
      row["mode"] = config.ttt_mode;
      row["settings"] = settings;
    }
    j["results"][r.name] = row;
  }
  j["compliance"] = nlohmann::json::array();
  for (const auto& c : compliance)
    j["compliance"].push_back({{"check", c.check}, {"status", c.status}, {"passed", c.passed}, {"detail", c.detail}});
  if (!results.empty()) {
    const ProtocolResult& f = final_result();
    j["final"] = {{"protocol", f.name}, {"val_loss", f.val_loss}, {"val_bpb", f.val_bpb}};
  }
  j["time"] = {{"load_seconds", load_seconds},       {"protocol_seconds", protocol_seconds},
               {"compliance_seconds", compliance_seconds}, {"total_seconds", total_seconds},
               {"projected_8gpu_seconds", projected_8gpu_seconds}, {"world_size", world_size}};
  return j;
}

nlohmann::json eval_report_schema() {
  EvalReport r;
  r.bytes_code = 0;
  r.val_files = {"fineweb_val_000000.bin"};
  r.val_sidecar_files = {"fineweb_val_bytes_000000.bin"};
  r.config.ttt_mode = "phased";  // every TTT setting in results.ttt.settings
  r.results.resize(3);
  r.results[0].name = "plain";
  r.results[1].name = "sliding";
  r.results[2].name = "ttt";
  r.results[1].stride = 0;
  ProtocolResult& t = r.results[2];
  t.chunks = t.documents = t.batches = t.phases = t.global_steps = t.updates = 0;
  r.compliance = {{"causality", "PASS", "", true}};
  nlohmann::json j = r.to_json();
  j["bytes_code_error"] = "";  // the other alternative: no source tree (bytes_code null, no bytes_total)
  return j;
}

EvalReport run_eval(const EvalOptions& o) {
  // ---- inputs: the artifact, the tokenizer, the validation shards (nothing else) ----------------
  const auto artifact_bytes = artifact::read_file_bytes(o.artifact);
  const artifact::Artifact artifact = artifact::deserialize(artifact_bytes, o.artifact.string());
  const Config cfg = resolve_eval_config(o, artifact);
  const auto weights = artifact::dequantize_model(artifact);
  const dist::World world = dist::world_from_env();
  const at::Device device = pick_device(cfg.device, world.local_rank);  // core/device.h
  dist::Comm comm(world, device, std::chrono::milliseconds(static_cast<int64_t>(1000 * cfg.dist_timeout_seconds)));
  scoring::Ranks ranks{world.rank, world.world_size, {}};
  if (comm.distributed())  // NCCL reduces device tensors, Gloo CPU ones: move there and back
    ranks.sum = [&comm, device](at::Tensor& t) {
      if (t.device() == device) return comm.all_reduce_sum(t);
      at::Tensor on = t.to(device);
      comm.all_reduce_sum(on);
      t.copy_(on);
    };
  const bool main_rank = world.main();
  const scoring::ValData val = scoring::load_val(cfg);
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
         o.artifact.string());
  }
  const ByteTable table = ByteTable::build(tokenizer, static_cast<int>(cfg.vocab_size));
  const int64_t M = val.predictions;
  const scoring::Stream stream{val.tokens, M, &table, {}, val.sidecar};  // CaseOps: the byte sidecar replaces the table
  const bool compliance = !o.no_check && (o.check || cfg.ttt_enabled);

  auto make_lm = [&]() -> std::unique_ptr<scoring::LanguageModel> {
    auto model = std::make_shared<Model>(cfg, device);
    artifact::load_model_weights(*model, weights);  // SMAT gate means, if any, go to the model
    return std::make_unique<scoring::ModelLM>(model, cfg);
  };
  const double load_seconds = seconds_since(o.start);
  if (main_rank) fmt::print("golf-eval: {} ({} bytes) on {}; {} validation predictions from {} shard(s); EVAL_SEQ_LEN={}\n",
             o.artifact.string(), artifact_bytes.size(), device.str(), M, val.files.size(), cfg.eval_seq_len);
  if (main_rank) fmt::print("golf-eval: reads only fineweb_val_*.bin under DATA_PATH and does not link the training loader: "
             "training data is never read\n");
  if (main_rank && val.has_sidecar()) {
    int64_t sum = 0;
    for (int64_t j = 0; j < M; ++j) sum += val.sidecar[static_cast<size_t>(j + 1)];
    fmt::print("val_bpb:byte_sidecar:enabled files:{} bytes_sum:{} (CaseOps: bytes per prediction from the sidecar, "
               "not the tokenizer's table)\n", val.sidecar_files.size(), sum);
  }
  std::fflush(stdout);

  EvalReport report;
  report.main_rank = main_rank;
  report.out = o.out.empty() ? o.artifact.parent_path() / "eval.json" : o.out;
  report.artifact = o.artifact;
  report.bytes_model = static_cast<int64_t>(artifact_bytes.size());
  try {
    const fs::path manifest = o.manifest.empty() ? o.repo_root / "artifact/code_manifest.txt" : o.manifest;
    report.bytes_code = artifact::counted_code(o.repo_root, manifest).compressed_bytes;
  } catch (const Error& e) {
    report.bytes_code_error = e.what();
  }
  report.tokenizer = cfg.tokenizer_path;
  report.tokenizer_sha256 = tokenizer.sha256();
  report.tokenizer_kind = tokenizer.kind();
  report.val_files = val.files;
  report.byte_sidecar = val.has_sidecar();
  report.val_sidecar_files = val.sidecar_files;
  report.device = device.str();
  report.config = cfg;

  // ---- protocols ------------------------------------------------------------------------------
  std::vector<scoring::CoverageEntry> coverage;
  scoring::UpdateReport updates;
  auto record = [&](const char* name, const char* log_name, const scoring::Totals& t) -> ProtocolResult& {
    if (main_rank) fmt::print("{} val_loss:{:.8f} val_bpb:{:.8f} eval_time:{:.0f}ms\n", log_name, t.loss(), t.bpb(), t.seconds * 1000);
    std::fflush(stdout);
    report.results.push_back(protocol_result(name, t));
    return report.results.back();
  };
  std::unique_ptr<scoring::LanguageModel> lm = make_lm();
  if (!o.no_plain) {
    scoring::Ledger ledger(M);
    const scoring::Totals t = scoring::plain(*lm, stream, cfg, ranks, {&ledger, nullptr, main_rank});
    scoring::merge_ledger(ledger, ranks);
    coverage.push_back({"plain", ledger.coverage(), t.windows, (M + cfg.eval_seq_len - 1) / cfg.eval_seq_len});
    record("plain", "quantized", t);
  }
  if (!o.no_sliding) {
    scoring::Ledger ledger(M);
    const scoring::Totals t = scoring::sliding(*lm, stream, cfg, ranks, {&ledger, nullptr, main_rank});
    scoring::merge_ledger(ledger, ranks);
    coverage.push_back({"sliding", ledger.coverage(), t.windows, scoring::expected_sliding_windows(M, cfg.eval_seq_len, cfg.eval_stride)});
    record("sliding", "quantized_sliding_window", t).stride = cfg.eval_stride;
  }
  const bool lora_mode = cfg.ttt_enabled && cfg.ttt_mode != "sgd";
  if (cfg.ttt_enabled && !lora_mode) {
    auto fresh = make_lm();  // TTT adapts its own copy of the artifact's weights
    scoring::Ledger ledger(M);
    const scoring::Totals t = scoring::ttt(*fresh, stream, cfg, scoring::TttOptions::from(cfg), ranks, {&ledger, nullptr, main_rank});
    scoring::merge_ledger(ledger, ranks);
    coverage.push_back({"ttt", ledger.coverage(), t.windows, scoring::expected_sliding_windows(M, cfg.eval_seq_len, cfg.eval_stride)});
    updates = ledger.updates();
    record("ttt", "quantized_ttt", t).chunks = t.chunks;
  }
  if (lora_mode) {  // LoRA TTT, or phased TTT (LoRA + global SGD phases)
    auto fresh = make_lm();
    scoring::Ledger ledger(M);
    const scoring::Totals t = scoring::lora_ttt(*fresh, stream, cfg, scoring::LoraOptions::from(cfg, cfg.seed), ranks, {&ledger, nullptr, main_rank});
    scoring::merge_ledger(ledger, ranks);
    coverage.push_back({"ttt", ledger.coverage(), t.windows, -1});
    updates = ledger.updates();
    ProtocolResult& r = record("ttt", cfg.ttt_mode == "phased" ? "quantized_ttt_phased" : "quantized_ttt_lora", t);
    r.documents = t.documents;
    r.batches = t.batches;
    r.phases = t.phases;
    r.global_steps = t.global_steps;
    r.updates = updates.updates;
  }
  if (report.results.empty()) fail("nothing to evaluate: --no-plain and --no-sliding without --ttt");
  for (const auto& r : report.results) report.protocol_seconds += r.seconds;

  // ---- compliance -----------------------------------------------------------------------------
  std::vector<scoring::CheckResult> checks;
  const double compliance_start = seconds_since(o.start);
  if (compliance && main_rank) {
    const bool cuda = device.is_cuda();
    const double causal_tol = cuda ? 1e-4 : 1e-6, isolation_tol = cuda ? 5e-2 : 1e-5;  // bf16 on CUDA
    const auto factory = [&] { return make_lm(); };
    checks.push_back(scoring::check_causality(factory, val.tokens, table, cfg, scoring::causality_probe("sliding", cfg, M), causal_tol));
    if (cfg.ttt_enabled && !lora_mode)
      checks.push_back(scoring::check_causality(factory, val.tokens, table, cfg, scoring::causality_probe("ttt", cfg, M), causal_tol));
    if (lora_mode)
      checks.push_back(scoring::check_causality(factory, val.tokens, table, cfg,
                                       scoring::lora_causality_probe(cfg, val.tokens, M, scoring::LoraOptions::from(cfg, cfg.seed)), causal_tol));
    checks.push_back(scoring::check_normalization(*lm, val.tokens, cfg));
    checks.push_back(scoring::check_score_before_update(updates, cfg.ttt_enabled != 0));
    checks.push_back(scoring::check_single_pass(coverage));
    checks.push_back(scoring::check_document_isolation(*lm, val.tokens, cfg, isolation_tol));
    if (lora_mode && !cfg.ttt_warm_start_a)  // warm-start A claims no document independence
      checks.push_back(scoring::check_lora_document_isolation(factory, val.tokens, table, cfg, scoring::LoraOptions::from(cfg, cfg.seed), isolation_tol));
    checks.push_back(scoring::check_byte_recount(val.tokens, M, table, tokenizer, val.sidecar));
  }
  report.compliance_seconds = seconds_since(o.start) - compliance_start;
  comm.barrier();  // the other ranks wait while rank 0 checks
  for (const auto& c : checks) report.compliance.push_back({c.check, c.status, c.detail, c.passed()});

  report.load_seconds = load_seconds;
  report.total_seconds = seconds_since(o.start);
  report.world_size = ranks.world;
  report.projected_8gpu_seconds = load_seconds + report.protocol_seconds * ranks.world / 8.0;
  return report;
}

std::string summary_text(const EvalReport& r) {
  std::string s = fmt::format("\n{:<10} {:>12} {:>12} {:>12} {:>12} {:>10}\n", "protocol", "val_loss", "val_bpb", "tokens",
                              "bytes", "time");
  for (const auto& p : r.results)
    s += fmt::format("{:<10} {:>12.8f} {:>12.8f} {:>12} {:>12} {:>9.1f}s\n", p.name, p.val_loss, p.val_bpb, p.tokens,
                     p.bytes, p.seconds);
  if (!r.compliance.empty()) {
    s += fmt::format("\ncompliance ({:.1f}s):\n", r.compliance_seconds);
    for (const auto& c : r.compliance) s += fmt::format("  {:<4} {:<20} {}\n", c.status, c.check, c.detail);
  }
  s += fmt::format("\ntime from process start: {:.1f}s (load {:.1f}s, protocols {:.1f}s, compliance {:.1f}s)\n",
                   r.total_seconds, r.load_seconds, r.protocol_seconds, r.compliance_seconds);
  const bool cuda = r.device.starts_with("cuda");
  s += fmt::format("projected eval time on 8 GPUs: {:.1f}s (load + protocols x {} rank(s) / 8: linear scaling over devices "
                   "like this one ({}); compliance checks excluded)\n",
                   r.projected_8gpu_seconds, r.world_size, cuda ? "CUDA" : "CPU, so not an H100 estimate");
  if (r.projected_8gpu_seconds > r.config.eval_time_limit)
    s += fmt::format("warning: projected eval time {:.0f}s exceeds EVAL_TIME_LIMIT={:.0f}s\n", r.projected_8gpu_seconds,
                     r.config.eval_time_limit);
  const ProtocolResult& f = r.final_result();
  const char* final_log = f.name == "ttt" ? "ttt" : f.name == "sliding" ? "sliding_window" : "roundtrip";
  s += fmt::format("final_{}_exact val_loss:{:.8f} val_bpb:{:.8f}\n", final_log, f.val_loss, f.val_bpb);
  return s;
}

}  // namespace golf::eval
