// residual_mix, xsa_gate and smear, forward and backward: fp32 arithmetic, fp32 or bf16 storage.
// Formulas and the ATen path they are tested against: model/ops/mix.{h,cpp}.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>

#include "model/ops/mix.h"

namespace golf::ops {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxPerLane = 8;  // head dim ≤ 256 = 8 values per lane held in registers (xsa)
constexpr float kXsaNormMin = 1e-12f;

__device__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Grid-stride elementwise kernels: enough blocks to fill the card, capped.
unsigned grid_for(int64_t n, int64_t per_block) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + per_block - 1) / per_block, 1, 65535 * 8));
}
// One warp per row, no striding: one block per kWarps rows (gridDim.x allows 2³¹ − 1).
unsigned blocks_for_rows(int64_t rows) {
  const int64_t blocks = (rows + kWarps - 1) / kWarps;
  TORCH_CHECK(blocks < (int64_t{1} << 31), "too many rows for one launch: ", rows);
  return static_cast<unsigned>(blocks);
}

void check_storage(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.is_cuda() && t.is_contiguous(), what, ": expected a contiguous CUDA tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, what, ": expected fp32 or bf16, got ",
              t.scalar_type());
}
void check_f32(const at::Tensor& t, int64_t numel, const char* what) {
  if (!t.defined()) return;
  TORCH_CHECK(t.is_cuda() && t.is_contiguous() && t.scalar_type() == at::kFloat && t.numel() == numel, what,
              ": expected a contiguous fp32 CUDA tensor of ", numel, " values, got ", t.sizes());
}

// ---- residual_mix: out = a ⊙ x + b ⊙ y, a/b per channel (stride 1) or scalar (stride 0) -------
template <typename scalar_t>
__global__ void mix_fwd_kernel(const scalar_t* __restrict__ x, const float* __restrict__ a, int a_stride,
                               const scalar_t* __restrict__ y, const float* __restrict__ b, int b_stride,
                               scalar_t* __restrict__ out, int64_t n, int64_t d) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % d;
    const float av = a ? a[c * a_stride] : 1.f;
    out[i] = static_cast<scalar_t>(av * static_cast<float>(x[i]) + b[c * b_stride] * static_cast<float>(y[i]));
  }
}

// Block (32 channels × 8 row lanes) over one chunk of rows: dx, dy elementwise (coalesced along
// the channels), and per-chunk partial column sums of x ⊙ g and y ⊙ g (summed by the caller in a
// fixed order: deterministic).
template <typename scalar_t>
__global__ void mix_bwd_kernel(const scalar_t* __restrict__ x, const float* __restrict__ a, int a_stride,
                               const scalar_t* __restrict__ y, const float* __restrict__ b, int b_stride,
                               const scalar_t* __restrict__ g, scalar_t* __restrict__ dx, scalar_t* __restrict__ dy,
                               float* __restrict__ da_part, float* __restrict__ db_part, int64_t rows, int64_t d,
                               int64_t rows_per_chunk) {
  __shared__ float sa[8][32], sb[8][32];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = std::min<int64_t>(rows, r0 + rows_per_chunk);
  float acc_a = 0.f, acc_b = 0.f;
  if (c < d) {
    const float av = a ? a[c * a_stride] : 1.f, bv = b[c * b_stride];
    for (int64_t r = r0 + threadIdx.y; r < r1; r += blockDim.y) {
      const int64_t i = r * d + c;
      const float gv = static_cast<float>(g[i]);
      if (dx) dx[i] = static_cast<scalar_t>(av * gv);
      dy[i] = static_cast<scalar_t>(bv * gv);
      if (da_part) acc_a += static_cast<float>(x[i]) * gv;
      if (db_part) acc_b += static_cast<float>(y[i]) * gv;
    }
  }
  sa[threadIdx.y][threadIdx.x] = acc_a;
  sb[threadIdx.y][threadIdx.x] = acc_b;
  __syncthreads();
  if (threadIdx.y == 0 && c < d) {
    float ta = 0.f, tb = 0.f;
    for (int k = 0; k < 8; ++k) ta += sa[k][threadIdx.x], tb += sb[k][threadIdx.x];
    if (da_part) da_part[static_cast<int64_t>(blockIdx.y) * d + c] = ta;
    if (db_part) db_part[static_cast<int64_t>(blockIdx.y) * d + c] = tb;
  }
}

