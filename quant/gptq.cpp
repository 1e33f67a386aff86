// quant/gptq.cpp — full-Hessian GPTQ (quant-and-pack.md §1.4) with SDClip scales, in Eigen/double.
//
// Shapes: W is rows × cols (output × input), H is cols × cols. Per matrix:
//   1. Symmetrize H in double; dead inputs (H_jj == 0) get H_jj = 1, their W columns are zeroed.
//   2. Scales from the original rows (SDClip, optionally Hessian-aware), rounded to fp16, clamped.
//   3. perm = stable argsort of diag(H) descending (act-order) or the identity.
//   4. U = upper Cholesky factor of (H_p + λI)⁻¹ via the reversed-order Cholesky (one factorization and
//      one triangular inverse); on failure retry with damp ×10 (up to 3 times), else round-to-nearest.
//   5. Column loop over blocks of B columns of the permuted W (column-major, so a column is contiguous):
//      q = clamp(round_half_even(w / s)), e = (w − q·s) / U_cc, later columns of the block get
//      w −= e · U_c,k at once (rank-1 updates), columns after the block get one GEMM −= Err · U_block.
//   6. Codes are written back in the original column order; errors tr(E H Eᵀ)/rows are reported for the
//      result and for round-to-nearest with the same scales (E = W − q·s, H undamped).
// Cost: the Cholesky (n³/3), the triangular inverse (n³/3 flops) and the lazy GEMMs (rows·cols²)
// dominate; everything stays on the calling thread (EIGEN_DONT_PARALLELIZE below).
#include "quant/gptq.h"

// Parallelism is across jobs (quantize_all); a job's GEMMs must stay on its thread even if OpenMP
// is ever enabled for the build, both to avoid oversubscription and to keep one fixed code path.
#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cfenv>
#include <cmath>
#include <exception>
#include <limits>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "artifact/half.h"

namespace golf::quant {
namespace {

using MatrixCM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using MatrixRM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr uint16_t kMinNormalHalf = 0x0400;  // 2^-14: an all-zero row must never divide by 0
constexpr uint16_t kMaxFiniteHalf = 0x7BFF;  // 65504
constexpr int kMaxDampRetries = 3;
constexpr int kBaseCaseSize = 64;  // below this the triangular inverse is a plain triangular solve

int qmax_for_bits(int bits) { return (1 << (bits - 1)) - 1; }

// std::nearbyint rounds in the current mode; ties-to-even needs FE_TONEAREST. A caller that changed
// the mode gets it back afterwards.
class RoundToNearest {
 public:
  RoundToNearest() : saved_(std::fegetround()) {
    if (saved_ != FE_TONEAREST) std::fesetround(FE_TONEAREST);
  }
  ~RoundToNearest() {
    if (saved_ != FE_TONEAREST) std::fesetround(saved_);
  }
  RoundToNearest(const RoundToNearest&) = delete;
  RoundToNearest& operator=(const RoundToNearest&) = delete;

