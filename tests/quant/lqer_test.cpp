// LQER and QuantGate (quant/lqer.h): invariants of the low-rank correction and the grouped codes,
// and agreement with an independent numpy float64 implementation (tests/reference/lqer_reference.py).
#include "quant/lqer.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <sstream>

#include "core/error.h"
#include "artifact/half.h"
#include "tests/test_util.h"

namespace golf::quant {
namespace {

// E = Σ_k σ_k u_k v_kᵀ + noise·N(0, 1): distinct leading singular values (stable singular vectors).
std::vector<float> error_matrix(int64_t rows, int64_t cols, uint64_t seed, double noise = 0.01) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> n01;
  std::vector<double> e(static_cast<size_t>(rows * cols));
  for (auto& v : e) v = noise * n01(gen);
  const double sigmas[] = {1.0, 0.7, 0.45, 0.3, 0.2, 0.12};
  for (const double s : sigmas) {
    std::vector<double> u(static_cast<size_t>(rows)), v(static_cast<size_t>(cols));
    for (auto& x : u) x = n01(gen) / std::sqrt(double(rows));
    for (auto& x : v) x = n01(gen) / std::sqrt(double(cols));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) e[static_cast<size_t>(i * cols + j)] += s * u[i] * v[j];
  }
  return std::vector<float>(e.begin(), e.end());
}

double frobenius(const std::vector<float>& e, const std::vector<float>* minus = nullptr) {
  double s = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    const double d = double(e[i]) - (minus ? double((*minus)[i]) : 0.0);
    s += d * d;
  }
  return std::sqrt(s);
}

TEST(Lqer, ExactLowRankErrorIsReconstructedBySvd) {
  const int64_t rows = 40, cols = 64;
  const auto e = error_matrix(rows, cols, 1, /*noise=*/0.0);  // rank 6 exactly
  std::vector<double> a, b;
  lqer_svd(e.data(), rows, cols, 6, &a, &b);
  double worst = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int k = 0; k < 6; ++k) s += a[i * 6 + k] * b[k * cols + j];
      worst = std::max(worst, std::abs(s - e[i * cols + j]));
    }
  EXPECT_LT(worst, 1e-6);  // fp32 inputs
  // B's rows are orthonormal and each has its largest-|·| entry positive.
  for (int k = 0; k < 6; ++k) {
    double norm = 0, top = 0;
    for (int64_t j = 0; j < cols; ++j) {
      norm += b[k * cols + j] * b[k * cols + j];
      if (std::abs(b[k * cols + j]) > std::abs(top)) top = b[k * cols + j];
    }
    EXPECT_NEAR(norm, 1.0, 1e-12);
    EXPECT_GT(top, 0);
  }
}

TEST(Lqer, AsymmetricFormUsesTheRecordsRangesAndReducesTheError) {
  const int64_t rows = 96, cols = 128;
  const auto e = error_matrix(rows, cols, 2);
  const artifact::LqerFactors f = lqer_factors(e.data(), rows, cols, LqerSpec{});
  ASSERT_TRUE(f.asym);  // 4·128 is a multiple of 64
  EXPECT_EQ(f.a.group, rows * 4);
  EXPECT_EQ(f.a.scale_f16.size(), 1u);
  EXPECT_EQ(f.b.group, 64);
  EXPECT_EQ(f.b.scale_f16.size(), 4u * 128 / 64);
  for (const int8_t q : f.a.q) EXPECT_TRUE(q >= -2 && q <= 1) << int(q);
  for (const int8_t q : f.b.q) EXPECT_TRUE(q >= -8 && q <= 7) << int(q);
  // The quantized correction reduces the error, and cannot beat the unquantized rank-4 SVD.
  const auto ab = artifact::lqer_product(f);
  std::vector<double> a, b;
  lqer_svd(e.data(), rows, cols, 4, &a, &b);
  std::vector<float> exact(e.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int k = 0; k < 4; ++k) s += a[i * 4 + k] * b[k * cols + j];
      exact[i * cols + j] = static_cast<float>(s);
    }
  EXPECT_LT(frobenius(e, &ab), frobenius(e));
  EXPECT_GT(frobenius(e, &ab), frobenius(e, &exact));
}

