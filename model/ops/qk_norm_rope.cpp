#include "model/ops/qk_norm_rope.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cfloat>

namespace golf::ops {

namespace {
constexpr double kEps = FLT_EPSILON;  // golf::rms_norm's epsilon

void check_shapes(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain, int64_t r) {
  TORCH_CHECK(x.dim() == 4, "qk_norm_rope: expected x (B, T, H, Dh), got ", x.sizes());
  TORCH_CHECK(r > 0 && r % 2 == 0 && r <= x.size(3), "qk_norm_rope: rope_dims ", r, " must be even, in (0, ", x.size(3), "]");
  TORCH_CHECK(cos.dim() == 4 && cos.sizes() == sin.sizes() && cos.size(2) == 1 && cos.size(3) == r / 2,
              "qk_norm_rope: expected cos/sin (B, T, 1, ", r / 2, "), got ", cos.sizes(), " and ", sin.sizes());
  TORCH_CHECK(!cos.requires_grad() && !sin.requires_grad(), "qk_norm_rope: the RoPE tables take no gradient");
  TORCH_CHECK(!gain.defined() || (gain.dim() == 1 && gain.size(0) == x.size(2)),
              "qk_norm_rope: expected gain (", x.size(2), "), got ", gain.defined() ? gain.sizes() : at::IntArrayRef{});
}

// fp32, or float64 for float64 inputs (the gradient checks).
at::ScalarType math_type(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// (first half, second half, rest) of the last dim.
struct Halves {
  at::Tensor a, b, rest;
};
Halves halves(const at::Tensor& x, int64_t r) {
  const int64_t h = r / 2;
  return {x.narrow(-1, 0, h), x.narrow(-1, h, h), x.narrow(-1, r, x.size(-1) - r)};
}

// The rotation R (by −θ) and its transpose Rᵀ on the first r dims.
at::Tensor rotate(const at::Tensor& n, const at::Tensor& c, const at::Tensor& s, int64_t r) {
  const Halves p = halves(n, r);
  return at::cat({p.a * c + p.b * s, -p.a * s + p.b * c, p.rest}, -1);
}
at::Tensor rotate_back(const at::Tensor& d, const at::Tensor& c, const at::Tensor& s, int64_t r) {
  const Halves p = halves(d, r);
  return at::cat({p.a * c - p.b * s, p.a * s + p.b * c, p.rest}, -1);
}

// The ATen implementation (CPU and any non-CUDA device): the formulas of the header.
at::Tensor forward_aten(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain,
                        int64_t r) {
  const auto mt = math_type(x);
  const at::Tensor xf = x.to(mt);
  const at::Tensor n = xf * at::rsqrt(xf.square().mean(-1, /*keepdim=*/true) + kEps);
  at::Tensor y = rotate(n, cos.to(mt), sin.to(mt), r);
  if (gain.defined()) y = y * gain.to(mt).view({1, 1, -1, 1});
  return y.to(x.scalar_type());
}

std::pair<at::Tensor, at::Tensor> backward_aten(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                                const at::Tensor& gain, const at::Tensor& dy, int64_t r) {
  const auto mt = math_type(x);
  const at::Tensor xf = x.to(mt), dyf = dy.to(mt), c = cos.to(mt), s = sin.to(mt);
  const at::Tensor inv = at::rsqrt(xf.square().mean(-1, /*keepdim=*/true) + kEps);  // (B, T, H, 1)
  const at::Tensor n = xf * inv;
  at::Tensor dgain, dr = dyf;
  if (gain.defined()) {
    dgain = (dyf * rotate(n, c, s, r)).sum({0, 1, 3}).to(gain.scalar_type());  // (H)
    dr = dyf * gain.to(mt).view({1, 1, -1, 1});
  }
  const at::Tensor dn = rotate_back(dr, c, s, r);
  const at::Tensor dx = inv * (dn - n * (dn * n).mean(-1, /*keepdim=*/true));
  return {dx.to(x.scalar_type()), dgain};
}

// The kernels' layout: x (N, H, Dh) contiguous, tables (N, r/2) fp32 contiguous, gain (H) fp32.
struct CudaArgs {
  at::Tensor x, cos, sin, gain;
};
CudaArgs cuda_args(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain) {
  const int64_t B = x.size(0), T = x.size(1), h = cos.size(3);
  auto table = [&](const at::Tensor& t) { return t.expand({B, T, 1, h}).reshape({B * T, h}).to(at::kFloat).contiguous(); };
  return {x.reshape({B * T, x.size(2), x.size(3)}).contiguous(), table(cos), table(sin),
          gain.defined() ? gain.to(at::kFloat).contiguous() : at::Tensor()};
}

// LibTorch's custom functions record every tensor input's device, so "no gain" enters the
// autograd function as an empty tensor (it takes no gradient) and is undefined again inside.
at::Tensor gain_or_none(const at::Tensor& g) { return g.numel() == 0 ? at::Tensor() : g; }

struct QkNormRope : torch::autograd::Function<QkNormRope> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos,
                            const at::Tensor& sin, const at::Tensor& gain_in, int64_t r) {
    ctx->save_for_backward({x, cos, sin, gain_in});
    const at::Tensor gain = gain_or_none(gain_in);
    ctx->saved_data["r"] = r;
    if (!x.is_cuda()) return forward_aten(x, cos, sin, gain, r);
    const CudaArgs a = cuda_args(x, cos, sin, gain);
    return qk_norm_rope_forward_cuda(a.x, a.cos, a.sin, a.gain, r).view(x.sizes());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &cos = saved[1], &sin = saved[2];
    const at::Tensor gain = gain_or_none(saved[3]);
    const int64_t r = ctx->saved_data["r"].toInt();
    at::Tensor dx, dgain;
    if (!x.is_cuda()) {
      std::tie(dx, dgain) = backward_aten(x, cos, sin, gain, grads[0], r);
    } else {
      const CudaArgs a = cuda_args(x, cos, sin, gain);
      const at::Tensor dy = grads[0].reshape(a.x.sizes()).to(x.scalar_type()).contiguous();
      std::tie(dx, dgain) = qk_norm_rope_backward_cuda(a.x, a.cos, a.sin, a.gain, dy, r);
      dx = dx.view(x.sizes());
      if (dgain.defined()) dgain = dgain.to(gain.scalar_type());
    }
    return {dx, at::Tensor(), at::Tensor(), dgain, at::Tensor()};
  }
};
}  // namespace

at::Tensor qk_norm_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain,
                        int64_t rope_dims) {
  check_shapes(x, cos, sin, gain, rope_dims);
  return QkNormRope::apply(x, cos, sin, gain.defined() ? gain : at::empty({0}, x.options()), rope_dims);
}

at::Tensor qk_norm_rope_reference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                  const at::Tensor& gain, int64_t rope_dims) {
  check_shapes(x, cos, sin, gain, rope_dims);
  // golf::rms_norm: statistics in fp32 (float64 for float64 inputs, so the gradient checks in
  // float64 see the formula, not fp32 rounding), result in x's dtype.
  const at::Tensor xf = x.to(math_type(x));
  const at::Tensor n = (xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + kEps)).to(x.scalar_type());
  const at::Tensor y = rotate(n, cos.to(x.scalar_type()), sin.to(x.scalar_type()), rope_dims);
  return gain.defined() ? y * gain.to(x.scalar_type()).view({1, 1, -1, 1}) : y;
}

}  // namespace golf::ops
