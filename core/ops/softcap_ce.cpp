#include "core/ops/softcap_ce.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace golf::ops {

at::Tensor softcap_cross_entropy_reference(const at::Tensor& z, const at::Tensor& targets, double cap) {
  TORCH_CHECK(z.dim() == 2 && targets.dim() == 1 && targets.size(0) == z.size(0),
              "softcap_cross_entropy: expected z (N, V) and targets (N,), got ", z.sizes(), " and ", targets.sizes());
  const at::Tensor capped = cap * at::tanh(z.to(at::kFloat) / cap);  // (N, V)
  return at::cross_entropy_loss(capped, targets, /*weight=*/{}, at::Reduction::None);
}

namespace {
// Forward runs the fused kernel and keeps its dz; backward only scales dz by the upstream
// per-row gradient.
struct FusedSoftcapCe : torch::autograd::Function<FusedSoftcapCe> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& z, const at::Tensor& targets,
                            double cap) {
    at::Tensor loss, dz;
    softcap_cross_entropy_cuda(z, targets, cap, loss, dz);
    ctx->save_for_backward({dz});
    return loss;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_loss) {
    const at::Tensor dz = ctx->get_saved_variables()[0];                              // (N, V)
    const at::Tensor dz_scaled = (dz.to(at::kFloat) * grad_loss[0].unsqueeze(1)).to(dz.scalar_type());
    return {dz_scaled, at::Tensor(), at::Tensor()};
  }
};
}  // namespace

at::Tensor softcap_cross_entropy(const at::Tensor& z, const at::Tensor& targets, double cap) {
  if (z.is_cuda()) return FusedSoftcapCe::apply(z, targets, cap);
  return softcap_cross_entropy_reference(z, targets, cap);
}

}  // namespace golf::ops