void check_mix_cuda(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b, const char* what) {
  check_storage(x, what);
  check_storage(y, what);
  TORCH_CHECK(x.dim() >= 1 && x.sizes() == y.sizes() && x.scalar_type() == y.scalar_type(), what,
              ": x and y must share shape and dtype");
  const int64_t d = x.size(-1);
  TORCH_CHECK(b.defined(), what, ": b is required");
  for (const at::Tensor* c : {&a, &b})
    if (c->defined()) check_f32(*c, c->numel() == 1 ? 1 : d, what);
}

int stride_of(const at::Tensor& c) { return c.defined() && c.numel() > 1 ? 1 : 0; }
const float* ptr_or_null(const at::Tensor& t) { return t.defined() ? t.const_data_ptr<float>() : nullptr; }

// ---- xsa_gate: one warp per (token, KV head), looping over the group's query heads ----------
// Each lane holds dims lane, lane + 32, … (k-th value at dim lane + 32k), at most kMaxPerLane.
template <typename scalar_t>
__device__ void load_row(const scalar_t* p, int Dh, int lane, float (&out)[kMaxPerLane]) {
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int dim = lane + 32 * k;
    out[k] = dim < Dh ? static_cast<float>(p[dim]) : 0.f;
  }
}

// vn = v / max(‖v‖, 1e-12); returns ‖v‖ (unclamped).
__device__ float unit_row(const float (&v)[kMaxPerLane], float (&vn)[kMaxPerLane]) {
  float ss = 0.f;
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) ss += v[k] * v[k];
  const float norm = sqrtf(warp_sum(ss)), n = fmaxf(norm, kXsaNormMin);
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) vn[k] = v[k] / n;
  return norm;
}

__device__ float dot(const float (&a)[kMaxPerLane], const float (&b)[kMaxPerLane]) {
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) s += a[k] * b[k];
  return warp_sum(s);
}

template <typename scalar_t>
__global__ void xsa_fwd_kernel(const scalar_t* __restrict__ y, const scalar_t* __restrict__ v,
                               const float* __restrict__ gate, scalar_t* __restrict__ out, int64_t rows, int H,
                               int Hkv, int Dh) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;  // (token, kv head)
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // whole warps leave together
  const int64_t token = row / Hkv;
  const int G = H / Hkv, kvh = static_cast<int>(row % Hkv);
  float vr[kMaxPerLane], vn[kMaxPerLane], yr[kMaxPerLane];
  load_row(v + row * Dh, Dh, lane, vr);
  unit_row(vr, vn);
  for (int j = 0; j < G; ++j) {
    const int64_t head_row = token * H + kvh * G + j;
    load_row(y + head_row * Dh, Dh, lane, yr);
    const float p = dot(yr, vn), gv = gate ? gate[head_row] : 1.f;
#pragma unroll
    for (int k = 0; k < kMaxPerLane; ++k) {
      const int dim = lane + 32 * k;
      if (dim < Dh) out[head_row * Dh + dim] = static_cast<scalar_t>((yr[k] - p * vn[k]) * gv);
    }
  }
}

