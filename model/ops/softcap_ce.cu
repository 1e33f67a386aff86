// Fused softcap + cross-entropy: one thread block per row of logits.
//   pass 1: max_j c_j            (c = cap·tanh(z/cap), recomputed, never stored)
//   pass 2: Σ_j exp(c_j − max)    → loss = log Σ + max − c_t
//   pass 3: dz_j = (exp(c_j − max)/Σ − [j = t]) · (1 − tanh²(z_j/cap))
// Reductions in fp32; z and dz in fp32 or bf16. A target outside [0, V) yields a NaN loss.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <cfloat>

#include "model/ops/softcap_ce.h"

namespace golf::ops {
namespace {

constexpr int kThreads = 512;

// Reduces v over the block with `op`; `identity` fills the lanes past the last warp.
template <typename Op>
__device__ float block_reduce(float v, float* shared, Op op, float identity) {
  for (int offset = 16; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffff, v, offset));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : identity;
  if (warp == 0)
    for (int offset = 16; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffff, v, offset));
  if (threadIdx.x == 0) shared[0] = v;
  __syncthreads();
  v = shared[0];
  __syncthreads();  // shared[] is reused by the next reduction
  return v;
}

template <typename scalar_t>
__global__ void softcap_ce_kernel(const scalar_t* __restrict__ z, const int64_t* __restrict__ targets,
                                  float* __restrict__ loss, scalar_t* __restrict__ dz, int64_t vocab, float cap) {
  __shared__ float shared[kThreads / 32];
  const int64_t row = blockIdx.x;
  const scalar_t* zr = z + row * vocab;
  const float inv_cap = 1.0f / cap;

  float row_max = -FLT_MAX;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
    row_max = fmaxf(row_max, cap * tanhf(static_cast<float>(zr[j]) * inv_cap));
  row_max = block_reduce(row_max, shared, [](float a, float b) { return fmaxf(a, b); }, -FLT_MAX);

  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
    sum += __expf(cap * tanhf(static_cast<float>(zr[j]) * inv_cap) - row_max);
  sum = block_reduce(sum, shared, [](float a, float b) { return a + b; }, 0.f);

  const int64_t t = targets[row];
  const bool valid = t >= 0 && t < vocab;
  if (threadIdx.x == 0) {
    const float ct = valid ? cap * tanhf(static_cast<float>(zr[t]) * inv_cap) : 0.f;
    loss[row] = valid ? logf(sum) + row_max - ct : __int_as_float(0x7fc00000);
  }
  scalar_t* dzr = dz + row * vocab;
  const float inv_sum = 1.0f / sum;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float th = tanhf(static_cast<float>(zr[j]) * inv_cap);
    const float p = __expf(cap * th - row_max) * inv_sum;
    dzr[j] = static_cast<scalar_t>((p - (j == t ? 1.f : 0.f)) * (1.f - th * th));
  }
}

}  // namespace

void softcap_cross_entropy_cuda(const at::Tensor& z_in, const at::Tensor& targets_in, double cap, at::Tensor& loss,
                                at::Tensor& dz) {
  TORCH_CHECK(z_in.is_cuda() && targets_in.is_cuda(), "softcap_cross_entropy_cuda: tensors must be on CUDA");
  TORCH_CHECK(z_in.dim() == 2 && targets_in.dim() == 1 && targets_in.size(0) == z_in.size(0),
              "softcap_cross_entropy_cuda: expected z (N, V) and targets (N,), got ", z_in.sizes(), " and ",
              targets_in.sizes());
  TORCH_CHECK(z_in.scalar_type() == at::kFloat || z_in.scalar_type() == at::kBFloat16,
              "softcap_cross_entropy_cuda: z must be fp32 or bf16");
  const c10::cuda::CUDAGuard guard(z_in.device());
  const at::Tensor z = z_in.contiguous();
  const at::Tensor targets = targets_in.to(at::kLong).contiguous();
  const int64_t rows = z.size(0), vocab = z.size(1);
  loss = at::empty({rows}, z.options().dtype(at::kFloat));
  dz = at::empty_like(z);
  if (rows == 0) return;
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, z.scalar_type(), "softcap_ce", [&] {
    softcap_ce_kernel<scalar_t><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        z.data_ptr<scalar_t>(), targets.data_ptr<int64_t>(), loss.data_ptr<float>(), dz.data_ptr<scalar_t>(), vocab,
        static_cast<float>(cap));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace golf::ops