 private:
  int saved_;
};

// Half-to-even rounding and the symmetric clamp; never produces -qmax-1.
inline int8_t round_and_clamp(double ratio, double qmax) {
  const double q = std::nearbyint(ratio);
  if (q >= qmax) return static_cast<int8_t>(qmax);
  if (q <= -qmax) return static_cast<int8_t>(-qmax);
  // NaN only arises from overflowing error feedback, which then falls back to RTN; keep the cast defined.
  return q == q ? static_cast<int8_t>(q) : 0;
}

void check_spec(const QuantSpec& spec, bool has_hessian) {
  if (spec.bits < 2 || spec.bits > 8) fail("quantize: bits must be in 2..8, got {}", spec.bits);
  if (!(std::isfinite(spec.clip_sigmas) && spec.clip_sigmas > 0))
    fail("quantize: clip_sigmas must be a positive finite number, got {}", spec.clip_sigmas);
  if (!std::isfinite(spec.hessian_clip_lambda))
    fail("quantize: hessian_clip_lambda must be finite, got {}", spec.hessian_clip_lambda);
  if (spec.block_size < 1) fail("quantize: block_size must be at least 1, got {}", spec.block_size);
  if (!(std::isfinite(spec.damp) && spec.damp >= 0)) fail("quantize: damp must be finite and ≥ 0, got {}", spec.damp);
  if (!has_hessian && spec.gptq) fail("quantize: GPTQ needs a Hessian (h is null)");
  if (!has_hessian && spec.hessian_clip_lambda != 0) fail("quantize: Hessian-aware SDClip needs a Hessian (h is null)");
}

void check_shape(int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1) fail("quantize: matrix must be non-empty, got {}x{}", rows, cols);
  // The Hessian has cols² entries and the codes rows·cols; both must be addressable.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max() / 8;
  if (rows > kMax / cols || cols > kMax / cols) fail("quantize: matrix {}x{} is too large", rows, cols);
}

// Names the first non-finite entry of a rows×cols row-major array.
void check_finite(const float* data, int64_t rows, int64_t cols, const char* what) {
  for (int64_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(data[i])) fail("quantize: {} [{}, {}] is {}", what, i / cols, i % cols, data[i]);
}

// Lower-triangular L (strictly upper part zero) → L⁻¹ in place, by halves:
// [[A, 0], [B, C]]⁻¹ = [[A⁻¹, 0], [−C⁻¹ B A⁻¹, C⁻¹]]. The two products are triangular × dense, so the
// whole inverse costs n³/3 flops instead of the n³ of solving against the identity.
void invert_lower_in_place(Eigen::Ref<MatrixCM> l) {
  const Eigen::Index n = l.rows();
  if (n <= kBaseCaseSize) {
    MatrixCM inverse = MatrixCM::Identity(n, n);
    l.triangularView<Eigen::Lower>().solveInPlace(inverse);
    l = inverse;
    return;
  }
  const Eigen::Index half = n / 2;
  invert_lower_in_place(l.topLeftCorner(half, half));
  invert_lower_in_place(l.bottomRightCorner(n - half, n - half));
  const MatrixCM b_ainv = l.bottomLeftCorner(n - half, half) * l.topLeftCorner(half, half).triangularView<Eigen::Lower>();
  auto b = l.bottomLeftCorner(n - half, half);
  b.noalias() = l.bottomRightCorner(n - half, n - half).triangularView<Eigen::Lower>() * b_ainv;
  b = -b;
}

// `reversed` holds J A J (A symmetric positive definite, J the index reversal); it is overwritten.
// With J A J = L Lᵀ, A⁻¹ = J L⁻ᵀ L⁻¹ J = Uᵀ U for U = J L⁻¹ J, which is upper triangular with a
// positive diagonal, hence the Cholesky factor the records get from chol(inverse(A), upper=True).
// Returns false when the factorization fails or produces non-finite values.
bool upper_factor_of_inverse_from_reversed(MatrixCM& reversed, MatrixCM& u) {
  Eigen::LLT<Eigen::Ref<MatrixCM>, Eigen::Lower> llt(reversed);  // in place, lower triangle
  if (llt.info() != Eigen::Success) return false;
  reversed.triangularView<Eigen::StrictlyUpper>().setZero();
  invert_lower_in_place(reversed);
  u = reversed.reverse();
  for (Eigen::Index i = 0; i < u.rows(); ++i)
    if (!(std::isfinite(u(i, i)) && u(i, i) > 0)) return false;
  return u.allFinite();
}

// tr(E H Eᵀ) / rows for E (rows × cols, column-major) and H symmetric (row-major), via the Gram matrix
// G = Eᵀ E (a symmetric rank update, half the flops of E·H) and Σ_ij G_ij H_ij. Without H: ‖E‖²/rows.
double weighted_error(const MatrixCM& e, const MatrixRM* h) {
  const double rows = static_cast<double>(e.rows());
  if (!h) return e.squaredNorm() / rows;
  const Eigen::Index n = e.cols();
  MatrixCM gram = MatrixCM::Zero(n, n);
  gram.selfadjointView<Eigen::Lower>().rankUpdate(e.transpose());
  double total = 0;
  for (Eigen::Index j = 0; j < n; ++j) {
    // Column j of G's lower triangle against row j of H (equal to column j, H being symmetrized).
    double column_sum = 0;
    for (Eigen::Index i = j + 1; i < n; ++i) column_sum += gram(i, j) * (*h)(j, i);
    total += gram(j, j) * (*h)(j, j) + 2 * column_sum;
  }
  return total / rows;
}

// E = W − q·s in the original column order (W as given, dead columns included).
MatrixCM residual(const float* w, const std::vector<int8_t>& q, const std::vector<double>& scale, int64_t rows,
                  int64_t cols) {
  MatrixCM e(rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      e(r, c) = static_cast<double>(w[r * cols + c]) - static_cast<double>(q[r * cols + c]) * scale[r];
  return e;
}

}  // namespace

std::vector<uint16_t> sdclip_scales(const float* w, int64_t rows, int64_t cols, int bits, double clip_sigmas,
                                    double hessian_clip_lambda, const double* hessian_diag) {
  const double qmax = qmax_for_bits(bits);
  // R0406: row importance r_i = mean_j |W_ij| D_j with D = diag / mean(diag), normalized to mean 1.
  std::vector<double> importance(rows, 1.0);
  if (hessian_clip_lambda != 0) {
    if (!hessian_diag) fail("sdclip_scales: Hessian-aware clipping needs the Hessian diagonal");
    const double diag_mean = std::accumulate(hessian_diag, hessian_diag + cols, 0.0) / static_cast<double>(cols);
    double importance_sum = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double sum = 0;
      for (int64_t c = 0; c < cols; ++c) sum += std::fabs(static_cast<double>(w[r * cols + c])) * (hessian_diag[c] / diag_mean);
      importance[r] = sum / static_cast<double>(cols);
      importance_sum += importance[r];
    }
    const double importance_mean = importance_sum / static_cast<double>(rows);
    // An all-zero W has no importance signal; keep every row at 1 rather than divide 0 by 0.
    for (auto& v : importance) v = importance_mean > 0 ? v / importance_mean : 1.0;
  }
  std::vector<uint16_t> scales(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) sum += row[c];
    const double mean = sum / static_cast<double>(cols);
    double squares = 0;
    for (int64_t c = 0; c < cols; ++c) squares += (row[c] - mean) * (row[c] - mean);
    // Unbiased (N−1) as torch.std, which the records' k values were tuned with; one column has no spread.
    const double stddev = cols > 1 ? std::sqrt(squares / static_cast<double>(cols - 1)) : 0.0;
    const double clip = clip_sigmas * stddev * (1 + hessian_clip_lambda * (importance[r] - 1));
    // double → float32 → fp16, the same two roundings the reference performs.
    uint16_t half = artifact::float_to_half(static_cast<float>(clip / qmax));
    // Guard after rounding (§5.3): tiny, zero or negative scales become the smallest normal fp16,
    // overflow (and NaN from an infinite std) the largest finite one.
    if ((half & 0x8000u) || half < kMinNormalHalf) half = kMinNormalHalf;
    if (half > kMaxFiniteHalf) half = kMaxFiniteHalf;
    scales[r] = half;
  }
  return scales;
}

