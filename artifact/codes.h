// artifact/codes.h — the quantized forms an artifact stores and their decoders (torch-free, no Eigen).
//
// This is the decoder half of quantization: golf-eval links it (through the artifact library,
// pack/artifact_model.h) without linking the encoders (quant/gptq.h GPTQ, quant/lqer.h LQER and
// QuantGate), which only golf-pack needs. The encoders produce exactly these structs.
//   QuantizedMatrix  int codes q ∈ [−qmax, qmax] with one fp16 scale per row: Ŵ = bf16(q·s)
//   GroupedCodes     codes with one fp16 scale per `group` consecutive row-major values: q·s
//   LqerFactors      Â (rows × r) and B̂ (r × cols) as GroupedCodes; the correction is Â·B̂
#pragma once
#include <cstdint>
#include <vector>

namespace golf::artifact {

struct QuantizedMatrix {
  int64_t rows = 0, cols = 0;
  int bits = 0;
  std::vector<int8_t> q;            // rows*cols, row-major, ORIGINAL column order
  std::vector<uint16_t> scale_f16;  // one fp16 scale per row (bit pattern), in [2^-14, 65504]
};

// float(q)·float(scale) rounded to bf16 (what evaluation uses), as floats; rows*cols row-major.
// Throws golf::Error when the code or scale counts do not match the shape.
std::vector<float> dequantize(const QuantizedMatrix& m);

// Codes with one fp16 scale per `group` consecutive row-major values: value i = q[i] · s[i / group].
struct GroupedCodes {
  int64_t rows = 0, cols = 0;
  int bits = 0;       // codes lie in [qmin, qmax] below
  int qmin = 0, qmax = 0;
  int64_t group = 0;  // numel % group == 0
  std::vector<int8_t> q;            // rows*cols, row-major
  std::vector<uint16_t> scale_f16;  // numel / group
};
// float(q)·float(s) per value (exact in fp32), row-major.
std::vector<float> dequantize(const GroupedCodes& codes);

struct LqerFactors {
  GroupedCodes a;  // rows × rank
  GroupedCodes b;  // rank × cols
  bool asym = false;
};
// Â·B̂ (rows × cols row-major), accumulated in double, returned as float.
std::vector<float> lqer_product(const LqerFactors& f);

}  // namespace golf::artifact
