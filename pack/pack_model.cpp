// pack/pack_model.cpp — the encoder half: a run's weights → quantized artifact (golf-pack only).
#include "pack/pack_model.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "model/model.h"
#include "quant/gptq.h"
#include "quant/gptq_aten.h"
#include "artifact/half.h"
#include "quant/lqer.h"

namespace golf::pack {

namespace {

artifact::Tensor grouped_tensor(std::string name, const artifact::GroupedCodes& c) {
  artifact::Tensor t;
  t.name = std::move(name);
  t.shape = {c.rows, c.cols};
  t.kind = artifact::Tensor::Kind::Grouped;
  t.bits = c.bits;
  t.q = c.q;
  t.scales = c.scale_f16;
  t.group = c.group;
  return t;
}

// ‖W − q·s‖_F of a quantized tensor against its original (rows, cols) fp32 weights, and E itself.
std::vector<float> quant_error(const artifact::Tensor& t, const at::Tensor& w, double* frobenius) {
  const int64_t cols = w.size(1);
  const float* src = w.data_ptr<float>();
  std::vector<float> e(t.q.size());
  double sum = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    const float s = artifact::half_to_float(t.scales[i / static_cast<size_t>(cols)]);
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
    const artifact::Tensor& t = result.artifact.tensors[i];
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
    const artifact::Tensor t = result.artifact.tensors[c.tensor];  // a copy: the vector grows below
    const at::Tensor& w = originals.at(t.name);
    double error = 0;
    std::vector<float> e = quant_error(t, w, &error);
    const artifact::LqerFactors f = quant::lqer_factors(e.data(), w.size(0), w.size(1), spec);
    const std::vector<float> ab = artifact::lqer_product(f);
    double left = 0;
    for (size_t i = 0; i < e.size(); ++i) left += (double(e[i]) - ab[i]) * (double(e[i]) - ab[i]);
    TensorReport& report = result.tensors[c.report];
    report.lqer = true;
    report.lqer_asym = f.asym;
    report.lqer_frob_error = std::sqrt(left);
    result.artifact.tensors.push_back(grouped_tensor(t.name + artifact::kLqerA, f.a));
    result.artifact.tensors.push_back(grouped_tensor(t.name + artifact::kLqerB, f.b));
  }
}

}  // namespace

QuantizeResult quantize_model(const artifact::TensorMap& weights, const artifact::TensorMap& hessians, const Config& cfg, int threads) {
  const auto start = std::chrono::steady_clock::now();
  const artifact::TensorMap tensors = artifact::unbank(weights, cfg);
  QuantizeResult result;
  result.artifact.config_json = artifact::model_config_json(cfg);

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
    const artifact::StorageRule rule = artifact::storage_rule(name, shape, cfg);  // artifact/policy.h
    if (rule.kind == artifact::StorageRule::Kind::GateInt8) {  // int8 per row (records' Quantized form)
      const artifact::GroupedCodes c = quant::quantize_gate_int8(w.data_ptr<float>(), w.size(0), w.size(1));
      artifact::Tensor out;
      out.name = name;
      out.shape = {w.size(0), w.size(1)};
      out.kind = artifact::Tensor::Kind::Quantized;
      out.bits = 8;
      out.q = c.q;
      out.scales = c.scale_f16;
      result.artifact.tensors.push_back(std::move(out));
      result.tensors.push_back({name, artifact::group_of(name), 8, 0, w.numel()});
      continue;
    }
    if (rule.kind == artifact::StorageRule::Kind::Float16) {
      artifact::Tensor out;
      out.name = name;
      out.shape.assign(w.sizes().begin(), w.sizes().end());
      out.kind = artifact::Tensor::Kind::Float16;
      const float* p = w.data_ptr<float>();
      out.values.resize(static_cast<size_t>(w.numel()));
      for (int64_t i = 0; i < w.numel(); ++i) out.values[static_cast<size_t>(i)] = artifact::float_to_half(p[i]);
      result.artifact.tensors.push_back(std::move(out));
      result.tensors.push_back({name, artifact::group_of(name, artifact::Tensor::Kind::Float16), 16, 0, w.numel()});
      continue;
    }
    Pending p{name, w.reshape({w.size(0), -1}).contiguous(), {}, {}};
    p.report.name = name;
    p.report.group = artifact::group_of(name);
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
      fail("no Hessian for {}: GPTQ needs one per quantized matrix (`golf-train calibrate RUN_DIR` computes them)", name);
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
  std::vector<std::pair<artifact::QuantizedMatrix, quant::QuantReport>> quantized;
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
    artifact::Tensor out;
    out.name = pending[i].name;
    const at::Tensor& original = tensors.at(out.name);
    out.shape.assign(original.sizes().begin(), original.sizes().end());
    out.kind = artifact::Tensor::Kind::Quantized;
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

}  // namespace golf::pack
