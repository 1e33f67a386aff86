// GPTQ, SDClip scales and the fp16/bf16 conversions, read as a specification (quant-and-pack.md §5.5):
// GPTQ beats round-to-nearest on correlated inputs and equals it when H is diagonal, is invariant to
// the scale of H and equivariant to input permutations, survives dead inputs and indefinite Hessians,
// rounds half-to-even and clamps symmetrically, is deterministic across thread counts, and agrees
// with an independent torch float64 implementation (tests/reference/gptq_reference.py).
#include "quant/gptq.h"

#include <Eigen/Dense>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <sstream>

#include "core/error.h"
#include "artifact/half.h"
#include "tests/test_util.h"

namespace golf::quant {
namespace {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Matrix gaussian_matrix(int64_t rows, int64_t cols, uint64_t seed, double sigma = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, sigma);
  Matrix m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

std::vector<float> to_floats(const Matrix& m) { return std::vector<float>(m.data(), m.data() + m.size()); }

Matrix from_floats(const std::vector<float>& v, int64_t rows, int64_t cols) {
  Matrix m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = v[i];
  return m;
}

// H = XᵀX / samples for X = Z A, Z ~ N(0,1), A = diag(σ) R / √cols with R Gaussian and
// σ_k = 100^(−k/cols): every input mixes the same latent factors, whose variances span four decades,
// so H is far from diagonal (the setting where error feedback pays). Symmetric, rounded to fp32.
std::vector<float> correlated_hessian(int64_t cols, uint64_t seed, int64_t samples = 2048) {
  Matrix a = gaussian_matrix(cols, cols, seed + 1) / std::sqrt(static_cast<double>(cols));
  for (int64_t k = 0; k < cols; ++k) a.row(k) *= std::pow(100.0, -static_cast<double>(k) / static_cast<double>(cols));
  const Matrix x = gaussian_matrix(samples, cols, seed) * a;
  Matrix h = x.transpose() * x / static_cast<double>(samples);
  h = (h + h.transpose()).eval() / 2;
  return to_floats(h);
}

// tr((W−Ŵ) H (W−Ŵ)ᵀ) / rows, computed the plain way (E·H, then ⟨·, E⟩), independent of the
// library's Gram-matrix form.
double weighted_error(const std::vector<float>& w, const std::vector<float>& h, const artifact::QuantizedMatrix& m) {
  const Matrix wm = from_floats(w, m.rows, m.cols), hm = from_floats(h, m.cols, m.cols);
  Matrix e(m.rows, m.cols);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c)
      e(r, c) = wm(r, c) - m.q[r * m.cols + c] * static_cast<double>(artifact::half_to_float(m.scale_f16[r]));
  const Matrix sym = (hm + hm.transpose()) / 2;
  return (e * sym).cwiseProduct(e).sum() / static_cast<double>(m.rows);
}

QuantSpec spec_with(int bits, bool gptq = true) {
  QuantSpec spec;
  spec.bits = bits;
  spec.gptq = gptq;
  return spec;
}

// ---- 1. GPTQ beats round-to-nearest ------------------------------------------------------------

TEST(GptqError, BelowRoundToNearestOnCorrelatedInputs) {
  // §5.5 item 1: strictly better on every seed, and on average below 0.9 × RTN (the spec's bound;
  // with inputs this correlated the measured ratio is far lower, see the printed values).
  const int64_t rows = 256, cols = 512;
  const std::vector<int> bit_widths = {4, 6};
  const int seeds = 4;
  std::map<int, double> ratio_sum;
  for (int seed = 1; seed <= seeds; ++seed) {
    const auto h = correlated_hessian(cols, 10 * seed);
    const auto w = to_floats(gaussian_matrix(rows, cols, 1000 + seed, 0.02));
    for (int bits : bit_widths) {
      QuantReport gptq_report, rtn_report;
      const auto gptq = quantize(w.data(), rows, cols, h.data(), spec_with(bits), &gptq_report);
      const auto rtn = quantize(w.data(), rows, cols, h.data(), spec_with(bits, false), &rtn_report);
      ASSERT_FALSE(gptq_report.fell_back_to_rtn);
      EXPECT_EQ(gptq.scale_f16, rtn.scale_f16);  // same scales: only the rounding decisions differ
      const double gptq_error = weighted_error(w, h, gptq), rtn_error = weighted_error(w, h, rtn);
      // The report's Gram-matrix form and the plain E·H form differ only by summation order.
      EXPECT_NEAR(gptq_report.error, gptq_error, 1e-9 * gptq_error);
      EXPECT_NEAR(gptq_report.error_rtn, rtn_error, 1e-9 * rtn_error);
      EXPECT_DOUBLE_EQ(rtn_report.error, rtn_report.error_rtn);
      EXPECT_LT(gptq_error, rtn_error) << "bits " << bits << " seed " << seed;
      ratio_sum[bits] += gptq_error / rtn_error;
    }
  }
  for (int bits : bit_widths) {
    const double mean_ratio = ratio_sum[bits] / seeds;
    std::printf("int%d: mean GPTQ/RTN Hessian-weighted error %.4f\n", bits, mean_ratio);
    EXPECT_LT(mean_ratio, 0.9) << "bits " << bits;
  }
}

// ---- 2. Diagonal Hessian ⇒ GPTQ is round-to-nearest -------------------------------------------

TEST(GptqExactness, DiagonalHessianEqualsRoundToNearestBitForBit) {
  // With H diagonal, U is diagonal: no column's error reaches another column, so every rounding
  // decision is RTN's. Checked for H = I (all ties in act-order) and a distinct positive diagonal
  // (act-order permutes), with 300 columns so blocks of 128 leave a partial block.
  const int64_t rows = 40, cols = 300;
  const auto w = to_floats(gaussian_matrix(rows, cols, 7, 0.02));
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> spread(0.1, 10.0);
  for (bool identity : {true, false}) {
    std::vector<float> h(cols * cols, 0.0f);
    for (int64_t j = 0; j < cols; ++j) h[j * cols + j] = identity ? 1.0f : static_cast<float>(spread(rng));
    for (int bits : {3, 6, 8}) {
      QuantReport report;
      const auto gptq = quantize(w.data(), rows, cols, h.data(), spec_with(bits), &report);
      const auto rtn = quantize(w.data(), rows, cols, h.data(), spec_with(bits, false));
      EXPECT_EQ(gptq.q, rtn.q) << "identity " << identity << " bits " << bits;
      EXPECT_EQ(gptq.scale_f16, rtn.scale_f16);
      EXPECT_FALSE(report.fell_back_to_rtn);
      EXPECT_EQ(report.error, report.error_rtn);
    }
  }
}

// ---- 3/4. Invariances ---------------------------------------------------------------------------

TEST(GptqInvariance, ScalingTheHessianByAPowerOfTwoChangesNothing) {
  // Damping is relative to mean(diag H) and the update uses ratios U_ck / U_cc, so H and 1024·H
  // give the same codes; 1024 = 32² keeps every step exact (sqrt(4^k x) = 2^k sqrt(x) in IEEE).
  const int64_t rows = 64, cols = 256;
  const auto h = correlated_hessian(cols, 21);
  std::vector<float> h1024(h);
  for (auto& v : h1024) v *= 1024.0f;
  const auto w = to_floats(gaussian_matrix(rows, cols, 22, 0.02));
  for (double lambda : {0.0, 0.175}) {  // the Hessian-aware clip normalizes diag(H) too
    QuantSpec spec = spec_with(6);
    spec.hessian_clip_lambda = lambda;
    QuantReport r1, r2;
    const auto a = quantize(w.data(), rows, cols, h.data(), spec, &r1);
    const auto b = quantize(w.data(), rows, cols, h1024.data(), spec, &r2);
    EXPECT_EQ(a.q, b.q);
    EXPECT_EQ(a.scale_f16, b.scale_f16);
    EXPECT_EQ(r2.error, 1024 * r1.error);  // every product and sum scales exactly
  }
}

TEST(GptqInvariance, PermutingInputsPermutesCodes) {
  // Act-order sorts by diag(H); with distinct diagonal values the permuted problem is processed in
  // the same order, so codes follow the permutation exactly.
  const int64_t rows = 48, cols = 200;
  const auto h = correlated_hessian(cols, 31);
  const auto w = to_floats(gaussian_matrix(rows, cols, 32, 0.02));
  std::vector<float> diag(cols);
  for (int64_t j = 0; j < cols; ++j) diag[j] = h[j * cols + j];
  std::sort(diag.begin(), diag.end());
  ASSERT_EQ(std::adjacent_find(diag.begin(), diag.end()), diag.end()) << "diagonal has ties";

  std::vector<int64_t> perm(cols);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937_64(33));
  std::vector<float> w_p(rows * cols), h_p(cols * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) w_p[r * cols + j] = w[r * cols + perm[j]];
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) h_p[i * cols + j] = h[perm[i] * cols + perm[j]];

  QuantReport r1, r2;
  const auto a = quantize(w.data(), rows, cols, h.data(), spec_with(6), &r1);
  const auto b = quantize(w_p.data(), rows, cols, h_p.data(), spec_with(6), &r2);
  ASSERT_EQ(a.scale_f16, b.scale_f16);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) ASSERT_EQ(b.q[r * cols + j], a.q[r * cols + perm[j]]) << r << "," << j;
  EXPECT_NEAR(r2.error, r1.error, 1e-12 * r1.error);  // same terms, different summation order
}

