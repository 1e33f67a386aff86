// The ATen GPTQ (golf-pack's GPU path) equals the Eigen GPTQ code for code: on the CPU here, and
// on CUDA where a GPU is present (that case skips without one).
#include "quant/gptq_aten.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <random>

namespace golf::quant {
namespace {

struct Problem {
  int64_t rows, cols;
  std::vector<float> w, h;
};

// Correlated inputs (X = Z·A with a decaying spectrum), a few dead inputs, Gaussian weights.
Problem make_problem(int64_t rows, int64_t cols, int dead, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor a = at::randn({cols, cols}, at::kDouble) * at::pow(0.97, at::arange(cols, at::kDouble)).unsqueeze(1);
  at::Tensor x = at::matmul(at::randn({4 * cols, cols}, at::kDouble), a);
  for (int d = 0; d < dead; ++d) x.select(1, (d * 37 + 5) % cols).zero_();
  const at::Tensor h = at::matmul(x.t(), x).to(at::kFloat).contiguous();
  const at::Tensor w = (at::randn({rows, cols}) * 0.02).contiguous();
  return {rows, cols, {w.data_ptr<float>(), w.data_ptr<float>() + w.numel()}, {h.data_ptr<float>(), h.data_ptr<float>() + h.numel()}};
}

void expect_same(const Problem& p, const QuantSpec& spec, c10::Device device) {
  QuantReport ref_report, aten_report;
  const artifact::QuantizedMatrix ref = quantize(p.w.data(), p.rows, p.cols, p.h.data(), spec, &ref_report);
  const artifact::QuantizedMatrix got = quantize_aten(p.w.data(), p.rows, p.cols, p.h.data(), spec, &aten_report, device);
  EXPECT_EQ(got.scale_f16, ref.scale_f16);
  int64_t differing = 0;
  for (size_t i = 0; i < ref.q.size(); ++i) differing += got.q[i] != ref.q[i];
  EXPECT_EQ(differing, 0) << "of " << ref.q.size() << " codes";
  EXPECT_EQ(aten_report.dead_columns, ref_report.dead_columns);
  EXPECT_EQ(aten_report.fell_back_to_rtn, ref_report.fell_back_to_rtn);
  EXPECT_NEAR(aten_report.error, ref_report.error, 1e-9 * std::max(1.0, ref_report.error));
  EXPECT_NEAR(aten_report.error_rtn, ref_report.error_rtn, 1e-9 * std::max(1.0, ref_report.error_rtn));
  EXPECT_LT(aten_report.error, aten_report.error_rtn) << "GPTQ must beat round-to-nearest here";
}

TEST(GptqAten, EqualsTheEigenImplementationOnCpu) {
  QuantSpec int6;
  int6.bits = 6, int6.clip_sigmas = 12.0;
  expect_same(make_problem(48, 300, 3, 1), int6, at::kCPU);  // 300 columns: a partial last block
  QuantSpec int4_natural = int6;
  int4_natural.bits = 4, int4_natural.act_order = false, int4_natural.block_size = 32;
  expect_same(make_problem(40, 96, 0, 2), int4_natural, at::kCPU);
}

TEST(GptqAten, EqualsTheEigenImplementationOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  QuantSpec int6;
  expect_same(make_problem(256, 512, 2, 3), int6, at::Device(at::kCUDA, 0));
}

}  // namespace
}  // namespace golf::quant
