#include "model/ops/fused.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cfloat>

namespace golf::ops {

at::Tensor rms_norm_fused(const at::Tensor& x) {
  return at::rms_norm(x, {x.size(-1)}, /*weight=*/std::nullopt, /*eps=*/static_cast<double>(FLT_EPSILON));
}

at::Tensor leaky_relu_sq_reference(const at::Tensor& x) { return at::leaky_relu(x, 0.5).square(); }

namespace {
// The CPU (and any non-CUDA) path: the chain's own kernels, so values and gradients are those of
// the chain bit for bit (square's backward is dy·2l, then LeakyReLU's), with only x saved and l
// recomputed in backward.
at::Tensor forward_aten(const at::Tensor& x) { return at::leaky_relu(x, 0.5).square(); }
at::Tensor backward_aten(const at::Tensor& x, const at::Tensor& dy) {
  return at::leaky_relu_backward(dy * (2 * at::leaky_relu(x, 0.5)), x, 0.5, /*self_is_result=*/false);
}

struct LeakyReluSq : torch::autograd::Function<LeakyReluSq> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    ctx->save_for_backward({x});
    return x.is_cuda() ? leaky_relu_sq_forward_cuda(x) : forward_aten(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const at::Tensor& dy = grads[0];
    return {x.is_cuda() ? leaky_relu_sq_backward_cuda(x, dy) : backward_aten(x, dy)};
  }
};
}  // namespace

at::Tensor leaky_relu_sq(const at::Tensor& x) { return LeakyReluSq::apply(x); }

}  // namespace golf::ops