template <typename scalar_t>
__global__ void xsa_bwd_kernel(const scalar_t* __restrict__ y, const scalar_t* __restrict__ v,
                               const float* __restrict__ gate, const scalar_t* __restrict__ dout,
                               scalar_t* __restrict__ dy, scalar_t* __restrict__ dv, float* __restrict__ dgate,
                               int64_t rows, int H, int Hkv, int Dh) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int64_t token = row / Hkv;
  const int G = H / Hkv, kvh = static_cast<int>(row % Hkv);
  float vr[kMaxPerLane], vn[kMaxPerLane], yr[kMaxPerLane], dz[kMaxPerLane], dvn[kMaxPerLane] = {};
  load_row(v + row * Dh, Dh, lane, vr);
  const float norm = unit_row(vr, vn), n = fmaxf(norm, kXsaNormMin);
  for (int j = 0; j < G; ++j) {
    const int64_t head_row = token * H + kvh * G + j;
    load_row(y + head_row * Dh, Dh, lane, yr);
    load_row(dout + head_row * Dh, Dh, lane, dz);  // dout for now
    const float p = dot(yr, vn);
    if (gate) {
      float zd = 0.f;  // dout · z, z = y − p vn
#pragma unroll
      for (int k = 0; k < kMaxPerLane; ++k) zd += dz[k] * (yr[k] - p * vn[k]);
      zd = warp_sum(zd);
      if (lane == 0) dgate[head_row] = zd;
      const float gv = gate[head_row];
#pragma unroll
      for (int k = 0; k < kMaxPerLane; ++k) dz[k] *= gv;
    }
    const float q = dot(dz, vn);
#pragma unroll
    for (int k = 0; k < kMaxPerLane; ++k) {
      const int dim = lane + 32 * k;
      if (dim < Dh) dy[head_row * Dh + dim] = static_cast<scalar_t>(dz[k] - q * vn[k]);
      dvn[k] -= q * yr[k] + p * dz[k];
    }
  }
  // Through vn = v / max(‖v‖, ε): the norm's part only where the clamp is inactive.
  const float s = norm >= kXsaNormMin ? dot(dvn, vn) : 0.f;
#pragma unroll
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int dim = lane + 32 * k;
    if (dim < Dh) dv[row * Dh + dim] = static_cast<scalar_t>((dvn[k] - vn[k] * s) / n);
  }
}

void check_xsa_cuda(const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate, const char* what) {
  check_storage(y, what);
  check_storage(v, what);
  TORCH_CHECK(y.dim() == 3 && v.dim() == 3 && y.size(0) == v.size(0) && y.size(2) == v.size(2) && v.size(1) > 0 &&
                  y.size(1) % v.size(1) == 0 && y.scalar_type() == v.scalar_type(),
              what, ": expected y (N, H, Dh), v (N, Hkv, Dh) of one dtype with Hkv | H, got ", y.sizes(), " and ",
              v.sizes());
  TORCH_CHECK(y.size(2) <= 32 * kMaxPerLane, what, ": head dim ", y.size(2), " > ", 32 * kMaxPerLane);
  check_f32(gate, y.size(0) * y.size(1), what);
}

// ---- smear: one warp per token row ----------------------------------------------------------
template <typename scalar_t>
__global__ void smear_fwd_kernel(const scalar_t* __restrict__ e, const float* __restrict__ g,
                                 scalar_t* __restrict__ out, int64_t rows, int64_t T, int64_t d) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;  // (b, t)
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const bool first = row % T == 0;
  const float gv = first ? 0.f : g[row];
  for (int64_t c = lane; c < d; c += 32) {
    const float prev = first ? 0.f : static_cast<float>(e[(row - 1) * d + c]);
    out[row * d + c] = static_cast<scalar_t>(static_cast<float>(e[row * d + c]) + gv * prev);
  }
}

template <typename scalar_t>
__global__ void smear_bwd_kernel(const scalar_t* __restrict__ e, const float* __restrict__ g,
                                 const scalar_t* __restrict__ dout, scalar_t* __restrict__ de, float* __restrict__ dg,
                                 int64_t rows, int64_t T, int64_t d) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const bool first = row % T == 0, last = row % T == T - 1;
  const float g_next = last ? 0.f : g[row + 1];
  float acc = 0.f;
  for (int64_t c = lane; c < d; c += 32) {
    const float dv = static_cast<float>(dout[row * d + c]);
    const float next = last ? 0.f : static_cast<float>(dout[(row + 1) * d + c]);
    de[row * d + c] = static_cast<scalar_t>(dv + g_next * next);
    if (!first) acc += dv * static_cast<float>(e[(row - 1) * d + c]);
  }
  acc = warp_sum(acc);
  if (lane == 0) dg[row] = acc;
}