std::vector<double> upper_cholesky_of_inverse(const double* a, int64_t n) {
  if (n < 1) fail("upper_cholesky_of_inverse: n must be ≥ 1, got {}", n);
  MatrixCM reversed(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      // Lower triangle of A only (as the factorization would read it), mirrored.
      const int64_t ai = n - 1 - i, aj = n - 1 - j;
      reversed(i, j) = ai >= aj ? a[ai * n + aj] : a[aj * n + ai];
    }
  MatrixCM u;
  if (!upper_factor_of_inverse_from_reversed(reversed, u)) return {};
  std::vector<double> out(n * n);
  Eigen::Map<MatrixRM>(out.data(), n, n) = u;
  return out;
}

artifact::QuantizedMatrix quantize(const float* w, int64_t rows, int64_t cols, const float* h, const QuantSpec& spec,
                         QuantReport* report) {
  check_shape(rows, cols);
  check_spec(spec, h != nullptr);
  if (!w) fail("quantize: w is null");
  check_finite(w, rows, cols, "weight");
  if (h) check_finite(h, cols, cols, "Hessian");
  const RoundToNearest rounding;

  QuantReport rep;
  const double qmax = qmax_for_bits(spec.bits);

  // 1. Hessian in double, symmetrized; dead inputs; the diagonal with the dead fix and initial damping.
  MatrixRM hessian;
  std::vector<char> dead(cols, 0);
  std::vector<double> diag_fixed(cols, 1.0), diag_damped;
  double diag_mean = 0;
  if (h) {
    hessian.resize(cols, cols);
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        hessian(i, j) = (static_cast<double>(h[i * cols + j]) + static_cast<double>(h[j * cols + i])) / 2;
    for (int64_t j = 0; j < cols; ++j) {
      dead[j] = hessian(j, j) == 0;
      rep.dead_columns += dead[j];
      diag_fixed[j] = dead[j] ? 1.0 : hessian(j, j);
    }
    diag_mean = std::accumulate(diag_fixed.begin(), diag_fixed.end(), 0.0) / static_cast<double>(cols);
    diag_damped = diag_fixed;
    for (auto& d : diag_damped) d += spec.damp * diag_mean;
  }

  // 2. Scales, fixed before any quantization; the fp16 values are what GPTQ and dequant both use.
  artifact::QuantizedMatrix out;
  out.rows = rows;
  out.cols = cols;
  out.bits = spec.bits;
  out.scale_f16 = sdclip_scales(w, rows, cols, spec.bits, spec.clip_sigmas, spec.hessian_clip_lambda,
                                h ? diag_damped.data() : nullptr);
  std::vector<double> scale(rows);
  for (int64_t r = 0; r < rows; ++r) scale[r] = artifact::half_to_float(out.scale_f16[r]);

  // Round-to-nearest with the same scales and the same dead-column policy: the fallback and the baseline.
  std::vector<int8_t> rtn(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      rtn[r * cols + c] = dead[c] ? 0 : round_and_clamp(static_cast<double>(w[r * cols + c]) / scale[r], qmax);

  bool have_gptq = false;
  if (spec.gptq) {
    // 3. Act-order: most important inputs first, so their errors have the most columns to absorb them.
    std::vector<int64_t> perm(cols);
    std::iota(perm.begin(), perm.end(), 0);
    if (spec.act_order)
      std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return diag_fixed[a] > diag_fixed[b]; });

    // 4. U for H_p + λI, with damping retries.
    MatrixCM u;
    double damp = spec.damp;
    for (int attempt = 0; attempt <= kMaxDampRetries; ++attempt) {
      if (attempt > 0) {
        damp = damp > 0 ? damp * 10 : 1e-3;  // a zero damp has nothing to multiply: start from 0.001
        rep.damp_retries = attempt;
      }
      const double lambda = damp * diag_mean;
      MatrixCM reversed(cols, cols);  // (J H_p J)(a, b) = H(perm[n−1−a], perm[n−1−b])
      for (int64_t b = 0; b < cols; ++b) {
        const int64_t hb = perm[cols - 1 - b];
        for (int64_t a = 0; a < cols; ++a) {
          const int64_t ha = perm[cols - 1 - a];
          reversed(a, b) = ha == hb ? diag_fixed[ha] + lambda : hessian(hb, ha);  // symmetric; row hb is contiguous
        }
      }
      if (upper_factor_of_inverse_from_reversed(reversed, u)) {
        rep.damp_used = damp;
        have_gptq = true;
        break;
      }
    }

    if (have_gptq) {
      // 5. The column loop on the permuted, dead-zeroed W (column-major: one column is contiguous).
      MatrixCM work(rows, cols);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t a = 0; a < cols; ++a) work(r, a) = dead[perm[a]] ? 0.0 : static_cast<double>(w[r * cols + perm[a]]);
      std::vector<int8_t> q_perm(rows * cols);  // column-major, permuted order
      const int64_t block = spec.block_size;
      MatrixCM err(rows, std::min<int64_t>(block, cols));
      bool finite = true;
      for (int64_t i1 = 0; i1 < cols && finite; i1 += block) {
        const int64_t i2 = std::min(i1 + block, cols), width = i2 - i1;
        for (int64_t j = 0; j < width; ++j) {
          const int64_t c = i1 + j;
          const double d = u(c, c);
          const double* column = work.col(c).data();
          double* e = err.col(j).data();
          int8_t* qc = q_perm.data() + c * rows;
          for (int64_t r = 0; r < rows; ++r) {
            const int8_t qv = round_and_clamp(column[r] / scale[r], qmax);
            qc[r] = qv;
            e[r] = (column[r] - qv * scale[r]) / d;
            finite &= std::isfinite(e[r]);
          }
          for (int64_t k = j + 1; k < width; ++k) work.col(i1 + k) -= u(c, i1 + k) * err.col(j);
        }
        if (i2 < cols) work.rightCols(cols - i2).noalias() -= err.leftCols(width) * u.block(i1, i2, width, cols - i2);
      }
      if (finite) {
        out.q.resize(rows * cols);
        for (int64_t a = 0; a < cols; ++a)
          for (int64_t r = 0; r < rows; ++r) out.q[r * cols + perm[a]] = q_perm[a * rows + r];
      } else {
        have_gptq = false;  // overflow in the error feedback: treat like a failed factorization
        rep.damp_used = 0;
      }
    }
    rep.fell_back_to_rtn = !have_gptq;
  }

  // 6. Errors against the undamped Hessian (identity without one), clip rate.
  const MatrixRM* hessian_for_error = h ? &hessian : nullptr;
  rep.error_rtn = weighted_error(residual(w, rtn, scale, rows, cols), hessian_for_error);
  if (have_gptq) {
    rep.error = weighted_error(residual(w, out.q, scale, rows, cols), hessian_for_error);
  } else {
    out.q = std::move(rtn);
    rep.error = rep.error_rtn;
  }
  const auto at_limit = std::count_if(out.q.begin(), out.q.end(), [&](int8_t v) { return std::abs(v) == qmax; });
  rep.clip_rate = static_cast<double>(at_limit) / static_cast<double>(rows * cols);
  if (report) *report = rep;
  return out;
}