// ---- act-order ------------------------------------------------------------------------------------

TEST(GptqActOrder, HelpsWhenTheImportantInputsComeLast) {
  // GPTQ's residual cost of column c is its rounding error weighted by 1/U_cc², the variance of x_c
  // conditioned on the columns still to be quantized; the last column gets no help at all (weight
  // H_cc). Here input j is scaled by 10^(2j/cols), so diag(H) grows by 10^4 across the columns: in
  // natural order the heaviest inputs go last, act-order puts them first and leaves the lightest
  // ones for the end. Expected: act-order strictly better on every seed.
  const int64_t rows = 64, cols = 256;
  for (int seed = 1; seed <= 3; ++seed) {
    auto h = correlated_hessian(cols, 40 + seed);
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        h[i * cols + j] *= static_cast<float>(std::pow(10.0, 2.0 * static_cast<double>(i + j) / cols));
    const auto w = to_floats(gaussian_matrix(rows, cols, 50 + seed, 0.02));
    QuantSpec with = spec_with(6), without = spec_with(6);
    without.act_order = false;
    QuantReport on, off;
    quantize(w.data(), rows, cols, h.data(), with, &on);
    quantize(w.data(), rows, cols, h.data(), without, &off);
    std::printf("seed %d: act-order error / natural order error = %.4f\n", seed, on.error / off.error);
    EXPECT_LT(on.error, off.error) << "seed " << seed;
    EXPECT_LT(off.error, off.error_rtn);  // natural order is still GPTQ, just a worse order
  }
}

// ---- 5. U: one factorization equals the records' three steps ------------------------------------