TEST(Lqer, SymmetricFallbackWhenTheGroupDoesNotDivide) {
  const int64_t rows = 50, cols = 100;  // 4·100 = 400 is not a multiple of 64
  const auto e = error_matrix(rows, cols, 3);
  LqerSpec spec;
  spec.factor_bits = 4;
  const artifact::LqerFactors f = lqer_factors(e.data(), rows, cols, spec);
  EXPECT_FALSE(f.asym);
  EXPECT_EQ(f.a.group, 4);    // per row of A
  EXPECT_EQ(f.b.group, cols); // per row of B
  for (const int8_t q : f.a.q) EXPECT_TRUE(q >= -7 && q <= 7);
  for (const int8_t q : f.b.q) EXPECT_TRUE(q >= -7 && q <= 7);
  const auto ab = artifact::lqer_product(f);
  EXPECT_LT(frobenius(e, &ab), frobenius(e));
}

TEST(Lqer, RankLargerThanTheMatrixIsOneClearError) {
  const auto e = error_matrix(6, 10, 4);
  LqerSpec spec;
  spec.rank = 7;
  const std::string msg = test::error_of([&] { lqer_factors(e.data(), 6, 10, spec); });
  EXPECT_NE(msg.find("LQER_RANK=7 must be in [1, min(rows, cols) = 6] for a 6x10 matrix"), std::string::npos) << msg;
  spec.rank = 0;
  EXPECT_NE(test::error_of([&] { lqer_factors(e.data(), 6, 10, spec); }).find("LQER_RANK=0"), std::string::npos);
}

TEST(Lqer, ZeroErrorGivesZeroCodesAndTheSmallestNormalScale) {
  // S = 0, so A = U·S = 0 whatever orthonormal U, V the SVD picks (B = Vᵀ stays a unit basis).
  const std::vector<float> e(64 * 64, 0.0f);
  const artifact::LqerFactors f = lqer_factors(e.data(), 64, 64, LqerSpec{});
  for (const int8_t q : f.a.q) EXPECT_EQ(q, 0);
  EXPECT_EQ(f.a.scale_f16, std::vector<uint16_t>{0x0400});
  for (const float v : artifact::lqer_product(f)) EXPECT_EQ(v, 0.0f);
}

TEST(QuantGate, Int8PerRowWithinHalfAStep) {
  std::mt19937_64 gen(5);
  std::normal_distribution<float> n01;
  std::vector<float> w(8 * 12);
  for (auto& v : w) v = 0.3f * n01(gen);
  const artifact::GroupedCodes c = quantize_gate_int8(w.data(), 8, 12);
  ASSERT_EQ(c.scale_f16.size(), 8u);
  const auto back = artifact::dequantize(c);
  for (int r = 0; r < 8; ++r) {
    const float s = artifact::half_to_float(c.scale_f16[r]);
    for (int j = 0; j < 12; ++j) {
      EXPECT_LE(std::abs(back[r * 12 + j] - w[r * 12 + j]), 0.5f * s * 1.0001f + 1e-7f);
      EXPECT_LE(std::abs(c.q[r * 12 + j]), 127);
    }
  }
}

// ---- agreement with the numpy float64 reference -------------------------------------------------

struct Reference {
  std::map<std::string, std::string> files;
  std::map<std::string, double> report;
};

Reference run_reference(const std::vector<float>& e, int64_t rows, int64_t cols, const std::string& options) {
  test::TempDir dir;
  test::write_file(dir / "e.f32", std::string(reinterpret_cast<const char*>(e.data()), e.size() * 4));
  const auto ran = test::run_reference(
      "lqer_reference.py", fmt::format("{} --rows {} --cols {} {}", test::quote(dir.path()), rows, cols, options));
  EXPECT_EQ(ran.exit_code, 0) << ran.output;
  Reference r;
  for (const char* f : {"qa.i8", "sa.u16", "qb.i8", "sb.u16", "ab.f64", "q.i8", "s.u16"})
    if (std::filesystem::exists(dir / f)) r.files[f] = test::read_file(dir / f);
  if (std::filesystem::exists(dir / "report.txt")) {
    std::istringstream lines(test::read_file(dir / "report.txt"));
    for (std::string key; lines >> key;) lines >> r.report[key];
  }
  return r;
}

