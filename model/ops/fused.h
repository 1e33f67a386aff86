// model/ops/fused.h — fused elementwise ops of the model (issue 13), each beside its plain ATen chain.
//
//   rms_norm_fused(x)      = at::rms_norm(x, {d}, no weight, eps = FLT_EPSILON): LibTorch's fused
//                            kernel (statistics in fp32, output in x's dtype); the plain chain is
//                            golf::rms_norm (model/model.h): 7 ops, fp32 round trip.
//   leaky_relu_sq(x)       = LeakyReLU(0.5)(x)²: y = x² (x > 0), 0.25·x² (x ≤ 0);
//                            dy/dx = 2x (x > 0), 0.5·x (x ≤ 0). One autograd op that saves only x
//                            (the chain saves x and the LeakyReLU output, and its pow backward
//                            reads both); on CUDA one kernel each way, elsewhere the chain's
//                            own ATen kernels with LeakyReLU recomputed in backward.
//   leaky_relu_sq_reference(x) = at::leaky_relu(x, 0.5).square(), the chain it replaces.
#pragma once

namespace at { class Tensor; }

namespace golf::ops {

at::Tensor rms_norm_fused(const at::Tensor& x);

at::Tensor leaky_relu_sq(const at::Tensor& x);
at::Tensor leaky_relu_sq_reference(const at::Tensor& x);

// The CUDA kernels alone (fp32 / bf16, any layout; results contiguous): y = f(x), dx = dy · f'(x).
at::Tensor leaky_relu_sq_forward_cuda(const at::Tensor& x);
at::Tensor leaky_relu_sq_backward_cuda(const at::Tensor& x, const at::Tensor& dy);

}  // namespace golf::ops
