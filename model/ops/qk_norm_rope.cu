// QK-RMSNorm + partial RoPE + gain, forward and backward: one warp per head row (Dh values),
// fp32 arithmetic, fp32 or bf16 storage. Formulas and the ATen reference: model/ops/qk_norm_rope.{h,cpp}.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <cfloat>

#include "model/ops/qk_norm_rope.h"

namespace golf::ops {
namespace {

constexpr int kWarps = 8;  // rows per block of 256 threads

__device__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One head row's view: its values, its token's tables, and where dim d's rotation partner sits.
struct Row {
  int Dh, h, r;
  const float *c, *s;
  // (R v)[d] for the row's values v (any accessor returning float).
  template <typename F>
  __device__ float rotate(F v, int d) const {
    if (d < h) return v(d) * c[d] + v(d + h) * s[d];
    if (d < r) return -v(d - h) * s[d - h] + v(d) * c[d - h];
    return v(d);
  }
  // (Rᵀ v)[d].
  template <typename F>
  __device__ float rotate_back(F v, int d) const {
    if (d < h) return v(d) * c[d] - v(d + h) * s[d];
    if (d < r) return v(d - h) * s[d - h] + v(d) * c[d - h];
    return v(d);
  }
};

template <typename scalar_t>
__device__ float inv_rms(const scalar_t* x, int Dh, int lane) {
  float ss = 0.f;
  for (int d = lane; d < Dh; d += 32) {
    const float v = static_cast<float>(x[d]);
    ss += v * v;
  }
  return rsqrtf(warp_sum(ss) / static_cast<float>(Dh) + FLT_EPSILON);
}

template <typename scalar_t>
__global__ void qk_norm_rope_fwd_kernel(const scalar_t* __restrict__ x, const float* __restrict__ cos,
                                        const float* __restrict__ sin, const float* __restrict__ gain,
                                        scalar_t* __restrict__ y, int64_t rows, int H, int Dh, int r) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // whole warps leave together: the shuffles below see full warps
  const scalar_t* xr = x + row * Dh;
  const int64_t token = row / H;
  const Row R{Dh, r / 2, r, cos + token * (r / 2), sin + token * (r / 2)};
  const float inv = inv_rms(xr, Dh, lane), g = gain ? gain[row % H] : 1.f;
  auto n = [&](int d) { return static_cast<float>(xr[d]) * inv; };
  for (int d = lane; d < Dh; d += 32) y[row * Dh + d] = static_cast<scalar_t>(g * R.rotate(n, d));
}

// dx per row; dgain_rows[row] = Σ_d dy ⊙ rope(n) (summed over rows by the caller, deterministic).
template <typename scalar_t>
__global__ void qk_norm_rope_bwd_kernel(const scalar_t* __restrict__ x, const float* __restrict__ cos,
                                        const float* __restrict__ sin, const float* __restrict__ gain,
                                        const scalar_t* __restrict__ dy, scalar_t* __restrict__ dx,
                                        float* __restrict__ dgain_rows, int64_t rows, int H, int Dh, int r) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const scalar_t* xr = x + row * Dh;
  const scalar_t* dyr = dy + row * Dh;
  const int64_t token = row / H;
  const Row R{Dh, r / 2, r, cos + token * (r / 2), sin + token * (r / 2)};
  const float inv = inv_rms(xr, Dh, lane), g = gain ? gain[row % H] : 1.f;
  auto n = [&](int d) { return static_cast<float>(xr[d]) * inv; };
  auto dr = [&](int d) { return static_cast<float>(dyr[d]) * g; };
  float dot = 0.f, gdot = 0.f;
  for (int d = lane; d < Dh; d += 32) {
    dot += R.rotate_back(dr, d) * n(d);
    if (dgain_rows) gdot += static_cast<float>(dyr[d]) * R.rotate(n, d);
  }
  dot = warp_sum(dot) / static_cast<float>(Dh);
  if (dgain_rows) gdot = warp_sum(gdot);
  for (int d = lane; d < Dh; d += 32) dx[row * Dh + d] = static_cast<scalar_t>(inv * (R.rotate_back(dr, d) - n(d) * dot));
  if (dgain_rows && lane == 0) dgain_rows[row] = gdot;
}

