#include "quant/lqer.h"

#include <Eigen/Dense>
#include <Eigen/SVD>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "artifact/half.h"

namespace golf::quant {

namespace {

constexpr uint16_t kSmallestNormalHalf = 0x0400;  // 2^-14
constexpr uint16_t kLargestHalf = 0x7BFF;         // 65504

// fp16(max / divisor), kept in [2^-14, 65504] so that a zero group divides safely (its codes are 0).
uint16_t group_scale(double max_abs, double divisor) {
  const uint16_t s = artifact::float_to_half(static_cast<float>(max_abs / divisor));
  if ((s & 0x7FFF) < kSmallestNormalHalf) return kSmallestNormalHalf;
  if ((s & 0x7FFF) > kLargestHalf) return kLargestHalf;
  return s;
}

// x (n values, row-major) → codes with one scale per `group` values: s = fp16(max|group| / divisor),
// q = clamp(round_half_even(x / s), qmin, qmax).
artifact::GroupedCodes quantize_grouped(const double* x, int64_t rows, int64_t cols, int64_t group, double divisor, int bits,
                              int qmin, int qmax) {
  artifact::GroupedCodes out;
  out.rows = rows, out.cols = cols, out.bits = bits, out.qmin = qmin, out.qmax = qmax, out.group = group;
  const int64_t n = rows * cols;
  out.q.resize(static_cast<size_t>(n));
  out.scale_f16.resize(static_cast<size_t>(n / group));
  for (int64_t g = 0; g < n / group; ++g) {
    double max_abs = 0;
    for (int64_t i = g * group; i < (g + 1) * group; ++i) max_abs = std::max(max_abs, std::abs(x[i]));
    const uint16_t s16 = group_scale(max_abs, divisor);
    out.scale_f16[static_cast<size_t>(g)] = s16;
    const double s = artifact::half_to_float(s16);
    for (int64_t i = g * group; i < (g + 1) * group; ++i) {
      const double r = std::nearbyint(x[i] / s);  // FE_TONEAREST: half to even
      out.q[static_cast<size_t>(i)] = static_cast<int8_t>(std::clamp(r, double(qmin), double(qmax)));
    }
  }
  return out;
}

}  // namespace

artifact::GroupedCodes quantize_gate_int8(const float* w, int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1) fail("QuantGate: a {}x{} gate matrix has no values", rows, cols);
  std::vector<double> x(w, w + rows * cols);
  for (const double v : x)
    if (!std::isfinite(v)) fail("QuantGate: the gate matrix holds non-finite values");
  return quantize_grouped(x.data(), rows, cols, cols, 127.0, 8, -127, 127);
}

void lqer_svd(const float* e, int64_t rows, int64_t cols, int rank, std::vector<double>* a, std::vector<double>* b) {
  if (rank < 1 || rank > std::min(rows, cols))
    fail("LQER_RANK={} must be in [1, min(rows, cols) = {}] for a {}x{} matrix", rank, std::min(rows, cols), rows, cols);
  using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  RowMajor m(rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(e[i])) fail("LQER: the {}x{} error matrix holds non-finite values", rows, cols);
    m.data()[i] = e[i];
  }
  const Eigen::BDCSVD<Eigen::MatrixXd> svd(Eigen::MatrixXd(m), Eigen::ComputeThinU | Eigen::ComputeThinV);
  Eigen::MatrixXd u = svd.matrixU().leftCols(rank), v = svd.matrixV().leftCols(rank);
  const Eigen::VectorXd sv = svd.singularValues().head(rank);
  for (int k = 0; k < rank; ++k) {  // sign: each row of B has its largest-|·| entry positive
    Eigen::Index j = 0;
    v.col(k).cwiseAbs().maxCoeff(&j);
    if (v(j, k) < 0) u.col(k) *= -1, v.col(k) *= -1;
  }
  a->resize(static_cast<size_t>(rows * rank));
  b->resize(static_cast<size_t>(rank * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int k = 0; k < rank; ++k) (*a)[static_cast<size_t>(i * rank + k)] = u(i, k) * sv(k);
  for (int k = 0; k < rank; ++k)
    for (int64_t j = 0; j < cols; ++j) (*b)[static_cast<size_t>(k * cols + j)] = v(j, k);
}

artifact::LqerFactors lqer_factors(const float* e, int64_t rows, int64_t cols, const LqerSpec& spec) {
  if (spec.factor_bits < 2 || spec.factor_bits > 8) fail("LQER_FACTOR_BITS={} must be in [2, 8]", spec.factor_bits);
  if (spec.asym_group < 1) fail("LQER_ASYM_GROUP={} must be positive", spec.asym_group);
  std::vector<double> a, b;
  lqer_svd(e, rows, cols, spec.rank, &a, &b);
  const int64_t r = spec.rank;
  artifact::LqerFactors f;
  f.asym = spec.asym && (r * cols) % spec.asym_group == 0;
  if (f.asym) {
    f.a = quantize_grouped(a.data(), rows, r, rows * r, 1.5, 2, -2, 1);  // one scale per matrix
    f.b = quantize_grouped(b.data(), r, cols, spec.asym_group, 7.5, 4, -8, 7);
  } else {
    const int qmax = (1 << (spec.factor_bits - 1)) - 1;
    f.a = quantize_grouped(a.data(), rows, r, r, qmax, spec.factor_bits, -qmax, qmax);  // per row
    f.b = quantize_grouped(b.data(), r, cols, cols, qmax, spec.factor_bits, -qmax, qmax);
  }
  return f;
}

}  // namespace golf::quant
