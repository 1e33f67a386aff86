#include "model/ops/mix.h"

#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <torch/csrc/autograd/custom_function.h>

namespace golf::ops {

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// fp32, or float64 for float64 inputs (the gradient checks).
at::ScalarType math_type(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// LibTorch's custom functions record every tensor input's device, so "none" enters an autograd
// function as an empty tensor (it takes no gradient) and is undefined again inside.
at::Tensor none_as_empty(const at::Tensor& t, const at::Tensor& like) {
  return t.defined() ? t : at::empty({0}, like.options());
}
at::Tensor empty_as_none(const at::Tensor& t) { return t.numel() == 0 ? at::Tensor() : t; }

// fp32 contiguous copy for the kernels (undefined stays undefined).
at::Tensor f32(const at::Tensor& t) { return t.defined() ? t.to(at::kFloat).contiguous() : t; }

// ---- residual_mix ---------------------------------------------------------------------------
void check_mix(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b) {
  TORCH_CHECK(x.dim() >= 1 && x.sizes() == y.sizes() && x.scalar_type() == y.scalar_type(),
              "residual_mix: x and y must share shape and dtype, got ", x.sizes(), " ", x.scalar_type(), " and ",
              y.sizes(), " ", y.scalar_type());
  const int64_t d = x.size(-1);
  for (const at::Tensor* c : {&a, &b})
    TORCH_CHECK(!c->defined() || (c->dim() <= 1 && (c->numel() == 1 || c->numel() == d)),
                "residual_mix: a coefficient must be a scalar or per channel (", d, "), got ",
                c->defined() ? c->sizes() : at::IntArrayRef{});
  TORCH_CHECK(b.defined(), "residual_mix: b is required");
}

at::Tensor mix_forward_aten(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b) {
  const auto mt = math_type(x);
  const at::Tensor xf = x.to(mt), yf = y.to(mt);
  return ((a.defined() ? a.to(mt) * xf : xf) + b.to(mt) * yf).to(x.scalar_type());
}

struct ResidualMix : torch::autograd::Function<ResidualMix> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& a_in, const at::Tensor& y,
                            const at::Tensor& b) {
    ctx->save_for_backward({x, a_in, y, b});
    const at::Tensor a = empty_as_none(a_in);
    if (!x.is_cuda()) return mix_forward_aten(x, a, y, b);
    return residual_mix_forward_cuda(x.contiguous(), f32(a), y.contiguous(), f32(b)).view(x.sizes());
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &y = saved[2], &b = saved[3];
    const at::Tensor a = empty_as_none(saved[1]);
    const bool need_da = a.defined() && ctx->needs_input_grad(1), need_db = ctx->needs_input_grad(3);
    at::Tensor dx, dy, da, db;
    if (!x.is_cuda()) {
      const auto mt = math_type(x);
      const at::Tensor g = grads[0].to(mt);
      dx = (a.defined() ? g * a.to(mt) : g).to(x.scalar_type());
      dy = (g * b.to(mt)).to(y.scalar_type());
      if (need_da) da = at::sum_to(g * x.to(mt), a.sizes()).to(a.scalar_type());
      if (need_db) db = at::sum_to(g * y.to(mt), b.sizes()).to(b.scalar_type());
    } else {
      const at::Tensor g = grads[0].to(x.scalar_type()).contiguous();
      MixGrads m = residual_mix_backward_cuda(x.contiguous(), f32(a), y.contiguous(), f32(b), g, need_da, need_db);
      dx = m.dx.defined() ? m.dx.view(x.sizes()) : g.view(x.sizes());
      dy = m.dy.view(y.sizes());
      if (need_da) da = m.da.view(a.sizes()).to(a.scalar_type());
      if (need_db) db = m.db.view(b.sizes()).to(b.scalar_type());
    }
    return {dx, da, dy, db};
  }
};

// ---- xsa_gate ---------------------------------------------------------------------------------
constexpr double kXsaNormMin = 1e-12;  // model/attention.cpp's clamp_min on ‖v‖

