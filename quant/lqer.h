// quant/lqer.h — the two small quantizers of the 04-19…04-29 records beside GPTQ (torch-free, Eigen):
//
// QuantGate (R0419, GATED_ATTN_QUANT_GATE=1): an attention gate matrix W (H × width), fp16
// passthrough otherwise, is stored int8 per row: s_h = fp16(max_j |W_hj| / 127),
// q = clamp(round(W / s), ±127).
//
// LQER (R0427L/R0429, quant-and-pack.md §1.8): low-rank reconstruction of a matrix's quantization
// error. With E = W − Ŵ (rows × cols, Ŵ = q·s the GPTQ result), the truncated SVD E ≈ U_r S_r V_rᵀ
// gives A = U_r S_r (rows × r) and B = V_rᵀ (r × cols), stored quantized; dequantization adds
// Â·B̂ to Ŵ. Two storage forms:
//   asymmetric (LQER_ASYM_ENABLED=1 and r·cols divisible by LQER_ASYM_GROUP):
//     A int2 in [−2, +1] with ONE fp16 scale s_A = max|A| / 1.5 for the whole matrix;
//     B int4 in [−8, +7], row-major B cut into groups of LQER_ASYM_GROUP consecutive values, one
//     fp16 scale max|group| / 7.5 per group;
//   symmetric fallback: A and B each with per-row fp16 scales max|row| / qmax, codes in ±qmax,
//     qmax = 2^(LQER_FACTOR_BITS−1) − 1.
// Both are "grouped" codes: one scale per `group` consecutive row-major values (per-matrix: group =
// numel, per-row: group = cols), which is how the artifact stores them (artifact/artifact.h, kind 3).
//
// Choices the records leave open (ours, documented): codes are computed with the fp16-ROUNDED
// scale (the one dequantization uses, as GPTQ does); a zero scale (an all-zero matrix, row or
// group) becomes the smallest normal fp16 2^-14, so every code there is 0; rounding is half-to-even
// (torch.round). SVD signs are fixed so that each row of B has its largest-|·| entry positive (the
// records take LAPACK's signs; with the lopsided int2/int4 ranges the sign changes the codes).
#pragma once
#include <cstdint>
#include <vector>

#include "artifact/codes.h"  // GroupedCodes, LqerFactors and their decoders (dequantize, lqer_product)

namespace golf::quant {

// QuantGate: int8 per-row codes of w (rows × cols row-major fp32), as GroupedCodes with group = cols.
artifact::GroupedCodes quantize_gate_int8(const float* w, int64_t rows, int64_t cols);

struct LqerSpec {
  int rank = 4;             // LQER_RANK, 1 ≤ rank ≤ min(rows, cols)
  int factor_bits = 4;      // LQER_FACTOR_BITS (symmetric form), 2..8
  bool asym = true;         // LQER_ASYM_ENABLED
  int64_t asym_group = 64;  // LQER_ASYM_GROUP
};

// The factors of E ≈ A·B for the error matrix e (rows × cols row-major fp32, E = W − Ŵ). Throws
// golf::Error when the rank exceeds min(rows, cols) or is < 1, or e holds non-finite values.
artifact::LqerFactors lqer_factors(const float* e, int64_t rows, int64_t cols, const LqerSpec& spec);

// The unquantized factors, for tests: A = U_r S_r (rows × r) and B = V_rᵀ (r × cols), row-major
// double, with the sign convention above.
void lqer_svd(const float* e, int64_t rows, int64_t cols, int rank, std::vector<double>* a, std::vector<double>* b);

}  // namespace golf::quant