TEST(InverseCholesky, MatchesCholInverseCholAndInvertsH) {
  // Sizes around the 64-column base case of the recursive triangular inverse.
  for (int64_t n : {1, 5, 64, 65, 130, 257}) {
    const Matrix h = from_floats(correlated_hessian(n, 60 + n, 4 * n + 16), n, n) + 0.01 * Matrix::Identity(n, n);
    const auto u_flat = upper_cholesky_of_inverse(h.data(), n);
    ASSERT_EQ(static_cast<int64_t>(u_flat.size()), n * n);
    const Matrix u = Eigen::Map<const Matrix>(u_flat.data(), n, n);
    // The records: L = chol(H), Hinv = (L Lᵀ)⁻¹, U = upper chol(Hinv).
    const Eigen::LLT<Eigen::MatrixXd> llt(h);
    Eigen::MatrixXd hinv = llt.solve(Eigen::MatrixXd::Identity(n, n));
    hinv = (hinv + hinv.transpose()).eval() / 2;
    const Eigen::MatrixXd u3 = Eigen::LLT<Eigen::MatrixXd, Eigen::Upper>(hinv).matrixU();
    // Both are backward stable, so each is within ~n·cond(H)·ε of the exact factor (first-order
    // perturbation bound of the inverse, n-term sums); the same bound holds for the residual of Uᵀ U H.
    const double cond = [&] {
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(h);
      return eig.eigenvalues().maxCoeff() / eig.eigenvalues().minCoeff();
    }();
    const double tolerance = std::max<double>(n, 16) * cond * std::numeric_limits<double>::epsilon();
    EXPECT_LT((u - u3).norm() / u3.norm(), tolerance) << "n " << n << " cond " << cond;
    EXPECT_LT((u.transpose() * u * h - Matrix::Identity(n, n)).norm() / std::sqrt(double(n)), tolerance) << n;
    EXPECT_TRUE(u.isUpperTriangular(0.0));
    for (int64_t i = 0; i < n; ++i) EXPECT_GT(u(i, i), 0);
  }
  // Not positive definite ⇒ empty.
  const Matrix indefinite = (Matrix(2, 2) << 1, 2, 2, 1).finished();
  EXPECT_TRUE(upper_cholesky_of_inverse(indefinite.data(), 2).empty());
}

// ---- 6. Dead inputs -------------------------------------------------------------------------------

TEST(GptqDeadColumns, AreZeroedCountedAndFinite) {
  const int64_t rows = 32, cols = 160;
  auto h = correlated_hessian(cols, 70);
  const std::vector<int64_t> dead = {0, 3, 100, 159};  // first, last, and inside both blocks
  for (int64_t j : dead)
    for (int64_t k = 0; k < cols; ++k) h[j * cols + k] = h[k * cols + j] = 0.0f;  // a never-active input
  const auto w = to_floats(gaussian_matrix(rows, cols, 71, 0.02));
  QuantReport report;
  const auto m = quantize(w.data(), rows, cols, h.data(), spec_with(6), &report);
  EXPECT_EQ(report.dead_columns, static_cast<int64_t>(dead.size()));
  EXPECT_FALSE(report.fell_back_to_rtn);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j : dead) {
      ASSERT_NE(w[r * cols + j], 0.0f);  // the weight was there; the policy removes it
      EXPECT_EQ(m.q[r * cols + j], 0);
    }
  for (float v : artifact::dequantize(m)) ASSERT_TRUE(std::isfinite(v));
  EXPECT_TRUE(std::isfinite(report.error));
  EXPECT_NEAR(report.error, weighted_error(w, h, m), 1e-9 * report.error);
  EXPECT_LT(report.error, report.error_rtn);

  // Every input dead: H = 0 becomes I, all codes zero.
  const std::vector<float> zero_h(cols * cols, 0.0f);
  const auto all_dead = quantize(w.data(), rows, cols, zero_h.data(), spec_with(6), &report);
  EXPECT_EQ(report.dead_columns, cols);
  EXPECT_TRUE(std::all_of(all_dead.q.begin(), all_dead.q.end(), [](int8_t v) { return v == 0; }));
  EXPECT_EQ(report.error, 0.0);
}

// ---- 7. Indefinite Hessians -----------------------------------------------------------------------

// H = Q diag(ev) Qᵀ with Q random orthogonal, ev_k ∈ [1, 2] except ev_0 = −ρ·mean(diag H) (solved
// exactly: trace is invariant, so mean(diag H) = mean(ev)). H + λI is positive definite iff
// λ > ρ·mean(diag H), i.e. damp > ρ.
std::vector<float> indefinite_hessian(int64_t n, double rho, uint64_t seed) {
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(gaussian_matrix(n, n, seed));
  const Eigen::MatrixXd q = qr.householderQ();
  std::mt19937_64 rng(seed + 1);
  std::uniform_real_distribution<double> uniform(1.0, 2.0);
  Eigen::VectorXd ev(n);
  for (int64_t k = 1; k < n; ++k) ev(k) = uniform(rng);
  ev(0) = -rho * ev.tail(n - 1).sum() / (static_cast<double>(n) + rho);
  Matrix h = q * ev.asDiagonal() * q.transpose();
  h = (h + h.transpose()).eval() / 2;
  return to_floats(h);
}

// −λ_min / mean(diag) of the fp32 matrix the quantizer actually sees.
double negative_eigen_ratio(const std::vector<float>& h, int64_t n) {
  const Matrix m = from_floats(h, n, n);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(m);
  return -eig.eigenvalues().minCoeff() / (m.trace() / static_cast<double>(n));
}

