#include "pack/pack_model.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include <chrono>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/model.h"
#include "quant/gptq.h"
#include "quant/gptq_aten.h"
#include "quant/half.h"
#include "quant/lqer.h"

namespace golf::pack {

namespace {

Tensor grouped_tensor(std::string name, const quant::GroupedCodes& c) {
  Tensor t;
  t.name = std::move(name);
  t.shape = {c.rows, c.cols};
  t.kind = Tensor::Kind::Grouped;
  t.bits = c.bits;
  t.q = c.q;
  t.scales = c.scale_f16;
  t.group = c.group;
  return t;
}

quant::GroupedCodes grouped_codes(const Tensor& t) {
  quant::GroupedCodes c;
  c.rows = t.shape.at(0);
  c.cols = c.rows ? static_cast<int64_t>(t.q.size()) / c.rows : 0;
  c.bits = t.bits;
  c.group = t.group;
  c.q = t.q;
  c.scale_f16 = t.scales;
  return c;
}

const at::Tensor& need(const TensorMap& m, const std::string& name, const char* what) {
  const auto it = m.find(name);
  if (it == m.end()) fail("{} lack {}", what, name);
  return it->second;
}

constexpr const char* kLqerA = ".lqA";  // LQER factors of tensor X: X.lqA (rows × r), X.lqB (r × cols)
constexpr const char* kLqerB = ".lqB";

// ‖W − q·s‖_F of a quantized tensor against its original (rows, cols) fp32 weights, and E itself.
std::vector<float> quant_error(const Tensor& t, const at::Tensor& w, double* frobenius) {
  const int64_t cols = w.size(1);
  const float* src = w.data_ptr<float>();
  std::vector<float> e(t.q.size());
  double sum = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    const float s = quant::half_to_float(t.scales[i / static_cast<size_t>(cols)]);
    e[i] = src[i] - static_cast<float>(t.q[i]) * s;  // q·s is exact in fp32
    sum += double(e[i]) * double(e[i]);
  }
  *frobenius = std::sqrt(sum);
  return e;
}

// LQER (quant/lqer.h): the LQER_TOP_K GPTQ matrices with the largest ‖W − Ŵ‖_F (ties: name order)
// get rank-LQER_RANK factors of their error, stored as two grouped tensors beside them.
void add_lqer(QuantizeResult& result, const std::map<std::string, at::Tensor>& originals, const Config& cfg) {
  struct Candidate {
    size_t tensor, report;
    double error;
  };
  std::vector<Candidate> candidates;
  for (size_t i = 0; i < result.artifact.tensors.size(); ++i) {
    const Tensor& t = result.artifact.tensors[i];
    const auto it = originals.find(t.name);
    if (it == originals.end()) continue;
    size_t r = 0;
    while (result.tensors[r].name != t.name) ++r;
    candidates.push_back({i, r, result.tensors[r].frob_error});
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](const Candidate& a, const Candidate& b) { return a.error > b.error; });
  candidates.resize(std::min<size_t>(candidates.size(), static_cast<size_t>(cfg.lqer_top_k)));
  quant::LqerSpec spec;
  spec.rank = static_cast<int>(cfg.lqer_rank);
  spec.factor_bits = static_cast<int>(cfg.lqer_factor_bits);
  spec.asym = cfg.lqer_asym_enabled != 0;
  spec.asym_group = cfg.lqer_asym_group;
  for (const Candidate& c : candidates) {
    const Tensor t = result.artifact.tensors[c.tensor];  // a copy: the vector grows below
    const at::Tensor& w = originals.at(t.name);
    double error = 0;
    std::vector<float> e = quant_error(t, w, &error);
    const quant::LqerFactors f = quant::lqer_factors(e.data(), w.size(0), w.size(1), spec);
    const std::vector<float> ab = quant::lqer_product(f);
    double left = 0;
    for (size_t i = 0; i < e.size(); ++i) left += (double(e[i]) - ab[i]) * (double(e[i]) - ab[i]);
    TensorReport& report = result.tensors[c.report];
    report.lqer = true;
    report.lqer_asym = f.asym;
    report.lqer_frob_error = std::sqrt(left);
    result.artifact.tensors.push_back(grouped_tensor(t.name + kLqerA, f.a));
    result.artifact.tensors.push_back(grouped_tensor(t.name + kLqerB, f.b));
  }
}

}  // namespace

TensorMap unbank(const TensorMap& weights, const Config& cfg) {
  TensorMap out;
  for (const auto& [name, t] : weights)
    if (name.find("_bank") == std::string::npos) out[name] = t;
  const int64_t L = cfg.num_layers;
  for (const auto& slot : bank_slots()) {
    const at::Tensor& bank = need(weights, slot.bank, "weights");
    for (int64_t i = 0; i < L; ++i) out[layer_tensor_name(i, slot.name)] = bank[slot.second_half ? L + i : i];
  }
  return out;
}