std::vector<std::pair<artifact::QuantizedMatrix, QuantReport>> quantize_all(const std::vector<Job>& jobs, int threads) {
  if (threads < 0) fail("quantize_all: threads must be ≥ 0, got {}", threads);
  const size_t n_jobs = jobs.size();
  std::vector<std::pair<artifact::QuantizedMatrix, QuantReport>> results(n_jobs);
  std::vector<std::exception_ptr> errors(n_jobs);

  // Largest first (longest-processing-time scheduling) keeps the big mlp.proj factorizations from
  // all landing at the end. Only the start order depends on this; each result is a pure function of
  // its job, so the output does not.
  std::vector<size_t> order(n_jobs);
  std::iota(order.begin(), order.end(), size_t{0});
  auto cost = [&](size_t i) {
    const double r = static_cast<double>(jobs[i].rows), c = static_cast<double>(jobs[i].cols);
    return jobs[i].spec.gptq ? c * c * c + r * c * c : r * c;
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cost(a) > cost(b); });

  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t k; (k = next.fetch_add(1)) < n_jobs;) {
      const size_t i = order[k];
      try {
        const Job& job = jobs[i];
        results[i].first = quantize(job.w, job.rows, job.cols, job.h, job.spec, &results[i].second);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  size_t n_threads = threads > 0 ? static_cast<size_t>(threads) : std::max(1u, std::thread::hardware_concurrency());
  n_threads = std::min(n_threads, std::max<size_t>(n_jobs, 1));
  if (n_threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    pool.reserve(n_threads);
    for (size_t t = 0; t < n_threads; ++t) pool.emplace_back(worker);
    for (auto& thread : pool) thread.join();
  }
  for (const auto& error : errors)
    if (error) std::rethrow_exception(error);
  return results;
}

}  // namespace golf::quant