TEST(GptqDamping, IndefiniteHessianRetriesWithTenfoldDamping) {
  const int64_t rows = 16, cols = 64;
  const auto h = indefinite_hessian(cols, 0.5, 80);
  const double ratio = negative_eigen_ratio(h, cols);
  ASSERT_NEAR(ratio, 0.5, 0.05);  // the construction; far from the decades 0.1 and 1 the retries cross
  int expected_retries = 0;
  double expected_damp = 0.01;
  while (expected_damp <= ratio) expected_damp *= 10, ++expected_retries;  // 0.01, 0.1 fail; 1.0 works
  const auto w = to_floats(gaussian_matrix(rows, cols, 81, 0.02));
  QuantReport report;
  const auto m = quantize(w.data(), rows, cols, h.data(), spec_with(6), &report);
  EXPECT_EQ(report.damp_retries, expected_retries);
  EXPECT_DOUBLE_EQ(report.damp_used, expected_damp);
  EXPECT_FALSE(report.fell_back_to_rtn);
  EXPECT_TRUE(std::isfinite(report.error));
  for (float v : artifact::dequantize(m)) ASSERT_TRUE(std::isfinite(v));
}

TEST(GptqDamping, HopelesslyIndefiniteHessianFallsBackToRoundToNearest) {
  // ρ = 50 exceeds the last retry's damp of 10: every factorization fails.
  const int64_t rows = 16, cols = 64;
  const auto h = indefinite_hessian(cols, 50, 90);
  ASSERT_GT(negative_eigen_ratio(h, cols), 10.0);
  const auto w = to_floats(gaussian_matrix(rows, cols, 91, 0.02));
  QuantReport report;
  const auto m = quantize(w.data(), rows, cols, h.data(), spec_with(6), &report);
  EXPECT_TRUE(report.fell_back_to_rtn);
  EXPECT_EQ(report.damp_retries, 3);
  EXPECT_EQ(report.damp_used, 0.0);
  EXPECT_EQ(m.q, quantize(w.data(), rows, cols, h.data(), spec_with(6, false)).q);
  EXPECT_EQ(report.error, report.error_rtn);
  EXPECT_TRUE(std::isfinite(report.error));
}

// ---- 8. Rounding and clamping ---------------------------------------------------------------------

TEST(GptqRounding, TiesGoToEvenAndCodesClampAtQmax) {
  // One row [T, −T] with scale exactly 0.5: k is chosen from the row's own std so that
  // k·std/qmax = 0.5 up to a few ulps, far inside fp16's rounding interval around 0.5.
  struct Probe {
    double ratio;  // w / s
    int expected;
  };
  for (int bits : {6, 8}) {
    const int qmax = (1 << (bits - 1)) - 1;
    const std::vector<Probe> probes = {{0.5, 0},         {1.5, 2},          {2.5, 2},           {3.5, 4},
                                       {0.4, 0},         {0.6, 1},          {qmax - 0.5, qmax - 1},
                                       {qmax + 0.5, qmax}, {qmax + 1.5, qmax}, {3.0 * qmax, qmax}};
    const int64_t cols = 2 * static_cast<int64_t>(probes.size());
    std::vector<float> w(cols);
    for (size_t i = 0; i < probes.size(); ++i) {
      w[i] = static_cast<float>(probes[i].ratio * 0.5);
      w[i + probes.size()] = -w[i];
    }
    double squares = 0;
    for (float v : w) squares += double(v) * v;  // the mean is 0 by symmetry
    QuantSpec spec = spec_with(bits);
    spec.clip_sigmas = qmax * 0.5 / std::sqrt(squares / double(cols - 1));
    const std::vector<float> identity = [&] {
      std::vector<float> h(cols * cols, 0.0f);
      for (int64_t j = 0; j < cols; ++j) h[j * cols + j] = 1.0f;
      return h;
    }();
    for (bool gptq : {false, true}) {
      spec.gptq = gptq;
      QuantReport report;
      const auto m = quantize(w.data(), 1, cols, identity.data(), spec, &report);
      ASSERT_EQ(m.scale_f16[0], 0x3800) << "scale is not 0.5";
      int at_limit = 0;
      for (size_t i = 0; i < probes.size(); ++i) {
        EXPECT_EQ(m.q[i], probes[i].expected) << "bits " << bits << " ratio " << probes[i].ratio;
        EXPECT_EQ(m.q[i + probes.size()], -probes[i].expected) << "bits " << bits << " ratio -" << probes[i].ratio;
        at_limit += 2 * (probes[i].expected == qmax);
      }
      EXPECT_EQ(*std::min_element(m.q.begin(), m.q.end()), -qmax);  // never -qmax-1
      EXPECT_DOUBLE_EQ(report.clip_rate, double(at_limit) / double(cols));
    }
  }
}

// ---- 9. Scales and dequantization -----------------------------------------------------------------

TEST(SdClip, ScaleIsFp16OfKTimesUnbiasedStdOverQmax) {
  // Row [1, −1]: unbiased std √2 (the biased one would be 1). k = qmax makes the scale the std:
  // fp16(√2) = 1448/1024 = 1.4140625, bits 0x3DA8.
  const std::vector<float> w = {1.0f, -1.0f};
  QuantSpec spec = spec_with(6, false);
  spec.clip_sigmas = 31;
  EXPECT_EQ(quantize(w.data(), 1, 2, nullptr, spec).scale_f16[0], 0x3DA8);
  // A 12σ clip on int6: s = 12·√2/31 = 0.5474375…; fp16 spacing in [0.5, 1) is 2^-11, so
  // s·2048 = 1121.15 → 1121/2048 = 0.54736328125, bits 0x3800 + (1121 − 1024) = 0x3861.
  spec.clip_sigmas = 12;
  EXPECT_EQ(quantize(w.data(), 1, 2, nullptr, spec).scale_f16[0], 0x3861);
}

