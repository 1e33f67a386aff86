// artifact/half.h — bit-exact IEEE binary16 (fp16) and bfloat16 conversions, header-only, torch-free.
//
// The quantizer stores one fp16 scale per row and evaluation multiplies float(q)·float(scale) and
// rounds the product to bf16 (quant-and-pack.md §3). Both roundings must match what PyTorch does
// bit for bit, so they are written out on the bit patterns rather than left to compiler extensions:
//   float_to_half      float32 → fp16, round-to-nearest-even, subnormals, overflow to ±inf, NaN kept
//                      quiet (sign and the top 10 payload bits survive)
//   half_to_float      fp16 → float32, exact (every fp16 value is a float32 value)
//   round_to_bf16      float32 → the nearest bf16-representable float32, ties to even (as torch's
//                      .to(torch.bfloat16)); NaN stays NaN
//   float_to_bf16_bits the same rounding, as the 16-bit bf16 pattern
#pragma once
#include <bit>
#include <cstdint>

namespace golf::artifact {

inline uint16_t float_to_half(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude >= 0x7F800000u) {  // inf or NaN
    if (magnitude == 0x7F800000u) return sign | 0x7C00u;
    return static_cast<uint16_t>(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));  // quiet NaN
  }
  // 65520 = 0x477FF000 is the midpoint between fp16 max (65504, odd mantissa) and 2^16: the tie
  // goes to the even side, which is 2^16, i.e. infinity.
  if (magnitude >= 0x477FF000u) return sign | 0x7C00u;
  if (magnitude >= 0x38800000u) {  // |value| >= 2^-14: a normal fp16
    // Rebias the exponent (127 → 15) and round the 23-bit mantissa to 10 bits, ties to even. A carry
    // out of the mantissa correctly increments the exponent.
    const uint32_t lsb = (magnitude >> 13) & 1u;
    const uint32_t rounded = magnitude - 0x38000000u + 0x0FFFu + lsb;
    return static_cast<uint16_t>(sign | (rounded >> 13));
  }
  // Subnormal fp16: the result is m · 2^-24 with m = round(|value| · 2^24), m in [0, 1024] (1024 is
  // the smallest normal, whose encoding 0x0400 is exactly m). Below 2^-25 everything rounds to 0.
  const uint32_t exponent = magnitude >> 23;  // biased float exponent
  if (exponent < 102) return sign;          // |value| < 2^-25 (and float subnormals)
  const uint32_t mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126 - exponent;  // |value|·2^24 = mantissa · 2^(exponent-126); shift 14..24
  uint32_t m = mantissa >> shift;
  const uint32_t remainder = mantissa & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1);
  if (remainder > halfway || (remainder == halfway && (m & 1u))) ++m;
  return static_cast<uint16_t>(sign | m);
}

inline float half_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1Fu;
  const uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa · 2^-24, exact in float (≤ 10 significant bits).
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

inline uint16_t float_to_bf16_bits(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN
  // Round the low 16 bits away, ties to even; a carry moves into the exponent (up to ±inf).
  const uint32_t lsb = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7FFFu + lsb) >> 16);
}

inline float bf16_bits_to_float(uint16_t bf16) { return std::bit_cast<float>(static_cast<uint32_t>(bf16) << 16); }

inline float round_to_bf16(float value) { return bf16_bits_to_float(float_to_bf16_bits(value)); }

}  // namespace golf::artifact
