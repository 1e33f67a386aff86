#include "artifact/policy.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <set>

namespace golf::artifact {

namespace {
constexpr BankSlot kSlots[] = {
    {"qo_bank", false, "attn.c_q.weight"},   {"qo_bank", true, "attn.proj.weight"},
    {"kv_bank", false, "attn.c_k.weight"},   {"kv_bank", true, "attn.c_v.weight"},
    {"mlp_up_bank", false, "mlp.fc.weight"}, {"mlp_down_bank", false, "mlp.proj.weight"},
};
}  // namespace

std::span<const BankSlot> bank_slots() { return kSlots; }

std::string layer_tensor_name(int64_t layer, const char* what) { return fmt::format("blocks.{}.{}", layer, what); }

bool is_quant_gate(const std::string& name, const std::vector<int64_t>& shape) {
  const bool gate = name.ends_with(".attn_gate_w") || name.ends_with(".attn.attn_gate.weight");
  if (!gate || shape.size() != 2) return false;
  const int64_t numel = shape[0] * shape[1];
  return numel >= 32 && numel <= 8192;
}

StorageRule storage_rule(const std::string& name, const std::vector<int64_t>& shape, const Config& cfg) {
  int64_t numel = 1;
  for (const int64_t d : shape) numel *= d;
  if (cfg.gated_attn_quant_gate && is_quant_gate(name, shape)) return {StorageRule::Kind::GateInt8, 8, 0};
  if (numel <= cfg.passthrough_max_numel || shape.size() < 2) return {StorageRule::Kind::Float16, 16, 0};
  if (name == "tok_emb.weight") return {StorageRule::Kind::Gptq, static_cast<int>(cfg.embed_bits), cfg.embed_clip_sigmas};
  const int bits = static_cast<int>(cfg.matrix_bits);
  if (name.find(".attn.") != std::string::npos) return {StorageRule::Kind::Gptq, bits, cfg.attn_clip_sigmas};
  if (name.find(".mlp.") != std::string::npos) return {StorageRule::Kind::Gptq, bits, cfg.mlp_clip_sigmas};
  return {StorageRule::Kind::Gptq, bits, cfg.matrix_clip_sigmas};
}

const std::vector<std::string>& model_setting_keys() {
  // The "model" stage (core/config_fields.h): the architecture and the tokenizer identity;
  // inits (QK gains are weights, but *_INIT of gates and MoA are not settings), the training-only
  // penalty (MOA_TI_*) and the eval-time SMAT_ABLATION are not model settings.
  static const std::vector<std::string> keys = stage_fields("model");
  return keys;
}

namespace {
// The first artifacts' key set (the record stack) is always written. Every model setting added since
// (seed variants, MoA, the sparse gate, the tokenizer identity — and any later one) is written only
// when it differs from its default, so artifacts of models without it keep their bytes (a missing
// key reads back as its default). A new model setting therefore needs no edit here.
bool always_written(const std::string& key) {
  static const std::set<std::string> keys = {
      "VOCAB_SIZE", "NUM_LAYERS", "MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS", "MLP_MULT", "ROPE_BASE", "ROPE_DIMS",
      "QK_GAIN_INIT", "LN_SCALE", "XSA_LAST_N", "ATTN_OUT_GATE_ENABLED", "GATE_WIDTH", "SMEAR_GATE_ENABLED",
      "SMEAR_INPUT", "BOS_TOKEN_ID", "SKIP_GATES_ENABLED", "PARALLEL_START_LAYER", "PARALLEL_MODE", "NUM_LOOPS",
      "LOOP_START", "LOOP_END", "LOGIT_SOFTCAP", "TRAIN_SEQ_LEN", "DOC_MASK", "SMEAR_BOS_MASK"};
  return keys.count(key) > 0;
}
}  // namespace

std::string model_config_json(const Config& cfg) {
  const nlohmann::json all = to_json(cfg), defaults = to_json(Config{});
  nlohmann::json model = nlohmann::json::object();
  for (const auto& key : model_setting_keys())
    if (always_written(key) || all.at(key) != defaults.at(key)) model[key] = all.at(key);
  return model.dump();
}


}  // namespace golf::artifact
