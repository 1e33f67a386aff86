// artifact/codes.cpp — decoders of the quantized forms (artifact/codes.h); plain loops, fixed orders.
#include "artifact/codes.h"

#include "core/error.h"
#include "artifact/half.h"

namespace golf::artifact {

std::vector<float> dequantize(const QuantizedMatrix& m) {
  if (m.rows < 0 || m.cols < 0 || static_cast<int64_t>(m.q.size()) != m.rows * m.cols ||
      static_cast<int64_t>(m.scale_f16.size()) != m.rows)
    fail("dequantize: {}x{} matrix has {} codes and {} scales", m.rows, m.cols, m.q.size(), m.scale_f16.size());
  std::vector<float> out(m.q.size());
  for (int64_t r = 0; r < m.rows; ++r) {
    const float s = half_to_float(m.scale_f16[r]);
    for (int64_t c = 0; c < m.cols; ++c) {
      // Exact in fp32 (|q| ≤ 127 has 7 bits, s 11), then the bf16 cast evaluation applies.
      const int64_t i = r * m.cols + c;
      out[i] = round_to_bf16(static_cast<float>(m.q[i]) * s);
    }
  }
  return out;
}

std::vector<float> dequantize(const GroupedCodes& c) {
  const int64_t n = c.rows * c.cols;
  if (c.group <= 0 || n % c.group != 0 || static_cast<int64_t>(c.q.size()) != n ||
      static_cast<int64_t>(c.scale_f16.size()) != n / c.group)
    fail("dequantize: {}x{} grouped codes (group {}) have {} codes and {} scales", c.rows, c.cols, c.group, c.q.size(),
         c.scale_f16.size());
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    out[static_cast<size_t>(i)] = static_cast<float>(c.q[static_cast<size_t>(i)]) * half_to_float(c.scale_f16[static_cast<size_t>(i / c.group)]);
  return out;
}

std::vector<float> lqer_product(const LqerFactors& f) {
  const int64_t rows = f.a.rows, r = f.a.cols, cols = f.b.cols;
  if (f.b.rows != r) fail("LQER: factor shapes {}x{} and {}x{} do not chain", rows, r, f.b.rows, cols);
  const std::vector<float> a = dequantize(f.a), b = dequantize(f.b);
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t k = 0; k < r; ++k) s += double(a[static_cast<size_t>(i * r + k)]) * double(b[static_cast<size_t>(k * cols + j)]);
      out[static_cast<size_t>(i * cols + j)] = static_cast<float>(s);
    }
  return out;
}

}  // namespace golf::artifact
