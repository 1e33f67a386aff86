// pack/pack_model.h — golf-pack's encoder: a run's weights → quantized artifact (links the quantizers).
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
// The decoder half (unbank/rebank, dequantize_model, load_model_weights) is artifact/unpack_model.h,
// which golf-eval links without this quantizer.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "artifact/artifact.h"
#include "artifact/policy.h"
#include "artifact/unpack_model.h"  // TensorMap, unbank, dequantize_model: the decoder half

namespace golf::pack {

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
  artifact::Artifact artifact;
  std::vector<TensorReport> tensors;
  double seconds = 0;
};

// Quantizes a model's weights (banked, as saved by golf-train) with the config's policy. Every
// quantized matrix needs a Hessian of matching size unless GPTQ_ENABLED=0. Throws golf::Error
// naming the tensor on a missing Hessian, a shape mismatch or non-finite weights.
QuantizeResult quantize_model(const artifact::TensorMap& weights, const artifact::TensorMap& hessians, const Config& config, int threads = 0);

}  // namespace golf::pack