void check(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain, int64_t r,
           const char* what) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 3 && x.is_contiguous(), what, ": expected contiguous CUDA x (N, H, Dh), got ",
              x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16, what, ": expected fp32 or bf16, got ",
              x.scalar_type());
  TORCH_CHECK(r > 0 && r % 2 == 0 && r <= x.size(2), what, ": bad rope_dims ", r);
  for (const at::Tensor* t : {&cos, &sin})
    TORCH_CHECK(t->is_cuda() && t->scalar_type() == at::kFloat && t->is_contiguous() && t->dim() == 2 &&
                    t->size(0) == x.size(0) && t->size(1) == r / 2,
                what, ": expected contiguous fp32 tables (", x.size(0), ", ", r / 2, ")");
  TORCH_CHECK(!gain.defined() || (gain.is_cuda() && gain.scalar_type() == at::kFloat && gain.is_contiguous() &&
                                  gain.numel() == x.size(1)),
              what, ": expected fp32 gain (", x.size(1), ")");
}

unsigned blocks_for(int64_t rows) { return static_cast<unsigned>((rows + kWarps - 1) / kWarps); }

}  // namespace

at::Tensor qk_norm_rope_forward_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                     const at::Tensor& gain, int64_t r) {
  check(x, cos, sin, gain, r, "qk_norm_rope_forward_cuda");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor y = at::empty_like(x);
  const int64_t rows = x.size(0) * x.size(1);
  if (rows == 0) return y;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "qk_norm_rope_fwd", [&] {
    qk_norm_rope_fwd_kernel<scalar_t><<<blocks_for(rows), kWarps * 32, 0, at::cuda::getCurrentCUDAStream()>>>(
        x.const_data_ptr<scalar_t>(), cos.const_data_ptr<float>(), sin.const_data_ptr<float>(),
        gain.defined() ? gain.const_data_ptr<float>() : nullptr, y.mutable_data_ptr<scalar_t>(), rows,
        static_cast<int>(x.size(1)), static_cast<int>(x.size(2)), static_cast<int>(r));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return y;
}

std::pair<at::Tensor, at::Tensor> qk_norm_rope_backward_cuda(const at::Tensor& x, const at::Tensor& cos,
                                                             const at::Tensor& sin, const at::Tensor& gain,
                                                             const at::Tensor& dy, int64_t r) {
  check(x, cos, sin, gain, r, "qk_norm_rope_backward_cuda");
  TORCH_CHECK(dy.sizes() == x.sizes() && dy.scalar_type() == x.scalar_type() && dy.is_contiguous(),
              "qk_norm_rope_backward_cuda: dy must be contiguous, shaped and typed as x");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor dx = at::empty_like(x);
  const int64_t rows = x.size(0) * x.size(1);
  at::Tensor dgain_rows = gain.defined() ? at::empty({rows}, x.options().dtype(at::kFloat)) : at::Tensor();
  if (rows > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "qk_norm_rope_bwd", [&] {
      qk_norm_rope_bwd_kernel<scalar_t><<<blocks_for(rows), kWarps * 32, 0, at::cuda::getCurrentCUDAStream()>>>(
          x.const_data_ptr<scalar_t>(), cos.const_data_ptr<float>(), sin.const_data_ptr<float>(),
          gain.defined() ? gain.const_data_ptr<float>() : nullptr, dy.const_data_ptr<scalar_t>(),
          dx.mutable_data_ptr<scalar_t>(), gain.defined() ? dgain_rows.mutable_data_ptr<float>() : nullptr, rows,
          static_cast<int>(x.size(1)), static_cast<int>(x.size(2)), static_cast<int>(r));
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  at::Tensor dgain;
  if (gain.defined()) dgain = rows > 0 ? dgain_rows.view({x.size(0), x.size(1)}).sum(0) : at::zeros_like(gain);
  return {dx, dgain};
}

}  // namespace golf::ops
