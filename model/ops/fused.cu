// LeakyReLU(0.5)² forward and backward, one elementwise pass each; fp32 arithmetic, fp32 or bf16
// storage. Reference and CPU path: model/ops/fused.cpp.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/ops/fused.h"

namespace golf::ops {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void leaky_relu_sq_fwd_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float v = static_cast<float>(x[i]);
    const float l = v > 0.f ? v : 0.5f * v;
    y[i] = static_cast<scalar_t>(l * l);
  }
}

template <typename scalar_t>
__global__ void leaky_relu_sq_bwd_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ dy,
                                         scalar_t* __restrict__ dx, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float v = static_cast<float>(x[i]);
    dx[i] = static_cast<scalar_t>(static_cast<float>(dy[i]) * (v > 0.f ? 2.f * v : 0.5f * v));
  }
}

unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(b, 1), 65535 * 8));
}

void check(const at::Tensor& x, const char* what) {
  TORCH_CHECK(x.is_cuda(), what, ": tensor must be on CUDA");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16, what, ": expected fp32 or bf16, got ",
              x.scalar_type());
}

}  // namespace

at::Tensor leaky_relu_sq_forward_cuda(const at::Tensor& x_in) {
  check(x_in, "leaky_relu_sq_forward_cuda");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  at::Tensor y = at::empty_like(x);
  const int64_t n = x.numel();
  if (n == 0) return y;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "leaky_relu_sq_fwd", [&] {
    leaky_relu_sq_fwd_kernel<scalar_t><<<blocks_for(n), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), n);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return y;
}

at::Tensor leaky_relu_sq_backward_cuda(const at::Tensor& x_in, const at::Tensor& dy_in) {
  check(x_in, "leaky_relu_sq_backward_cuda");
  TORCH_CHECK(dy_in.sizes() == x_in.sizes(), "leaky_relu_sq_backward_cuda: dy ", dy_in.sizes(), " vs x ", x_in.sizes());
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const at::Tensor dy = dy_in.to(x.scalar_type()).contiguous();
  at::Tensor dx = at::empty_like(x);
  const int64_t n = x.numel();
  if (n == 0) return dx;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "leaky_relu_sq_bwd", [&] {
    leaky_relu_sq_bwd_kernel<scalar_t><<<blocks_for(n), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        x.const_data_ptr<scalar_t>(), dy.const_data_ptr<scalar_t>(), dx.mutable_data_ptr<scalar_t>(), n);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return dx;
}

}  // namespace golf::ops