void check_xsa(const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate) {
  TORCH_CHECK(y.dim() == 4 && v.dim() == 4 && y.size(0) == v.size(0) && y.size(1) == v.size(1) &&
                  y.size(3) == v.size(3) && v.size(2) > 0 && y.size(2) % v.size(2) == 0,
              "xsa_gate: expected y (B, T, H, Dh) and v (B, T, Hkv, Dh) with Hkv | H, got ", y.sizes(), " and ",
              v.sizes());
  TORCH_CHECK(!gate.defined() || (gate.dim() == 3 && gate.sizes() == y.sizes().slice(0, 3)),
              "xsa_gate: expected gate (B, T, H) = ", y.sizes().slice(0, 3), ", got ",
              gate.defined() ? gate.sizes() : at::IntArrayRef{});
}

// The formulas of the header in fp32 / float64, grouped as (B, T, Hkv, G, Dh).
struct XsaParts {
  at::Tensor yg, norm, n, vn, p;  // yg (B,T,Hkv,G,Dh); norm, n (B,T,Hkv,1,1); vn (B,T,Hkv,1,Dh); p (B,T,Hkv,G,1)
};
XsaParts xsa_parts(const at::Tensor& y, const at::Tensor& v) {
  const auto mt = math_type(y);
  const int64_t B = y.size(0), T = y.size(1), H = y.size(2), Hkv = v.size(2), Dh = y.size(3);
  XsaParts s;
  s.yg = y.to(mt).reshape({B, T, Hkv, H / Hkv, Dh});
  const at::Tensor vf = v.to(mt).unsqueeze(3);
  s.norm = vf.norm(2, -1, /*keepdim=*/true);
  s.n = s.norm.clamp_min(kXsaNormMin);
  s.vn = vf / s.n;
  s.p = (s.yg * s.vn).sum(-1, /*keepdim=*/true);
  return s;
}

at::Tensor xsa_forward_aten(const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate) {
  const XsaParts s = xsa_parts(y, v);
  at::Tensor z = s.yg - s.p * s.vn;
  if (gate.defined()) z = z * gate.to(z.scalar_type()).reshape({s.yg.size(0), s.yg.size(1), s.yg.size(2), s.yg.size(3), 1});
  return z.reshape(y.sizes()).to(y.scalar_type());
}

XsaGrads xsa_backward_aten(const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate, const at::Tensor& dout) {
  const XsaParts s = xsa_parts(y, v);
  const at::Tensor d = dout.to(s.yg.scalar_type()).reshape(s.yg.sizes());
  XsaGrads out;
  at::Tensor dz = d;
  if (gate.defined()) {
    const at::Tensor g = gate.to(s.yg.scalar_type()).reshape({s.yg.size(0), s.yg.size(1), s.yg.size(2), s.yg.size(3), 1});
    out.dgate = (d * (s.yg - s.p * s.vn)).sum(-1).reshape(gate.sizes()).to(gate.scalar_type());
    dz = d * g;
  }
  const at::Tensor q = (dz * s.vn).sum(-1, /*keepdim=*/true);
  out.dy = (dz - q * s.vn).reshape(y.sizes()).to(y.scalar_type());
  const at::Tensor dvn = -(s.yg * q + s.p * dz).sum(3, /*keepdim=*/true);  // (B, T, Hkv, 1, Dh)
  const at::Tensor dv = at::where(s.norm >= kXsaNormMin, (dvn - s.vn * (dvn * s.vn).sum(-1, /*keepdim=*/true)) / s.n,
                                  dvn / s.n);
  out.dv = dv.squeeze(3).to(v.scalar_type());
  return out;
}

struct XsaGate : torch::autograd::Function<XsaGate> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate_in) {
    ctx->save_for_backward({y, v, gate_in});
    const at::Tensor gate = empty_as_none(gate_in);
    if (!y.is_cuda()) return xsa_forward_aten(y, v, gate);
    const int64_t N = y.size(0) * y.size(1);
    return xsa_gate_forward_cuda(y.reshape({N, y.size(2), y.size(3)}).contiguous(),
                                 v.reshape({N, v.size(2), v.size(3)}).contiguous(),
                                 gate.defined() ? f32(gate.reshape({N, y.size(2)})) : at::Tensor())
        .view(y.sizes());
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &y = saved[0], &v = saved[1];
    const at::Tensor gate = empty_as_none(saved[2]);
    XsaGrads g;
    if (!y.is_cuda()) {
      g = xsa_backward_aten(y, v, gate, grads[0]);
    } else {
      const int64_t N = y.size(0) * y.size(1), H = y.size(2), Dh = y.size(3);
      g = xsa_gate_backward_cuda(y.reshape({N, H, Dh}).contiguous(), v.reshape({N, v.size(2), Dh}).contiguous(),
                                 gate.defined() ? f32(gate.reshape({N, H})) : at::Tensor(),
                                 grads[0].to(y.scalar_type()).reshape({N, H, Dh}).contiguous());
      g.dy = g.dy.view(y.sizes());
      g.dv = g.dv.view(v.sizes());
      if (gate.defined()) g.dgate = g.dgate.view(gate.sizes()).to(gate.scalar_type());
    }
    return {g.dy, g.dv, gate.defined() ? g.dgate : at::Tensor()};
  }
};

