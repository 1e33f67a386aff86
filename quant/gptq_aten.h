// quant/gptq_aten.h — the same GPTQ as quant/gptq.h in ATen ops, for the GPU.
//
// Identical policy (dead columns zeroed, damp · mean(diag) with ×10 retries then round-to-nearest,
// stable act-order on the dead-fixed diagonal, SDClip fp16 scales from quant::sdclip_scales, half-
// to-even rounding, 128-column blocks with lazy batch updates) in float64 on any device; U comes
// from the records' chol → cholesky_inverse → upper chol. On CPU it is tested code for code
// against the Eigen implementation, so on CUDA it is the same tested code on another device.
#pragma once
#include <c10/core/Device.h>

#include "quant/gptq.h"

namespace golf::quant {

artifact::QuantizedMatrix quantize_aten(const float* w, int64_t rows, int64_t cols, const float* h, const QuantSpec& spec,
                              QuantReport* report, c10::Device device);

}  // namespace golf::quant
