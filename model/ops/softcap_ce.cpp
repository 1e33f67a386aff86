#include "model/ops/softcap_ce.h"

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
    // dz (N, V) is scaled in place: one pass and no N×V temporaries at the moment every activation
    // is still alive. The in-place mul computes in fp32 (the upstream gradient is fp32) and rounds
    // once to dz's dtype: the same values as (dz.float() · g).to(dz.dtype). dz is consumed, so a
    // second backward through this node (retain_graph) is refused rather than silently wrong.
    TORCH_CHECK(!ctx->saved_data.count("consumed"), "softcap_cross_entropy: backward ran twice through one forward");
    ctx->saved_data["consumed"] = true;
    at::Tensor dz = ctx->get_saved_variables()[0];  // (N, V)
    dz.mul_(grad_loss[0].to(at::kFloat).unsqueeze(1));
    return {dz, at::Tensor(), at::Tensor()};
  }
};
}  // namespace

at::Tensor softcap_cross_entropy(const at::Tensor& z, const at::Tensor& targets, double cap) {
  if (z.is_cuda()) return FusedSoftcapCe::apply(z, targets, cap);
  return softcap_cross_entropy_reference(z, targets, cap);
}

}  // namespace golf::ops