// ---- smear ------------------------------------------------------------------------------------
void check_smear(const at::Tensor& e, const at::Tensor& g) {
  TORCH_CHECK(e.dim() == 3 && g.dim() == 3 && g.size(0) == e.size(0) && g.size(1) == e.size(1) && g.size(2) == 1,
              "smear: expected e (B, T, d) and g (B, T, 1), got ", e.sizes(), " and ", g.sizes());
}

// (B, T, ·) shifted one token later along T, zero first: out[t] = x[t − 1].
at::Tensor shift_later(const at::Tensor& x) {
  return at::cat({at::zeros_like(x.narrow(1, 0, 1)), x.narrow(1, 0, x.size(1) - 1)}, 1);
}
// The adjoint: out[t] = x[t + 1], zero last.
at::Tensor shift_earlier(const at::Tensor& x) {
  return at::cat({x.narrow(1, 1, x.size(1) - 1), at::zeros_like(x.narrow(1, 0, 1))}, 1);
}

struct Smear : torch::autograd::Function<Smear> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& e, const at::Tensor& g) {
    ctx->save_for_backward({e, g});
    if (!e.is_cuda()) {
      const auto mt = math_type(e);
      const at::Tensor ef = e.to(mt);
      return (ef + g.to(mt) * shift_later(ef)).to(e.scalar_type());
    }
    return smear_forward_cuda(e.contiguous(), f32(g.squeeze(-1)));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &e = saved[0], &g = saved[1];
    if (!e.is_cuda()) {
      const auto mt = math_type(e);
      const at::Tensor d = grads[0].to(mt), ef = e.to(mt);
      const at::Tensor de = d + shift_earlier(g.to(mt) * d);
      const at::Tensor dg = (d * shift_later(ef)).sum(-1, /*keepdim=*/true);
      return {de.to(e.scalar_type()), dg.to(g.scalar_type())};
    }
    SmearGrads s = smear_backward_cuda(e.contiguous(), f32(g.squeeze(-1)), grads[0].to(e.scalar_type()).contiguous());
    return {s.de, s.dg.unsqueeze(-1).to(g.scalar_type())};
  }
};
}  // namespace

at::Tensor residual_mix(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b) {
  check_mix(x, a, y, b);
  return ResidualMix::apply(x, none_as_empty(a, x), y, b);
}

at::Tensor residual_mix_reference(const at::Tensor& x, const at::Tensor& a, const at::Tensor& y, const at::Tensor& b) {
  check_mix(x, a, y, b);
  return (a.defined() ? a * x : x) + b * y;
}

at::Tensor xsa_gate(const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate) {
  check_xsa(y, v, gate);
  return XsaGate::apply(y, v, none_as_empty(gate, y));
}

at::Tensor xsa_gate_reference(const at::Tensor& y, const at::Tensor& v, const at::Tensor& gate) {
  check_xsa(y, v, gate);
  const int64_t B = y.size(0), T = y.size(1), H = y.size(2), Dh = y.size(3), Hkv = v.size(2);
  const at::Tensor vn = (v / v.norm(2, -1, /*keepdim=*/true).clamp_min(kXsaNormMin)).unsqueeze(3);  // (B,T,Hkv,1,Dh)
  const at::Tensor yg = y.view({B, T, Hkv, H / Hkv, Dh});
  const at::Tensor z = (yg - (yg * vn).sum(-1, /*keepdim=*/true) * vn).view({B, T, H, Dh});
  return gate.defined() ? z * gate.unsqueeze(-1) : z;
}

at::Tensor smear(const at::Tensor& e, const at::Tensor& g) {
  check_smear(e, g);
  return Smear::apply(e, g);
}

at::Tensor smear_reference(const at::Tensor& e, const at::Tensor& g) {
  check_smear(e, g);
  return e + g * shift_later(e);
}

}  // namespace golf::ops
