// artifact/policy.h — which tensor golf-pack stores how, from its name and shape alone (torch-free).
// Shared by the packer (pack/pack_model.cpp, which quantizes real weights) and the planner
// (pack/plan.h, which predicts the artifact's bytes before any weight exists), so the two can
// never disagree on the policy.
//
//   banks       qo_bank (2L, d, d), kv_bank (2L, kv, d), mlp_up_bank (L, F, d), mlp_down_bank
//               (L, d, F) → per-layer matrices named as the records do (bank_slots below)
//   rules       (in this order) QuantGate gate → int8 per row; ≤ PASSTHROUGH_MAX_NUMEL elements or
//               fewer than 2 dims → fp16 passthrough; tok_emb.weight → EMBED_BITS /
//               EMBED_CLIP_SIGMAS; *.attn.* → MATRIX_BITS / ATTN_CLIP_SIGMAS; *.mlp.* →
//               MATRIX_BITS / MLP_CLIP_SIGMAS; any other matrix → MATRIX_BITS / MATRIX_CLIP_SIGMAS
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/config.h"

namespace golf::artifact {

// (bank, which half of it, per-layer name): qo/kv banks hold two matrices per layer, [0, L) and [L, 2L).
struct BankSlot {
  const char* bank;
  bool second_half;
  const char* name;
};
std::span<const BankSlot> bank_slots();
std::string layer_tensor_name(int64_t layer, const char* what);  // "blocks.{layer}.{what}"

// QuantGate (GATED_ATTN_QUANT_GATE=1): the attention gate matrices stored int8 per row instead of
// fp16 — R29's sparse gate `attn_gate_w` (the records' rule: 2-D, 32 ≤ numel ≤ 8192, R0427L) and,
// ours, golf's dense GATED_ATTENTION weight `attn.attn_gate.weight` (R0419 applied QuantGate to its
// dense gate).
bool is_quant_gate(const std::string& name, const std::vector<int64_t>& shape);

struct StorageRule {
  enum class Kind { Float16, GateInt8, Gptq } kind = Kind::Float16;
  int bits = 16;           // Float16: 16
  double clip_sigmas = 0;  // Gptq only
};
// The rule for one unbanked tensor of `shape` (see the header comment).
StorageRule storage_rule(const std::string& name, const std::vector<int64_t>& shape, const Config& cfg);

// The settings that define the model (its shapes and forward pass). The artifact stores exactly
// these — packing settings such as ARTIFACT_BUDGET must not change its bytes — and golf-pack
// refuses to let them differ from the run that produced the weights. The seed-variant settings
// (SMAT_*, VALUE_RESIDUAL, GATED_ATTENTION, BIGRAM_*) are stored only when not at their default.
// Variant tensors need no special case: small ones (SMAT scalars and W_s at d_s·d ≤
// PASSTHROUGH_MAX_NUMEL, gates, vr_lambda, bigram.scale/proj) pass through as fp16, larger ones
// (bigram.embed.weight at 4096×128) quantize as "other matrix" with the Hessian that
// Model::logits collects for them.
const std::vector<std::string>& model_setting_keys();
// The artifact's config JSON: the model settings of `config`.
std::string model_config_json(const Config& config);

}  // namespace golf::artifact