void check_smear_cuda(const at::Tensor& e, const at::Tensor& g, const char* what) {
  check_storage(e, what);
  TORCH_CHECK(e.dim() == 3, what, ": expected e (B, T, d), got ", e.sizes());
  check_f32(g, e.size(0) * e.size(1), what);
  TORCH_CHECK(g.defined(), what, ": g is required");
}

}  // namespace

at::Tensor residual_mix_forward_cuda(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b) {
  check_mix_cuda(x, a, y, b, "residual_mix_forward_cuda");
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty_like(x);
  const int64_t n = x.numel(), d = x.size(-1);
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "residual_mix_fwd", [&] {
    mix_fwd_kernel<scalar_t><<<grid_for(n, kThreads), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        x.const_data_ptr<scalar_t>(), ptr_or_null(a), stride_of(a), y.const_data_ptr<scalar_t>(), b.const_data_ptr<float>(),
        stride_of(b), out.mutable_data_ptr<scalar_t>(), n, d);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

MixGrads residual_mix_backward_cuda(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b,
                                    const at::Tensor& g, bool need_da, bool need_db) {
  check_mix_cuda(x, a, y, b, "residual_mix_backward_cuda");
  check_storage(g, "residual_mix_backward_cuda");
  TORCH_CHECK(g.sizes() == x.sizes() && g.scalar_type() == x.scalar_type(),
              "residual_mix_backward_cuda: g must be shaped and typed as x");
  need_da = need_da && a.defined();
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t d = x.size(-1), rows = x.numel() / std::max<int64_t>(d, 1);
  // Chunks of ≥ 64 rows, at most 1024 of them: the partial sums stay small (≤ 1024 × d fp32).
  const int64_t chunks = std::clamp<int64_t>((rows + 63) / 64, 1, 1024), per_chunk = (rows + chunks - 1) / chunks;
  const auto f32 = x.options().dtype(at::kFloat);
  MixGrads out;
  if (a.defined()) out.dx = at::empty_like(x);
  out.dy = at::empty_like(y);
  at::Tensor da_part = need_da ? at::empty({chunks, d}, f32) : at::Tensor();
  at::Tensor db_part = need_db ? at::empty({chunks, d}, f32) : at::Tensor();
  if (rows > 0 && d > 0) {
    const dim3 grid(static_cast<unsigned>((d + 31) / 32), static_cast<unsigned>(chunks)), block(32, 8);
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "residual_mix_bwd", [&] {
      mix_bwd_kernel<scalar_t><<<grid, block, 0, at::cuda::getCurrentCUDAStream()>>>(
          x.const_data_ptr<scalar_t>(), ptr_or_null(a), stride_of(a), y.const_data_ptr<scalar_t>(),
          b.const_data_ptr<float>(), stride_of(b), g.const_data_ptr<scalar_t>(),
          out.dx.defined() ? out.dx.mutable_data_ptr<scalar_t>() : nullptr, out.dy.mutable_data_ptr<scalar_t>(),
          need_da ? da_part.mutable_data_ptr<float>() : nullptr, need_db ? db_part.mutable_data_ptr<float>() : nullptr,
          rows, d, per_chunk);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  } else {
    if (need_da) da_part.zero_();
    if (need_db) db_part.zero_();
  }
  // Per channel: the column sums; scalar: their total.
  if (need_da) out.da = a.numel() == 1 && d != 1 ? da_part.sum() : da_part.sum(0);
  if (need_db) out.db = b.numel() == 1 && d != 1 ? db_part.sum() : db_part.sum(0);
  return out;
}

at::Tensor xsa_gate_forward_cuda(const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate) {
  check_xsa_cuda(y, v, gate, "xsa_gate_forward_cuda");
  const c10::cuda::CUDAGuard guard(y.device());
  at::Tensor out = at::empty_like(y);
  const int64_t rows = v.size(0) * v.size(1);
  if (rows == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, y.scalar_type(), "xsa_gate_fwd", [&] {
    xsa_fwd_kernel<scalar_t><<<blocks_for_rows(rows), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        y.const_data_ptr<scalar_t>(), v.const_data_ptr<scalar_t>(), ptr_or_null(gate), out.mutable_data_ptr<scalar_t>(),
        rows, static_cast<int>(y.size(1)), static_cast<int>(v.size(1)), static_cast<int>(y.size(2)));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

XsaGrads xsa_gate_backward_cuda(const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate, const at::Tensor& dout) {
  check_xsa_cuda(y, v, gate, "xsa_gate_backward_cuda");
  check_storage(dout, "xsa_gate_backward_cuda");
  TORCH_CHECK(dout.sizes() == y.sizes() && dout.scalar_type() == y.scalar_type(),
              "xsa_gate_backward_cuda: dout must be shaped and typed as y");
  const c10::cuda::CUDAGuard guard(y.device());
  XsaGrads g;
  g.dy = at::empty_like(y);
  g.dv = at::empty_like(v);
  if (gate.defined()) g.dgate = at::empty_like(gate);
  const int64_t rows = v.size(0) * v.size(1);
  if (rows == 0) return g;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, y.scalar_type(), "xsa_gate_bwd", [&] {
    xsa_bwd_kernel<scalar_t><<<blocks_for_rows(rows), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        y.const_data_ptr<scalar_t>(), v.const_data_ptr<scalar_t>(), ptr_or_null(gate), dout.const_data_ptr<scalar_t>(),
        g.dy.mutable_data_ptr<scalar_t>(), g.dv.mutable_data_ptr<scalar_t>(),
        gate.defined() ? g.dgate.mutable_data_ptr<float>() : nullptr, rows, static_cast<int>(y.size(1)),
        static_cast<int>(v.size(1)), static_cast<int>(y.size(2)));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return g;
}

at::Tensor smear_forward_cuda(const at::Tensor& e, const at::Tensor& g) {
  check_smear_cuda(e, g, "smear_forward_cuda");
  const c10::cuda::CUDAGuard guard(e.device());
  at::Tensor out = at::empty_like(e);
  const int64_t rows = e.size(0) * e.size(1);
  if (rows == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, e.scalar_type(), "smear_fwd", [&] {
    smear_fwd_kernel<scalar_t><<<blocks_for_rows(rows), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        e.const_data_ptr<scalar_t>(), g.const_data_ptr<float>(), out.mutable_data_ptr<scalar_t>(), rows, e.size(1),
        e.size(2));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

SmearGrads smear_backward_cuda(const at::Tensor& e, const at::Tensor& g, const at::Tensor& dout) {
  check_smear_cuda(e, g, "smear_backward_cuda");
  check_storage(dout, "smear_backward_cuda");
  TORCH_CHECK(dout.sizes() == e.sizes() && dout.scalar_type() == e.scalar_type(),
              "smear_backward_cuda: dout must be shaped and typed as e");
  const c10::cuda::CUDAGuard guard(e.device());
  SmearGrads s{at::empty_like(e), at::empty({e.size(0), e.size(1)}, e.options().dtype(at::kFloat))};
  const int64_t rows = e.size(0) * e.size(1);
  if (rows == 0) return s;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, e.scalar_type(), "smear_bwd", [&] {
    smear_bwd_kernel<scalar_t><<<blocks_for_rows(rows), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        e.const_data_ptr<scalar_t>(), g.const_data_ptr<float>(), dout.const_data_ptr<scalar_t>(),
        s.de.mutable_data_ptr<scalar_t>(), s.dg.mutable_data_ptr<float>(), rows, e.size(1), e.size(2));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return s;
}

}  // namespace golf::ops
