// artifact/unpack_model.cpp — artifact → weights (artifact/unpack_model.h); no quantizer linked.
#include "artifact/unpack_model.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <set>

#include "core/error.h"
#include "model/model.h"
#include "artifact/codes.h"
#include "artifact/half.h"

namespace golf::artifact {

namespace {

GroupedCodes grouped_codes(const Tensor& t) {
  GroupedCodes c;
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
      LqerFactors f;
      f.a = grouped_codes(*a->second);
      f.b = grouped_codes(*b->second);
      const int64_t rows = t.shape.empty() ? 1 : t.shape[0], cols = rows ? static_cast<int64_t>(t.q.size()) / rows : 0;
      if (t.kind != Tensor::Kind::Quantized || a->second->kind != Tensor::Kind::Grouped ||
          b->second->kind != Tensor::Kind::Grouped || f.a.rows != rows || f.b.cols != cols || f.a.cols != f.b.rows)
        fail("artifact: LQER factors of '{}' ({}x{} and {}x{}) do not fit the {}x{} quantized matrix", t.name, f.a.rows,
             f.a.cols, f.b.rows, f.b.cols, rows, cols);
      const std::vector<float> ab = lqer_product(f);
      for (size_t i = 0; i < t.q.size(); ++i) {
        const float s = half_to_float(t.scales[i / static_cast<size_t>(cols)]);
        dst[i] = round_to_bf16(static_cast<float>(t.q[i]) * s + ab[i]);
      }
    } else if (t.kind == Tensor::Kind::Float16) {
      for (size_t i = 0; i < t.values.size(); ++i) dst[i] = half_to_float(t.values[i]);
    } else if (t.kind == Tensor::Kind::Grouped) {
      const std::vector<float> values = dequantize(grouped_codes(t));
      for (size_t i = 0; i < values.size(); ++i) dst[i] = round_to_bf16(values[i]);
    } else {
      QuantizedMatrix m;
      m.rows = t.shape.empty() ? 1 : t.shape[0];
      m.cols = m.rows ? static_cast<int64_t>(t.q.size()) / m.rows : 0;
      m.bits = t.bits;
      m.q = t.q;
      m.scale_f16 = t.scales;
      const std::vector<float> values = dequantize(m);
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

}  // namespace golf::artifact