template <class T>
std::vector<T> as(const std::string& bytes) {
  std::vector<T> v(bytes.size() / sizeof(T));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
  return v;
}

int64_t differing(const std::vector<int8_t>& a, const std::vector<int8_t>& b) {
  if (a.size() != b.size()) return -1;
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return n;
}

TEST(LqerReference, MatchesNumpyFloat64) {
  // Both sides take the SVD in float64 (Eigen BDCSVD vs LAPACK gesdd): factors agree to ~1e-12
  // relative, so a code can differ only where A/s or B/s lands within that of a half-integer
  // (probability ~1e-9 per code): codes and scales must agree exactly.
  struct Case {
    const char* name;
    int64_t rows, cols;
    int rank, bits, group;
    bool asym;
  };
  const Case cases[] = {
      {"asymmetric rank 4, groups of 64", 96, 128, 4, 4, 64, true},
      {"asymmetric rank 3, groups of 32, tall", 200, 64, 3, 4, 32, true},
      {"symmetric fallback (group does not divide)", 50, 100, 4, 4, 64, true},
      {"symmetric by choice, 6 bits", 64, 48, 2, 6, 64, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const auto e = error_matrix(c.rows, c.cols, 10 + c.rows);
    const Reference ref = run_reference(
        e, c.rows, c.cols, fmt::format("--rank {} --bits {} --group {}{}", c.rank, c.bits, c.group, c.asym ? "" : " --no-asym"));
    LqerSpec spec;
    spec.rank = c.rank, spec.factor_bits = c.bits, spec.asym_group = c.group, spec.asym = c.asym;
    const artifact::LqerFactors f = lqer_factors(e.data(), c.rows, c.cols, spec);
    EXPECT_EQ(f.asym, ref.report.at("asym") != 0);
    EXPECT_EQ(differing(f.a.q, as<int8_t>(ref.files.at("qa.i8"))), 0);
    EXPECT_EQ(differing(f.b.q, as<int8_t>(ref.files.at("qb.i8"))), 0);
    EXPECT_EQ(f.a.scale_f16, as<uint16_t>(ref.files.at("sa.u16")));
    EXPECT_EQ(f.b.scale_f16, as<uint16_t>(ref.files.at("sb.u16")));
    // The unquantized product and both errors.
    std::vector<double> a, b;
    lqer_svd(e.data(), c.rows, c.cols, c.rank, &a, &b);
    const auto ab_ref = as<double>(ref.files.at("ab.f64"));
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < c.rows; ++i)
      for (int64_t j = 0; j < c.cols; ++j) {
        double s = 0;
        for (int k = 0; k < c.rank; ++k) s += a[i * c.rank + k] * b[k * c.cols + j];
        worst = std::max(worst, std::abs(s - ab_ref[i * c.cols + j]));
        scale = std::max(scale, std::abs(ab_ref[i * c.cols + j]));
      }
    EXPECT_LT(worst, 1e-10 * scale);
    const auto ab = artifact::lqer_product(f);
    EXPECT_NEAR(frobenius(e, &ab), ref.report.at("err_quant"), 1e-6 * ref.report.at("err_quant"));
    EXPECT_LT(ref.report.at("err_svd"), ref.report.at("err_quant"));  // quantizing the factors costs something
  }
}

TEST(LqerReference, QuantGateMatchesNumpy) {
  for (const int64_t cols : {12, 512}) {
    std::mt19937_64 gen(static_cast<uint64_t>(cols));
    std::normal_distribution<float> n01;
    std::vector<float> w(static_cast<size_t>(8 * cols));
    for (auto& v : w) v = 0.05f * n01(gen);
    w[3] = 0;  // rows keep their own scale
    const Reference ref = run_reference(w, 8, cols, "--gate");
    const artifact::GroupedCodes c = quantize_gate_int8(w.data(), 8, cols);
    EXPECT_EQ(differing(c.q, as<int8_t>(ref.files.at("q.i8"))), 0) << cols;
    EXPECT_EQ(c.scale_f16, as<uint16_t>(ref.files.at("s.u16"))) << cols;
  }
}

}  // namespace
}  // namespace golf::quant
