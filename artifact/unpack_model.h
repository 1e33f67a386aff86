// artifact/unpack_model.h — the decoder half of the artifact: artifact → the weights evaluation uses.
//
// golf-eval, `golf-pack unpack` and `golf-pack --val` read artifacts through this header; it links
// the container (artifact/artifact.h) and the code decoders (artifact/codes.h) but no quantizer, so the
// encoders (quant/gptq*, the LQER/QuantGate encoder, pack/pack_model.h) are not in golf-eval.
//   unbank      qo/kv/mlp banks → per-layer matrices named as the records do
//               (blocks.{i}.attn.{c_q,c_k,c_v,proj}.weight, blocks.{i}.mlp.{fc,proj}.weight)
//   rebank      the inverse
//   dequantize  bf16(q·s) per quantized matrix (bf16(q·s + Â·B̂) with LQER factors X.lqA, X.lqB),
//               int8 gate rows and fp16 passthrough widened, banks rebuilt: exactly the weights
//               evaluation uses
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "core/config.h"
#include "artifact/artifact.h"
#include "artifact/policy.h"

namespace golf {
class Model;
}

namespace golf::artifact {

using TensorMap = std::map<std::string, at::Tensor>;

TensorMap unbank(const TensorMap& weights, const Config& config);
TensorMap rebank(const TensorMap& unbanked, const Config& config);

// LQER factors of tensor X are stored as X.lqA (rows × r) and X.lqB (r × cols), grouped codes.
inline constexpr const char* kLqerA = ".lqA";
inline constexpr const char* kLqerB = ".lqB";

// The weights an artifact stands for (banked, fp32 tensors holding bf16(q·s) values) and the
// model configuration stored in it.
TensorMap dequantize_model(const Artifact& artifact, Config* config_out = nullptr);

// A model with the SMAT value gate carries, beside its weights, "smat_gate_means" (NUM_LAYERS):
// the per-layer mean gate on calibration (training) data, collected with the Hessians, stored in
// the artifact as fp16 and used only by the eval-time ablation SMAT_ABLATION=g_mean.
inline constexpr const char* kSmatGateMeans = "smat_gate_means";
// Loads `weights` into `model`, handing "smat_gate_means" (when present) to the model instead.
void load_model_weights(Model& model, TensorMap weights);

}  // namespace golf::artifact