TensorMap rebank(const TensorMap& unbanked, const Config& cfg) {
  TensorMap out;
  std::set<std::string> used;
  const int64_t L = cfg.num_layers;
  for (const char* bank : {"qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank"}) {
    std::vector<at::Tensor> first, second;
    for (const auto& slot : bank_slots()) {
      if (std::string(slot.bank) != bank) continue;
      for (int64_t i = 0; i < L; ++i) {
        const std::string name = layer_tensor_name(i, slot.name);
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
    const std::vector<int64_t> shape(w.sizes().begin(), w.sizes().end());
    const StorageRule rule = storage_rule(name, shape, cfg);  // pack/policy.h
    if (rule.kind == StorageRule::Kind::GateInt8) {  // int8 per row (records' Quantized form)
      const quant::GroupedCodes c = quant::quantize_gate_int8(w.data_ptr<float>(), w.size(0), w.size(1));
      Tensor out;
      out.name = name;
      out.shape = {w.size(0), w.size(1)};
      out.kind = Tensor::Kind::Quantized;
      out.bits = 8;
      out.q = c.q;
      out.scales = c.scale_f16;
      result.artifact.tensors.push_back(std::move(out));
      result.tensors.push_back({name, group_of(name), 8, 0, w.numel()});
      continue;
    }
    if (rule.kind == StorageRule::Kind::Float16) {
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
    p.report.name = name;
    p.report.group = group_of(name);
    p.report.bits = rule.bits;
    p.report.clip_sigmas = rule.clip_sigmas;
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

  if (cfg.lqer_enabled)  // refuse before any work: LQER_RANK must fit every matrix that could be chosen
    for (const auto& p : pending)
      if (cfg.lqer_rank > std::min(p.w.size(0), p.w.size(1)))
        fail("LQER_RANK={} exceeds min(rows, cols) = {} of {} ({}x{}); lower LQER_RANK or set LQER_ENABLED=0",
             cfg.lqer_rank, std::min(p.w.size(0), p.w.size(1)), p.name, p.w.size(0), p.w.size(1));

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
    quant_error(out, pending[i].w, &report.frob_error);
    result.artifact.tensors.push_back(std::move(out));
    result.tensors.push_back(report);
  }
  if (cfg.lqer_enabled) {
    std::map<std::string, at::Tensor> originals;  // (rows, cols) fp32 of every GPTQ matrix
    for (const auto& p : pending) originals[p.name] = p.w;
    add_lqer(result, originals, cfg);
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
  std::map<std::string, const Tensor*> lqer;  // "X.lqA" / "X.lqB" → factor
  for (const auto& t : artifact.tensors)
    if (t.name.ends_with(kLqerA) || t.name.ends_with(kLqerB)) lqer[t.name] = &t;
  for (const auto& t : artifact.tensors) {
    if (lqer.count(t.name)) continue;
    at::Tensor out = at::empty(t.shape, at::kFloat);
    float* dst = out.data_ptr<float>();
    const auto a = lqer.find(t.name + kLqerA), b = lqer.find(t.name + kLqerB);
    if (a != lqer.end() || b != lqer.end()) {
      // LQER: W = bf16(q·s + Â·B̂), the correction added in fp32 before evaluation's bf16 cast.
      if (a == lqer.end() || b == lqer.end())
        fail("artifact: tensor '{}' has LQER factor {} without {}", t.name, a == lqer.end() ? kLqerB : kLqerA,
             a == lqer.end() ? kLqerA : kLqerB);
      quant::LqerFactors f;
      f.a = grouped_codes(*a->second);
      f.b = grouped_codes(*b->second);
      const int64_t rows = t.shape.empty() ? 1 : t.shape[0], cols = rows ? static_cast<int64_t>(t.q.size()) / rows : 0;
      if (t.kind != Tensor::Kind::Quantized || a->second->kind != Tensor::Kind::Grouped ||
          b->second->kind != Tensor::Kind::Grouped || f.a.rows != rows || f.b.cols != cols || f.a.cols != f.b.rows)
        fail("artifact: LQER factors of '{}' ({}x{} and {}x{}) do not fit the {}x{} quantized matrix", t.name, f.a.rows,
             f.a.cols, f.b.rows, f.b.cols, rows, cols);
      const std::vector<float> ab = quant::lqer_product(f);
      for (size_t i = 0; i < t.q.size(); ++i) {
        const float s = quant::half_to_float(t.scales[i / static_cast<size_t>(cols)]);
        dst[i] = quant::round_to_bf16(static_cast<float>(t.q[i]) * s + ab[i]);
      }
    } else if (t.kind == Tensor::Kind::Float16) {
      for (size_t i = 0; i < t.values.size(); ++i) dst[i] = quant::half_to_float(t.values[i]);
    } else if (t.kind == Tensor::Kind::Grouped) {
      const std::vector<float> values = quant::dequantize(grouped_codes(t));
      for (size_t i = 0; i < values.size(); ++i) dst[i] = quant::round_to_bf16(values[i]);
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
  for (const auto& [name, t] : lqer) {  // every factor must belong to a tensor
    const std::string base = name.substr(0, name.size() - std::strlen(kLqerA));
    if (!unbanked.count(base)) fail("artifact: LQER factor '{}' belongs to no tensor '{}'", name, base);
  }
  if (config_out) *config_out = cfg;
  return rebank(unbanked, cfg);
}

}  // namespace golf::pack
