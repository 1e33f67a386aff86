#include "quant/gptq_aten.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "artifact/half.h"

namespace golf::quant {

artifact::QuantizedMatrix quantize_aten(const float* w_in, int64_t rows, int64_t cols, const float* h_in, const QuantSpec& spec,
                              QuantReport* report, c10::Device device) {
  if (!spec.gptq || !h_in) return quantize(w_in, rows, cols, h_in, spec, report);  // nothing to do on a GPU
  if (spec.bits < 2 || spec.bits > 8) fail("quantize: bits must be in [2, 8], got {}", spec.bits);
  const auto f64 = at::TensorOptions().dtype(at::kDouble).device(device);
  const at::Tensor w = at::from_blob(const_cast<float*>(w_in), {rows, cols}, at::kFloat).to(f64);
  const at::Tensor h32 = at::from_blob(const_cast<float*>(h_in), {cols, cols}, at::kFloat).to(f64);
  if (!at::isfinite(w).all().item<bool>() || !at::isfinite(h32).all().item<bool>())
    fail("quantize: non-finite weight or Hessian values");
  const double qmax = std::pow(2.0, spec.bits - 1) - 1;
  QuantReport rep;

  // 1. Symmetrize; dead inputs get H_jj = 1 and zero weight columns; damping relative to the mean diagonal.
  at::Tensor hess = (h32 + h32.t()) / 2;
  const at::Tensor dead = hess.diagonal() == 0;                       // (cols,)
  rep.dead_columns = dead.sum().item<int64_t>();
  const at::Tensor diag_fixed = at::where(dead, at::ones_like(hess.diagonal()), hess.diagonal());
  const double diag_mean = diag_fixed.mean().item<double>();

  // 2. Scales exactly as the Eigen path computes them (on the CPU, from the fp32 weights).
  const at::Tensor diag_damped_cpu = (diag_fixed + spec.damp * diag_mean).cpu().contiguous();
  artifact::QuantizedMatrix out;
  out.rows = rows, out.cols = cols, out.bits = spec.bits;
  out.scale_f16 = sdclip_scales(w_in, rows, cols, spec.bits, spec.clip_sigmas, spec.hessian_clip_lambda,
                                diag_damped_cpu.data_ptr<double>());
  std::vector<double> scale_values(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) scale_values[static_cast<size_t>(r)] = artifact::half_to_float(out.scale_f16[static_cast<size_t>(r)]);
  const at::Tensor scale = at::tensor(scale_values, at::kDouble).to(device);  // (rows,)

  // 3. Act-order (stable, descending), then U for H_p + λI with damping retries.
  const at::Tensor perm = spec.act_order ? std::get<1>(diag_fixed.cpu().sort(/*stable=*/true, 0, /*descending=*/true)).to(device)
                                         : at::arange(cols, at::TensorOptions().dtype(at::kLong).device(device));
  const at::Tensor h_fixed = hess - at::diag(hess.diagonal()) + at::diag(diag_fixed);
  const at::Tensor h_perm = h_fixed.index_select(0, perm).index_select(1, perm);
  at::Tensor u;
  double damp = spec.damp;
  for (int attempt = 0; attempt <= 3 && !u.defined(); ++attempt) {
    if (attempt > 0) damp = damp > 0 ? damp * 10 : 1e-3, rep.damp_retries = attempt;
    const at::Tensor damped = h_perm + damp * diag_mean * at::eye(cols, f64);
    const auto [lower, info] = at::linalg_cholesky_ex(damped);
    if (info.item<int>() != 0) continue;
    const auto [upper, info2] = at::linalg_cholesky_ex(at::cholesky_inverse(lower), /*upper=*/true);
    if (info2.item<int>() == 0 && at::isfinite(upper).all().item<bool>()) u = upper, rep.damp_used = damp;
  }
  if (!u.defined()) {  // every factorization failed: round-to-nearest, as the Eigen path does
    QuantSpec rtn = spec;
    rtn.gptq = false;
    QuantReport rtn_report;
    artifact::QuantizedMatrix m = quantize(w_in, rows, cols, h_in, rtn, &rtn_report);
    rtn_report.fell_back_to_rtn = true;
    rtn_report.damp_retries = 3;
    rtn_report.dead_columns = rep.dead_columns;
    if (report) *report = rtn_report;
    return m;
  }

  // 4. The column loop: quantize a column, push its scaled error onto the rest of the block (rank-1),
  //    then onto the columns after the block in one GEMM.
  at::Tensor work = w.index_select(1, perm).masked_fill(dead.index_select(0, perm).unsqueeze(0), 0.0);  // (rows, cols)
  at::Tensor q = at::empty({rows, cols}, f64);
  for (int64_t i1 = 0; i1 < cols; i1 += spec.block_size) {
    const int64_t i2 = std::min(i1 + spec.block_size, cols), width = i2 - i1;
    at::Tensor err = at::empty({rows, width}, f64);
    for (int64_t j = 0; j < width; ++j) {
      const int64_t c = i1 + j;
      const at::Tensor col = work.select(1, c);
      const at::Tensor qc = at::clamp(at::round(col / scale), -qmax, qmax);  // round: half to even
      q.select(1, c).copy_(qc);
      const at::Tensor e = (col - qc * scale) / u[c][c];
      err.select(1, j).copy_(e);
      if (j + 1 < width) work.narrow(1, c + 1, width - j - 1).sub_(at::outer(e, u[c].narrow(0, c + 1, width - j - 1)));
    }
    if (i2 < cols) work.narrow(1, i2, cols - i2).sub_(at::matmul(err, u.narrow(0, i1, width).narrow(1, i2, cols - i2)));
  }
  const at::Tensor q_orig = at::empty_like(q).index_copy_(1, perm, q);  // back to the original column order
  const at::Tensor q_cpu = q_orig.to(at::kCPU, at::kChar).contiguous();
  out.q.assign(q_cpu.data_ptr<int8_t>(), q_cpu.data_ptr<int8_t>() + rows * cols);

  // 5. Report: Hessian-weighted errors (undamped H) of this result and of round-to-nearest.
  auto weighted = [&](const at::Tensor& codes) {
    const at::Tensor e = w - codes * scale.unsqueeze(1);
    return (at::matmul(e, hess) * e).sum().item<double>() / static_cast<double>(rows);
  };
  const at::Tensor rtn_codes =
      at::clamp(at::round(w / scale.unsqueeze(1)), -qmax, qmax).masked_fill(dead.unsqueeze(0), 0.0);
  rep.error = weighted(q_orig);
  rep.error_rtn = weighted(rtn_codes);
  rep.clip_rate = (q_orig.abs() == qmax).to(at::kDouble).mean().item<double>();
  if (report) *report = rep;
  return out;
}

}  // namespace golf::quant
