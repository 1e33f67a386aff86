#include "pack/pack_model.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include <chrono>
#include <set>

#include "core/error.h"
#include "core/model.h"
#include "quant/gptq.h"
#include "quant/gptq_aten.h"
#include "quant/half.h"

namespace golf::pack {

namespace {

std::string layer_name(int64_t i, const char* what) { return fmt::format("blocks.{}.{}", i, what); }

// (bank, index inside the bank as a function of the layer, per-layer name)
struct BankSlot {
  const char* bank;
  bool second_half;  // qo/kv banks hold two matrices per layer: [0, L) and [L, 2L)
  const char* name;
};
constexpr BankSlot kSlots[] = {
    {"qo_bank", false, "attn.c_q.weight"},   {"qo_bank", true, "attn.proj.weight"},
    {"kv_bank", false, "attn.c_k.weight"},   {"kv_bank", true, "attn.c_v.weight"},
    {"mlp_up_bank", false, "mlp.fc.weight"}, {"mlp_down_bank", false, "mlp.proj.weight"},
};

const at::Tensor& need(const TensorMap& m, const std::string& name, const char* what) {
  const auto it = m.find(name);
  if (it == m.end()) fail("{} lack {}", what, name);
  return it->second;
}

}  // namespace

TensorMap unbank(const TensorMap& weights, const Config& cfg) {
  TensorMap out;
  for (const auto& [name, t] : weights)
    if (name.find("_bank") == std::string::npos) out[name] = t;
  const int64_t L = cfg.num_layers;
  for (const auto& slot : kSlots) {
    const at::Tensor& bank = need(weights, slot.bank, "weights");
    for (int64_t i = 0; i < L; ++i) out[layer_name(i, slot.name)] = bank[slot.second_half ? L + i : i];
  }
  return out;
}

TensorMap rebank(const TensorMap& unbanked, const Config& cfg) {
  TensorMap out;
  std::set<std::string> used;
  const int64_t L = cfg.num_layers;
  for (const char* bank : {"qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank"}) {
    std::vector<at::Tensor> first, second;
    for (const auto& slot : kSlots) {
      if (std::string(slot.bank) != bank) continue;
      for (int64_t i = 0; i < L; ++i) {
        const std::string name = layer_name(i, slot.name);
        (slot.second_half ? second : first).push_back(need(unbanked, name, "artifact tensors"));
        used.insert(name);
      }
    }
    first.insert(first.end(), second.begin(), second.end());
    out[bank] = at::stack(first);
  }
  for (const auto& [name, t] : unbanked)
    if (!used.count(name)) out[name] = t;
  return out;
}

void load_model_weights(Model& model, TensorMap weights) {
  if (const auto it = weights.find(kSmatGateMeans); it != weights.end()) {
    const at::Tensor m = it->second.to(at::kDouble).contiguous().cpu();
    model.set_smat_gate_means(std::vector<double>(m.data_ptr<double>(), m.data_ptr<double>() + m.numel()));
    weights.erase(it);
  }
  model.load_state(weights);
}

const std::vector<std::string>& model_setting_keys() {
  static const std::vector<std::string> keys = {
      "VOCAB_SIZE", "NUM_LAYERS", "MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS", "MLP_MULT", "ROPE_BASE", "ROPE_DIMS",
      "QK_GAIN_INIT", "LN_SCALE", "XSA_LAST_N", "ATTN_OUT_GATE_ENABLED", "GATE_WIDTH", "SMEAR_GATE_ENABLED",
      "SMEAR_INPUT", "BOS_TOKEN_ID", "SKIP_GATES_ENABLED", "PARALLEL_START_LAYER", "PARALLEL_MODE", "NUM_LOOPS",
      "LOOP_START", "LOOP_END", "LOGIT_SOFTCAP", "TRAIN_SEQ_LEN", "DOC_MASK", "SMEAR_BOS_MASK",
      // seed attention variants (core/variants.h); SMAT_ABLATION is an eval-time override, not a setting
      "SMAT_USE_S", "SMAT_USE_G", "SMAT_DIM", "SMAT_CENTRALITY", "SMAT_GONLY_CENTRALITY", "VALUE_RESIDUAL",
      "GATED_ATTENTION", "BIGRAM_HASH", "BIGRAM_BUCKETS", "BIGRAM_DIM",
      // MoA (core/moa.h); the inits and the training-only penalty (MOA_TI_*) are not model settings
      "MOA_ENABLED", "MOA_BRANCHES", "MOA_METRIC", "MOA_ROUTER_HIDDEN", "MOA_BIAS_GATE", "MOA_CONV_KERNEL",
      "MOA_CHAN_MULT", "MOA_BALL", "MOA_BALL_KAPPA", "MOA_BALL_TAU",
      // the tokenizer the model was trained with (golf-eval refuses another); absent in older runs
      "TOKENIZER_SHA256", "TOKENIZER_KIND"};
  return keys;
}

namespace {
// Variant settings are written only when they differ from the default, so artifacts of models
// without the variants keep their bytes (a missing key reads back as its default).
bool written_only_when_changed(const std::string& key) {
  static const std::set<std::string> keys = {"SMAT_USE_S",     "SMAT_USE_G",      "SMAT_DIM",    "SMAT_CENTRALITY",
                                             "SMAT_GONLY_CENTRALITY", "VALUE_RESIDUAL", "GATED_ATTENTION",
                                             "BIGRAM_HASH",    "BIGRAM_BUCKETS",  "BIGRAM_DIM",
                                             "MOA_ENABLED", "MOA_BRANCHES", "MOA_METRIC", "MOA_ROUTER_HIDDEN",
                                             "MOA_BIAS_GATE", "MOA_CONV_KERNEL", "MOA_CHAN_MULT", "MOA_BALL",
                                             "MOA_BALL_KAPPA", "MOA_BALL_TAU", "TOKENIZER_SHA256", "TOKENIZER_KIND"};
  return keys.count(key) > 0;
}
}  // namespace

std::string model_config_json(const Config& cfg) {
  const nlohmann::json all = to_json(cfg), defaults = to_json(Config{});
  nlohmann::json model = nlohmann::json::object();
  for (const auto& key : model_setting_keys())
    if (!written_only_when_changed(key) || all.at(key) != defaults.at(key)) model[key] = all.at(key);
  return model.dump();
}

QuantizeResult quantize_model(const TensorMap& weights, const TensorMap& hessians, const Config& cfg, int threads) {
  const auto start = std::chrono::steady_clock::now();
  const TensorMap tensors = unbank(weights, cfg);
  QuantizeResult result;
  result.artifact.config_json = model_config_json(cfg);

  struct Pending {
    std::string name;
    at::Tensor w, h;  // contiguous fp32 CPU; h undefined for RTN without Hessians
    TensorReport report;
  };
  std::vector<Pending> pending;
  for (const auto& [name, t] : tensors) {
    const at::Tensor w = t.detach().to(at::kCPU, at::kFloat).contiguous();
    if (!at::isfinite(w).all().item<bool>()) fail("weight {} holds non-finite values", name);
    if (w.numel() <= cfg.passthrough_max_numel || w.dim() < 2) {
      Tensor out;
      out.name = name;
      out.shape.assign(w.sizes().begin(), w.sizes().end());
      out.kind = Tensor::Kind::Float16;
      const float* p = w.data_ptr<float>();
      out.values.resize(static_cast<size_t>(w.numel()));
      for (int64_t i = 0; i < w.numel(); ++i) out.values[static_cast<size_t>(i)] = quant::float_to_half(p[i]);
      result.artifact.tensors.push_back(std::move(out));
      result.tensors.push_back({name, group_of(name, Tensor::Kind::Float16), 16, 0, w.numel()});
      continue;
    }
    Pending p{name, w.reshape({w.size(0), -1}).contiguous(), {}, {}};
    const bool embedding = name == "tok_emb.weight";
    p.report.name = name;
    p.report.group = group_of(name);
    p.report.bits = static_cast<int>(embedding ? cfg.embed_bits : cfg.matrix_bits);
    p.report.clip_sigmas = embedding                                    ? cfg.embed_clip_sigmas
                           : name.find(".attn.") != std::string::npos ? cfg.attn_clip_sigmas
                           : name.find(".mlp.") != std::string::npos  ? cfg.mlp_clip_sigmas
                                                                       : cfg.matrix_clip_sigmas;
    p.report.params = w.numel();
    if (const auto it = hessians.find(name); it != hessians.end()) {
      p.h = it->second.detach().to(at::kCPU, at::kFloat).contiguous();
      const int64_t cols = p.w.size(1);
      if (p.h.dim() != 2 || p.h.size(0) != cols || p.h.size(1) != cols)
        fail("Hessian of {} has shape {}x{}, expected {}x{} (the matrix has {} columns)", name, p.h.size(0),
             p.h.dim() > 1 ? p.h.size(1) : 0, cols, cols, cols);
    } else if (cfg.gptq_enabled) {
      fail("no Hessian for {}: GPTQ needs one per quantized matrix (pass --calib-batches N to compute them)", name);
    }
    pending.push_back(std::move(p));
  }

  std::vector<quant::Job> jobs;
  for (const auto& p : pending) {
    quant::QuantSpec spec;
    spec.bits = p.report.bits;
    spec.clip_sigmas = p.report.clip_sigmas;
    spec.hessian_clip_lambda = cfg.hessian_clip_lambda;
    spec.gptq = cfg.gptq_enabled != 0;
    jobs.push_back({p.w.data_ptr<float>(), p.w.size(0), p.w.size(1), p.h.defined() ? p.h.data_ptr<float>() : nullptr, spec});
  }
  // On a GPU the ATen implementation (tested code for code against the Eigen one); else all CPU cores.
  const bool cuda = cfg.device != "cpu" && torch::cuda::is_available();
  std::vector<std::pair<quant::QuantizedMatrix, quant::QuantReport>> quantized;
  if (cuda) {
    for (const auto& job : jobs) {
      quant::QuantReport rep;
      auto m = quant::quantize_aten(job.w, job.rows, job.cols, job.h, job.spec, &rep, at::Device(at::kCUDA, 0));
      quantized.emplace_back(std::move(m), rep);
    }
  } else {
    quantized = quant::quantize_all(jobs, threads);
  }
  for (size_t i = 0; i < pending.size(); ++i) {
    auto& [m, rep] = quantized[i];
    TensorReport report = pending[i].report;
    report.error = rep.error;
    report.error_rtn = rep.error_rtn;
    report.dead_columns = rep.dead_columns;
    report.damp_retries = rep.damp_retries;
    report.rtn_fallback = rep.fell_back_to_rtn;
    Tensor out;
    out.name = pending[i].name;
    const at::Tensor& original = tensors.at(out.name);
    out.shape.assign(original.sizes().begin(), original.sizes().end());
    out.kind = Tensor::Kind::Quantized;
    out.bits = report.bits;
    out.q = std::move(m.q);
    out.scales = std::move(m.scale_f16);
    result.artifact.tensors.push_back(std::move(out));
    result.tensors.push_back(report);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

TensorMap dequantize_model(const Artifact& artifact, Config* config_out) {
  Config cfg;
  try {
    cfg = config_from_json(nlohmann::json::parse(artifact.config_json));  // model settings; the rest default
  } catch (const nlohmann::json::exception& e) {
    fail("artifact model config is not valid JSON: {}", e.what());
  }
  validate(cfg);
  TensorMap unbanked;
  for (const auto& t : artifact.tensors) {
    at::Tensor out = at::empty(t.shape, at::kFloat);
    float* dst = out.data_ptr<float>();
    if (t.kind == Tensor::Kind::Float16) {
      for (size_t i = 0; i < t.values.size(); ++i) dst[i] = quant::half_to_float(t.values[i]);
    } else {
      quant::QuantizedMatrix m;
      m.rows = t.shape.empty() ? 1 : t.shape[0];
      m.cols = m.rows ? static_cast<int64_t>(t.q.size()) / m.rows : 0;
      m.bits = t.bits;
      m.q = t.q;
      m.scale_f16 = t.scales;
      const std::vector<float> values = quant::dequantize(m);
      std::copy(values.begin(), values.end(), dst);
    }
    unbanked[t.name] = out;
  }
  if (config_out) *config_out = cfg;
  return rebank(unbanked, cfg);
}

}  // namespace golf::pack
