// quant/gptq.h — full-Hessian GPTQ with SDClip scales, the quantizer of golf-pack (torch-free).
//
// A weight matrix W (rows × cols, the output × input of a linear layer y = x Wᵀ) becomes int8 codes
// q in [-qmax, qmax] (qmax = 2^(bits-1) - 1, symmetric, no zero point) and one fp16 scale per row,
// Ŵ = q · s. GPTQ (quant-and-pack.md §1.4) quantizes the columns one at a time in descending
// diag(H) order, where H = Σ xᵀx (cols × cols) is the layer-input Hessian, and pushes each column's
// rounding error onto the columns not yet quantized through the upper Cholesky factor U of H⁻¹
// (Uᵀ U = H⁻¹), which minimises tr((W-Ŵ) H (W-Ŵ)ᵀ) greedily. Scales are fixed before the loop:
// SDClip s_i = fp16(k · std(W_i) / qmax), optionally Hessian-aware (§1.5); the fp16 value is the one
// used inside GPTQ, so dequantization reproduces exactly the grid GPTQ aimed at.
//
// Policies (records R0405+ unless marked): dead inputs (H_jj == 0) get H_jj = 1 and their weight
// columns are zeroed; damping λ = damp · mean(diag H) after that fix; if H + λI is not positive
// definite, damp is retried ×10 up to 3 times and then round-to-nearest with the same scales is used
// (§5.3, ours). The Hessian is symmetrized and factorized in double; all arithmetic after reading the
// fp32 inputs is double. Rounding is half-to-even (std::nearbyint under FE_TONEAREST, as torch.round).
// The result is deterministic: no threading inside a job, stable sorts, fixed reduction orders.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "artifact/codes.h"  // QuantizedMatrix and its decoder, dequantize()

namespace golf::quant {

struct QuantSpec {
  int bits = 6;                    // 2..8; q in [-qmax, qmax], qmax = 2^(bits-1) - 1
  double clip_sigmas = 12.0;       // SDClip k: scale_i = fp16(k · std_unbiased(W_i) / qmax), k > 0
  double hessian_clip_lambda = 0;  // Hessian-aware SDClip (R0406, §1.5); 0 = plain SDClip
  bool gptq = true;                // false: round-to-nearest with the same scales ("RTN")
  bool act_order = true;           // columns in descending diag(H) order (stable sort)
  int block_size = 128;            // lazy-batch block, ≥ 1
  double damp = 0.01;              // λ = damp · mean(diag H), ≥ 0; ×10 up to 3 retries (0 → 0.001), then RTN
};

struct QuantReport {
  double damp_used = 0;  // the damp fraction of the factorization that succeeded (0 when none ran)
  int damp_retries = 0;  // how many ×10 retries were needed (3 and fell_back_to_rtn: all failed)
  int64_t dead_columns = 0;
  bool fell_back_to_rtn = false;
  // Hessian-weighted error tr((W−Ŵ) H (W−Ŵ)ᵀ) / rows with Ŵ = q·s and H as given (undamped,
  // symmetrized, dead diagonal left at 0). Without a Hessian (RTN only) H is taken as the identity,
  // so the error is the mean squared row error ‖W−Ŵ‖²_F / rows.
  double error = 0;
  double error_rtn = 0;  // the same for round-to-nearest with the same scales
  double clip_rate = 0;  // fraction of codes at ±qmax
};

// w: rows×cols row-major fp32; h: cols×cols row-major fp32 (may be null only when spec.gptq is false
// and spec.hessian_clip_lambda is 0). Throws golf::Error on bad arguments or non-finite inputs.
artifact::QuantizedMatrix quantize(const float* w, int64_t rows, int64_t cols, const float* h, const QuantSpec& spec,
                         QuantReport* report = nullptr);

// Runs independent jobs on `threads` threads (0 = all cores), largest first, each job
// single-threaded; results in job order, identical for any thread count. If jobs fail, the error of
// the first failing job (in job order) is rethrown after all threads have stopped.
struct Job {
  const float* w;
  int64_t rows, cols;
  const float* h;
  QuantSpec spec;
};
std::vector<std::pair<artifact::QuantizedMatrix, QuantReport>> quantize_all(const std::vector<Job>& jobs, int threads = 0);

// --- pieces exposed for tests -----------------------------------------------------------------

// SDClip scales of the rows of w (rows×cols row-major), as fp16 bit patterns after the guard clamp
// to [2^-14, 65504]. hessian_diag (cols values, dead entries already set to 1, damping added) is
// needed only when hessian_clip_lambda != 0.
std::vector<uint16_t> sdclip_scales(const float* w, int64_t rows, int64_t cols, int bits, double clip_sigmas,
                                    double hessian_clip_lambda, const double* hessian_diag);

// The upper-triangular U with positive diagonal and Uᵀ U = A⁻¹ for a symmetric positive definite
// A (n×n row-major double, only the lower triangle is read), computed as U = J L⁻¹ J from the
// Cholesky factor L of J A J (J reverses the index order): one factorization and one triangular
// inverse instead of the records' chol → inverse → chol. Returns n×n row-major; empty if A is not
// numerically positive definite (a pivot ≤ 0 or a non-finite or non-positive diagonal of U).
std::vector<double> upper_cholesky_of_inverse(const double* a, int64_t n);

}  // namespace golf::quant
