// model/ops/softcap_ce.h — the model's loss head: logit softcap followed by cross-entropy.
//
//   z        (N, V)  raw logits, fp32 or bf16
//   targets  (N,)    int64 token ids in [0, V)
//   c = cap · tanh(z / cap)                       (softcapped logits)
//   loss_i = logsumexp_j(c_ij) − c_i,targets_i    (fp32, per row)
//
// softcap_cross_entropy() is differentiable. On CUDA it runs one fused kernel that computes the
// loss and, in the same pass, dloss/dz = (softmax(c) − onehot) · (1 − tanh²(z/cap)), so the
// softcapped logits are never materialised; elsewhere it runs the ATen reference below.
#pragma once

namespace at { class Tensor; }

namespace golf::ops {

// Per-row losses (N,), fp32. Autograd-aware.
at::Tensor softcap_cross_entropy(const at::Tensor& z, const at::Tensor& targets, double cap);

// Plain ATen composition of the same math (fp32 internally); the reference the kernel is tested
// against, and the CPU path.
at::Tensor softcap_cross_entropy_reference(const at::Tensor& z, const at::Tensor& targets, double cap);

// The fused CUDA kernel alone: returns {loss (N,) fp32, dz (N, V) in z's dtype}; dz is the
// gradient of loss_i with respect to z_i (i.e. for an upstream gradient of 1 per row).
void softcap_cross_entropy_cuda(const at::Tensor& z, const at::Tensor& targets, double cap, at::Tensor& loss,
                                at::Tensor& dz);

}  // namespace golf::ops