TEST(SdClip, HessianAwareClipFollowsRowImportance) {
  // R0406: D_j = diag(H+λI)_j / mean, r_i = mean_j |W_ij| D_j normalized to mean 1,
  // clip_i = k·std_i·(1 + λ_clip (r_i − 1)). Recomputed here for a small case with damp 0.
  const int64_t rows = 3, cols = 4;
  const std::vector<float> w = {1, -2, 0.5f, 0.25f, -1, 1, 1, -1, 3, 0, 0, -3};
  const std::vector<double> diag = {3, 1, 1, 1};
  std::vector<double> r(rows);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) r[i] += std::fabs(w[i * cols + j]) * diag[j] / 1.5 / cols;
  }
  const double r_mean = (r[0] + r[1] + r[2]) / 3;
  const auto scales = sdclip_scales(w.data(), rows, cols, 6, 12.0, 0.5, diag.data());
  for (int64_t i = 0; i < rows; ++i) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < cols; ++j) mean += w[i * cols + j] / double(cols);
    for (int64_t j = 0; j < cols; ++j) var += std::pow(w[i * cols + j] - mean, 2) / double(cols - 1);
    const double s = 12.0 * std::sqrt(var) * (1 + 0.5 * (r[i] / r_mean - 1)) / 31;
    EXPECT_EQ(scales[i], artifact::float_to_half(static_cast<float>(s))) << i;
    // r differs between the rows, so the factor is not 1: this is not the plain clip.
    EXPECT_NE(scales[i], sdclip_scales(w.data(), rows, cols, 6, 12.0, 0.0, nullptr)[i]) << i;
  }
}

TEST(SdClip, ZeroRowGetsSmallestNormalScaleAndZeroCodes) {
  const int64_t rows = 3, cols = 64;
  auto w = to_floats(gaussian_matrix(rows, cols, 100, 0.02));
  std::fill(w.begin() + cols, w.begin() + 2 * cols, 0.0f);  // row 1
  const auto h = correlated_hessian(cols, 101);
  QuantReport report;
  const auto m = quantize(w.data(), rows, cols, h.data(), spec_with(6), &report);
  EXPECT_EQ(m.scale_f16[1], 0x0400);  // 2^-14, not 0 (0/0 would be NaN)
  for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(m.q[cols + c], 0);
  for (float v : artifact::dequantize(m)) ASSERT_TRUE(std::isfinite(v));
  EXPECT_TRUE(std::isfinite(report.error));
}

TEST(Dequantize, ExactProductRoundedToBf16ForEveryScaleAndCode) {
  // Every positive finite fp16 scale × every int8 code: float(q)·float(s) is exact in fp32
  // (≤ 8 + 11 significant bits), and dequantize returns its bf16 rounding.
  artifact::QuantizedMatrix m;
  m.cols = 256;
  m.bits = 8;
  for (uint16_t s = 0x0001; s <= 0x7BFF; ++s) m.scale_f16.push_back(s);
  m.rows = static_cast<int64_t>(m.scale_f16.size());
  m.q.resize(m.rows * m.cols);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) m.q[r * m.cols + c] = static_cast<int8_t>(c - 128);
  const auto out = artifact::dequantize(m);
  for (int64_t r = 0; r < m.rows; ++r) {
    const float s = artifact::half_to_float(m.scale_f16[r]);
    for (int64_t c = 0; c < m.cols; ++c) {
      const float product = static_cast<float>(c - 128) * s;
      ASSERT_EQ(static_cast<double>(product), static_cast<double>(c - 128) * static_cast<double>(s));
      ASSERT_EQ(out[r * m.cols + c], artifact::round_to_bf16(product)) << r << "," << c;
    }
  }
  m.scale_f16.pop_back();
  EXPECT_THROW(artifact::dequantize(m), Error);
}

// ---- fp16 / bf16 conversions ----------------------------------------------------------------------

// The value an fp16 pattern means, from the IEEE definition in double.
double half_value(uint16_t h) {
  const int exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  if (exponent == 31) return mantissa ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

TEST(Half, HalfToFloatIsExactForEveryPattern) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const double expected = half_value(static_cast<uint16_t>(h));
    const float got = artifact::half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(static_cast<double>(got), expected) << h;
      ASSERT_EQ(std::signbit(got), (h & 0x8000) != 0) << h;
    }
  }
}

// Nearest fp16 by search over all positive finite values plus 2^16 standing for +inf (the IEEE
// overflow rule: round as if the exponent range were unbounded); ties to the even pattern.
uint16_t nearest_half(float f) {
  static const std::vector<double> values = [] {
    std::vector<double> v;
    for (uint16_t h = 0; h <= 0x7BFF; ++h) v.push_back(half_value(h));
    v.push_back(65536.0);  // index 0x7C00 = +inf
    return v;
  }();
  const double x = std::fabs(static_cast<double>(f));
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  if (x >= 65536.0) return sign | 0x7C00;
  const auto upper = std::lower_bound(values.begin(), values.end(), x);
  const uint16_t hi = static_cast<uint16_t>(upper - values.begin());
  if (*upper == x || hi == 0) return sign | hi;
  const uint16_t lo = hi - 1;
  const double below = x - values[lo], above = values[hi] - x;
  if (below < above) return sign | lo;
  if (above < below) return sign | hi;
  return sign | ((lo & 1) ? hi : lo);
}

