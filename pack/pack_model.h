// pack/pack_model.h — golf-pack's model side: a run's weights → quantized artifact → weights again.
//
//   unbank      qo/kv/mlp banks → per-layer matrices named as the records do
//               (blocks.{i}.attn.{c_q,c_k,c_v,proj}.weight, blocks.{i}.mlp.{fc,proj}.weight)
//   policy      tensors with ≤ PASSTHROUGH_MAX_NUMEL elements → fp16 passthrough; tok_emb →
//               EMBED_BITS / EMBED_CLIP_SIGMAS; *.attn.* → MATRIX_BITS / ATTN_CLIP_SIGMAS; *.mlp.* →
//               MATRIX_BITS / MLP_CLIP_SIGMAS; any other matrix → MATRIX_BITS / MATRIX_CLIP_SIGMAS
//   quantize    full-Hessian GPTQ per matrix: quant/gptq.h on all CPU cores, or quant/gptq_aten.h
//               on a GPU (DEVICE=auto|cuda)
//   QuantGate   GATED_ATTN_QUANT_GATE=1: attention gate matrices int8 per row (quant/lqer.h)
//   LQER        LQER_ENABLED=1: the LQER_TOP_K matrices with the largest ‖W − Ŵ‖_F get quantized
//               rank-LQER_RANK factors of W − Ŵ, stored as grouped tensors X.lqA, X.lqB
//   dequantize  bf16(q·s) per quantized matrix (bf16(q·s + Â·B̂) with LQER), fp16 passthrough
//               widened, banks rebuilt: exactly the weights evaluation uses
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "pack/artifact.h"
#include "pack/policy.h"

namespace golf {
class Model;
}

namespace golf::pack {

using TensorMap = std::map<std::string, at::Tensor>;

TensorMap unbank(const TensorMap& weights, const Config& config);
TensorMap rebank(const TensorMap& unbanked, const Config& config);

struct TensorReport {
  std::string name, group;
  int bits = 16;              // 16: fp16 passthrough
  double clip_sigmas = 0;
  int64_t params = 0;
  double error = 0, error_rtn = 0;  // Hessian-weighted reconstruction error (GPTQ or RTN result, and RTN)
  int64_t dead_columns = 0;
  int damp_retries = 0;
  bool rtn_fallback = false;
  double frob_error = 0;       // ‖W − Ŵ‖_F of a GPTQ/RTN matrix (Ŵ = q·s in fp32, before any LQER)
  bool lqer = false;           // LQER factors stored for this matrix (X.lqA, X.lqB)
  bool lqer_asym = false;      // … in the asymmetric int2/int4 form (else the symmetric fallback)
  double lqer_frob_error = 0;  // ‖W − Ŵ − Â·B̂‖_F when lqer
};

struct QuantizeResult {
  Artifact artifact;
  std::vector<TensorReport> tensors;
  double seconds = 0;
};

// Quantizes a model's weights (banked, as saved by golf-train) with the config's policy. Every
// quantized matrix needs a Hessian of matching size unless GPTQ_ENABLED=0. Throws golf::Error
// naming the tensor on a missing Hessian, a shape mismatch or non-finite weights.
QuantizeResult quantize_model(const TensorMap& weights, const TensorMap& hessians, const Config& config, int threads = 0);

// The weights an artifact stands for (banked, fp32 tensors holding bf16(q·s) values) and the
// model configuration stored in it.
TensorMap dequantize_model(const Artifact& artifact, Config* config_out = nullptr);

// model_setting_keys() and model_config_json(): pack/policy.h.

// A model with the SMAT value gate carries, beside its weights, "smat_gate_means" (NUM_LAYERS):
// the per-layer mean gate on calibration (training) data, collected with the Hessians, stored in
// the artifact as fp16 and used only by the eval-time ablation SMAT_ABLATION=g_mean.
inline constexpr const char* kSmatGateMeans = "smat_gate_means";
// Loads `weights` into `model`, handing "smat_gate_means" (when present) to the model instead.
void load_model_weights(Model& model, TensorMap weights);

}  // namespace golf::pack