TEST(Half, FloatToHalfRoundsToNearestEvenIncludingSubnormalsAndOverflow) {
  std::vector<float> probes;
  for (uint16_t h = 0; h < 0x7C00; ++h) {
    const double lo = half_value(h), hi = h == 0x7BFF ? 65536.0 : half_value(h + 1);
    const float mid = static_cast<float>((lo + hi) / 2);  // exact: 12 significant bits
    probes.insert(probes.end(), {static_cast<float>(lo), mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)});
  }
  std::mt19937 rng(5);
  for (int i = 0; i < 1'000'000; ++i) {  // random patterns, mostly outside fp16's range
    const float f = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    if (!std::isnan(f)) probes.push_back(f);
  }
  probes.insert(probes.end(), {1e-30f, 65504.0f, 65519.99f, 65520.0f, 1e30f, INFINITY, 0x1p-25f, 0x1.000002p-25f});
  for (const float f : probes) {
    ASSERT_EQ(artifact::float_to_half(f), nearest_half(f)) << std::hexfloat << f;
    ASSERT_EQ(artifact::float_to_half(-f), nearest_half(-f)) << std::hexfloat << -f;
#ifdef __FLT16_MAX__
    // The compiler's own conversion (libgcc, round-to-nearest-even) as a second witness.
    ASSERT_EQ(artifact::float_to_half(f), std::bit_cast<uint16_t>(static_cast<_Float16>(f))) << std::hexfloat << f;
#endif
  }
  // Every finite fp16 survives the round trip; NaN stays NaN, infinities stay infinite.
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const bool nan = ((h >> 10) & 0x1F) == 31 && (h & 0x3FF) != 0;
    if (!nan) {
      ASSERT_EQ(artifact::float_to_half(artifact::half_to_float(h)), h) << h;
    }
  }
  EXPECT_TRUE(std::isnan(artifact::half_to_float(artifact::float_to_half(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(artifact::float_to_half(-INFINITY), 0xFC00);
}

TEST(Bf16, RoundsToNearestEvenForEveryHighHalf) {
  // For every upper 16 bits and the low halves that matter (exact, just above, just below and at
  // the midpoint, the extremes), the result is the nearer of the two bf16 neighbours, ties to the
  // even one; the neighbour past the largest finite bf16 is +inf (treated as 2^128).
  const std::vector<uint32_t> lows = {0x0000, 0x0001, 0x4000, 0x7FFF, 0x8000, 0x8001, 0xC000, 0xFFFF};
  for (uint32_t hi = 0; hi <= 0xFFFF; ++hi) {
    for (uint32_t lo : lows) {
      const float f = std::bit_cast<float>(hi << 16 | lo);
      const uint16_t got = artifact::float_to_bf16_bits(f);
      if (std::isnan(f)) {
        EXPECT_TRUE(std::isnan(artifact::bf16_bits_to_float(got))) << hi << " " << lo;
        continue;
      }
      if ((hi & 0x7FFF) == 0x7F80) {  // ±inf (lo = 0 only; the others are NaN)
        ASSERT_EQ(got, hi);
        continue;
      }
      const double x = std::fabs(static_cast<double>(f));
      const double down = std::fabs(static_cast<double>(std::bit_cast<float>(hi << 16)));
      const double up = (hi & 0x7FFF) == 0x7F7F ? std::ldexp(1.0, 128)
                                                 : std::fabs(static_cast<double>(std::bit_cast<float>((hi + 1) << 16)));
      uint32_t expected = hi;
      if (x - down > up - x || (x - down == up - x && (hi & 1))) expected = hi + 1;
      ASSERT_EQ(got, expected) << std::hex << hi << " " << lo;
      ASSERT_EQ(artifact::round_to_bf16(f), artifact::bf16_bits_to_float(got));
    }
  }
}

// ---- 10. Determinism and threads ------------------------------------------------------------------

std::vector<Job> mixed_jobs(std::vector<std::vector<float>>& storage) {
  struct Shape {
    int64_t rows, cols;
    int bits;
  };
  const std::vector<Shape> shapes = {{64, 128, 6}, {200, 96, 4}, {32, 256, 8}, {128, 128, 7}, {16, 64, 5}};
  std::vector<Job> jobs;
  for (size_t i = 0; i < shapes.size(); ++i) {
    storage.push_back(to_floats(gaussian_matrix(shapes[i].rows, shapes[i].cols, 200 + i, 0.02)));
    storage.push_back(correlated_hessian(shapes[i].cols, 300 + i, 512));
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    QuantSpec spec = spec_with(shapes[i].bits);
    spec.block_size = 32;
    jobs.push_back({storage[2 * i].data(), shapes[i].rows, shapes[i].cols, storage[2 * i + 1].data(), spec});
  }
  return jobs;
}

bool same_report(const QuantReport& a, const QuantReport& b) {
  return std::memcmp(&a.error, &b.error, sizeof(double)) == 0 &&
         std::memcmp(&a.error_rtn, &b.error_rtn, sizeof(double)) == 0 && a.damp_used == b.damp_used &&
         a.damp_retries == b.damp_retries && a.dead_columns == b.dead_columns &&
         a.fell_back_to_rtn == b.fell_back_to_rtn && a.clip_rate == b.clip_rate;
}

TEST(QuantizeAll, ResultsAreIdenticalForAnyThreadCountAndMatchSingleCalls) {
  std::vector<std::vector<float>> storage;
  const auto jobs = mixed_jobs(storage);
  const auto one = quantize_all(jobs, 1);
  const auto two = quantize_all(jobs, 2);
  const auto all = quantize_all(jobs, 0);
  ASSERT_EQ(one.size(), jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    QuantReport report;
    const auto direct = quantize(jobs[i].w, jobs[i].rows, jobs[i].cols, jobs[i].h, jobs[i].spec, &report);
    for (const auto* result : {&one[i], &two[i], &all[i]}) {
      EXPECT_EQ(result->first.q, direct.q) << "job " << i;
      EXPECT_EQ(result->first.scale_f16, direct.scale_f16) << "job " << i;
      EXPECT_EQ(result->first.bits, jobs[i].spec.bits);
      EXPECT_TRUE(same_report(result->second, report)) << "job " << i;
    }
  }
}

TEST(QuantizeAll, RethrowsTheFirstFailingJobInJobOrder) {
  std::vector<std::vector<float>> storage;
  auto jobs = mixed_jobs(storage);
  jobs[1].spec.bits = 9;  // job 1 is larger than job 3, so with threads it may well fail first or last
  storage[6][5] = NAN;    // job 3's weights
  for (int threads : {1, 2}) {
    try {
      quantize_all(jobs, threads);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bits must be in 2..8, got 9"), std::string::npos) << e.what();
    }
  }
}

// ---- argument errors ------------------------------------------------------------------------------

using test::error_of;

TEST(GptqErrors, RejectBadArgumentsNamingTheProblem) {
  const int64_t rows = 4, cols = 8;
  auto w = to_floats(gaussian_matrix(rows, cols, 400));
  auto h = correlated_hessian(cols, 401, 64);
  auto run = [&](QuantSpec spec, const float* hp = nullptr) {
    return error_of([&] { quantize(w.data(), rows, cols, hp ? hp : h.data(), spec); });
  };
  EXPECT_NE(run(spec_with(1)).find("bits must be in 2..8, got 1"), std::string::npos);
  EXPECT_NE(run(spec_with(9)).find("got 9"), std::string::npos);
  QuantSpec bad = spec_with(6);
  bad.clip_sigmas = 0;
  EXPECT_NE(run(bad).find("clip_sigmas"), std::string::npos);
  bad = spec_with(6);
  bad.block_size = 0;
  EXPECT_NE(run(bad).find("block_size"), std::string::npos);
  EXPECT_NE(error_of([&] { quantize(w.data(), rows, cols, nullptr, spec_with(6)); }).find("needs a Hessian"),
            std::string::npos);
  EXPECT_NE(error_of([&] { quantize(w.data(), 0, cols, h.data(), spec_with(6)); }).find("non-empty"), std::string::npos);
  w[1 * cols + 2] = NAN;
  EXPECT_NE(run(spec_with(6)).find("weight [1, 2] is nan"), std::string::npos) << run(spec_with(6));
  w[1 * cols + 2] = 0.5f;
  h[3 * cols + 4] = INFINITY;
  EXPECT_NE(run(spec_with(6)).find("Hessian [3, 4] is inf"), std::string::npos) << run(spec_with(6));
  // Round-to-nearest needs no Hessian; its error is then the plain squared error per row.
  QuantReport report;
  const auto m = quantize(w.data(), rows, cols, nullptr, spec_with(6, false), &report);
  double squares = 0;
  for (int64_t i = 0; i < rows * cols; ++i) {
    const double e = w[i] - double(m.q[i]) * artifact::half_to_float(m.scale_f16[i / cols]);
    squares += e * e;
  }
  EXPECT_DOUBLE_EQ(report.error, squares / rows);
}

// ---- agreement with the torch float64 reference ---------------------------------------------------

struct ReferenceCase {
  std::string name;
  int64_t rows, cols;
  QuantSpec spec;
  std::vector<int64_t> dead;
  double indefinite_rho = 0;  // > 0: indefinite_hessian instead of correlated_hessian
};

TEST(GptqReference, MatchesTorchFloat64Implementation) {
  // Both sides compute in float64 from the same fp32 inputs; they differ only in summation orders
  // (GEMM blocking, std) and in how U is obtained, i.e. by ~1e-13 relative. A rounding decision can
  // flip only if some w/s lands that close to a half-integer, which for ~10^4 weights has
  // probability ~1e-9: the codes must agree exactly, the errors to 1e-6 relative.
  QuantSpec act = spec_with(6);
  act.clip_sigmas = 12.85;
  QuantSpec natural = spec_with(4);
  natural.act_order = false;
  natural.block_size = 32;
  natural.hessian_clip_lambda = 0.175;
  const std::vector<ReferenceCase> cases = {
      {"int6 act-order, dead columns, partial block", 64, 300, act, {5, 77, 299}},
      {"int4 natural order, Hessian-aware clip, block 32", 48, 200, natural, {}},
      {"indefinite, two damping retries", 32, 64, spec_with(6), {}, 0.5},
  };
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.name);
    test::TempDir dir;
    auto h = tc.indefinite_rho > 0 ? indefinite_hessian(tc.cols, tc.indefinite_rho, 500)
                                   : correlated_hessian(tc.cols, 501);
    for (int64_t j : tc.dead)
      for (int64_t k = 0; k < tc.cols; ++k) h[j * tc.cols + k] = h[k * tc.cols + j] = 0.0f;
    const auto w = to_floats(gaussian_matrix(tc.rows, tc.cols, 502, 0.02));
    test::write_file(dir / "w.f32", std::string(reinterpret_cast<const char*>(w.data()), w.size() * 4));
    test::write_file(dir / "h.f32", std::string(reinterpret_cast<const char*>(h.data()), h.size() * 4));
    const std::string args = fmt::format(
        "{} --rows {} --cols {} --bits {} --clip-sigmas {} --hessian-clip-lambda {} --block-size {} --damp {}{}",
        test::quote(dir.path()), tc.rows, tc.cols, tc.spec.bits, tc.spec.clip_sigmas, tc.spec.hessian_clip_lambda,
        tc.spec.block_size, tc.spec.damp, tc.spec.act_order ? "" : " --no-act-order");
    const auto ran = test::run_reference("gptq_reference.py", args);
    ASSERT_EQ(ran.exit_code, 0) << ran.output;

    QuantReport report;
    const auto m = quantize(w.data(), tc.rows, tc.cols, h.data(), tc.spec, &report);
    const std::string q_ref = test::read_file(dir / "q_ref.i8"), s_ref = test::read_file(dir / "scale_ref.u16");
    ASSERT_EQ(q_ref.size(), m.q.size());
    ASSERT_EQ(s_ref.size(), 2 * m.scale_f16.size());
    std::vector<uint16_t> scales(m.rows);
    std::memcpy(scales.data(), s_ref.data(), s_ref.size());
    EXPECT_EQ(m.scale_f16, scales);
    int64_t differing = 0;
    for (size_t i = 0; i < m.q.size(); ++i) differing += m.q[i] != static_cast<int8_t>(q_ref[i]);
    EXPECT_EQ(differing, 0) << "of " << m.q.size() << " codes";

    std::map<std::string, double> ref;
    std::istringstream lines(test::read_file(dir / "report_ref.txt"));
    for (std::string key; lines >> key;) lines >> ref[key];
    EXPECT_NEAR(report.error, ref["error"], 1e-6 * std::fabs(ref["error"]));
    EXPECT_NEAR(report.error_rtn, ref["error_rtn"], 1e-6 * std::fabs(ref["error_rtn"]));
    EXPECT_EQ(report.dead_columns, static_cast<int64_t>(ref["dead_columns"]));
    EXPECT_EQ(report.damp_retries, static_cast<int>(ref["damp_retries"]));
    EXPECT_DOUBLE_EQ(report.damp_used, ref["damp_used"]);
    EXPECT_EQ(report.fell_back_to_rtn, ref["fell_back_to_rtn"] != 0);
    EXPECT_DOUBLE_EQ(report.clip_rate, ref["clip_rate"]);
    // Not a vacuous agreement: on a positive definite H both really did GPTQ, not RTN.
    if (tc.indefinite_rho == 0) {
      EXPECT_LT(ref["error"], ref["error_rtn"]);
    }
  }
}

// ---- benchmark (disabled; run with --gtest_also_run_disabled_tests) -------------------------------

TEST(GptqBenchmark, DISABLED_RecordModelShapes) {
  // The record model: 11 × (c_q 512×512, c_k 256×512, c_v 256×512, attn.proj 512×512, mlp.fc
  // 2048×512, mlp.proj 512×2048) + tok_emb 8192×512 = 67 matrices, int6 (attn k 13, MLP k 12) and an
  // int7 embedding (k 15). Hessians D + F Fᵀ (F cols×64) stand in for calibration data: positive
  // definite with a few strong directions; built once per shape, outside the timing.
  auto make_hessian = [](int64_t cols, uint64_t seed) {
    const Matrix f = gaussian_matrix(cols, 64, seed);
    Matrix h = f * f.transpose();
    std::mt19937_64 rng(seed + 1);
    std::uniform_real_distribution<double> spread(0.1, 4.0);
    for (int64_t j = 0; j < cols; ++j) h(j, j) += spread(rng);
    return to_floats(h);
  };
  const auto h512 = make_hessian(512, 1), h2048 = make_hessian(2048, 2);
  struct Shape {
    int64_t rows, cols;
    int bits;
    double k;
  };
  std::vector<Shape> shapes;
  for (int layer = 0; layer < 11; ++layer)
    for (Shape s : std::vector<Shape>{{512, 512, 6, 13}, {256, 512, 6, 13}, {256, 512, 6, 13},
                                      {512, 512, 6, 13}, {2048, 512, 6, 12}, {512, 2048, 6, 12}})
      shapes.push_back(s);
  shapes.push_back({8192, 512, 7, 15});
  std::vector<std::vector<float>> weights;
  std::vector<Job> jobs;
  for (size_t i = 0; i < shapes.size(); ++i) weights.push_back(to_floats(gaussian_matrix(shapes[i].rows, shapes[i].cols, 600 + i, 0.02)));
  for (size_t i = 0; i < shapes.size(); ++i) {
    QuantSpec spec = spec_with(shapes[i].bits);
    spec.clip_sigmas = shapes[i].k;
    jobs.push_back({weights[i].data(), shapes[i].rows, shapes[i].cols, shapes[i].cols == 2048 ? h2048.data() : h512.data(), spec});
  }
  const auto start = std::chrono::steady_clock::now();
  const auto results = quantize_all(jobs, 2);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double ratio_sum = 0;
  for (const auto& [m, report] : results) {
    EXPECT_FALSE(report.fell_back_to_rtn);
    EXPECT_LT(report.error, report.error_rtn);
    ratio_sum += report.error / report.error_rtn;
  }
  std::printf("GptqBenchmark: %zu matrices on 2 threads in %.2f s (mean GPTQ/RTN error %.3f)\n", results.size(), seconds,
              ratio_sum / results.size());
  RecordProperty("seconds", std::to_string(seconds));
}

}  // namespace
}  // namespace golf::quant
