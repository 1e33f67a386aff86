// The GOLF_FUSED_MIX ops (model/ops/mix.h) against the chains they replace: forward and every
// gradient in fp32 and float64, the hand-written backwards against central finite differences in
// float64, the reference functions against the model's expressions (model/model.cpp,
// model/attention.cpp) bit for bit, and on a GPU the CUDA kernels against the CPU op on the same
// values (fp32 and bf16).
#include "model/ops/mix.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/cuda.h>

#include <functional>
#include <vector>

#include "tests/test_util.h"

namespace golf {
namespace {

// Inputs of one op; an undefined entry is "none" (no gradient).
using Inputs = std::vector<at::Tensor>;
using Op = std::function<at::Tensor(const Inputs&)>;

struct Result {
  at::Tensor out;
  std::vector<at::Tensor> grads;  // one per input (undefined for undefined inputs)
};

// out = op(inputs) and d(Σ out ⊙ dout)/d input for every defined input.
Result run(const Op& op, const Inputs& inputs0, const at::Tensor& dout) {
  Inputs inputs;
  for (const at::Tensor& t : inputs0) inputs.push_back(t.defined() ? t.clone().requires_grad_(true) : t);
  const at::Tensor out = op(inputs);
  (out * dout).sum().backward();
  Result r{out.detach(), {}};
  for (const at::Tensor& t : inputs) r.grads.push_back(t.defined() ? t.grad() : at::Tensor());
  return r;
}

double rel(const at::Tensor& a, const at::Tensor& b) {
  return ((a.to(at::kDouble) - b.to(at::kDouble)).abs().max() / b.to(at::kDouble).abs().max().clamp_min(1e-30))
      .item<double>();
}

// Every output and gradient of `fused` within `tol` (relative to the largest value) of `reference`.
void expect_close(const Op& fused, const Op& reference, const Inputs& inputs, const at::Tensor& dout, double tol,
                  double grad_tol, const std::string& what) {
  const Result a = run(fused, inputs, dout), b = run(reference, inputs, dout);
  EXPECT_EQ(a.out.scalar_type(), b.out.scalar_type()) << what;
  EXPECT_LE(rel(a.out, b.out), tol) << what;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    ASSERT_TRUE(a.grads[i].defined() && b.grads[i].defined()) << what << " input " << i;
    EXPECT_EQ(a.grads[i].sizes(), b.grads[i].sizes()) << what << " input " << i;
    EXPECT_LE(rel(a.grads[i], b.grads[i]), grad_tol) << what << " input " << i;
  }
}

// Central differences of Σ op(inputs) ⊙ dout in float64 (h = 1e-6: truncation ≈ h²|f'''| and
// cancellation ≈ 1e-16/h, both ≪ the 1e-7 bound) against the op's own backward.
void expect_finite_differences(const Op& op, const Inputs& inputs, const at::Tensor& dout, const std::string& what) {
  const Result r = run(op, inputs, dout);
  const double h = 1e-6;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    for (int64_t k = 0; k < inputs[i].numel(); ++k) {
      auto f = [&](double delta) {
        Inputs moved = inputs;
        moved[i] = inputs[i].clone();
        moved[i].view({-1})[k] += delta;
        return (op(moved) * dout).sum().item<double>();
      };
      EXPECT_NEAR(r.grads[i].reshape({-1})[k].item<double>(), (f(h) - f(-h)) / (2 * h), 1e-7)
          << what << " input " << i << " element " << k;
    }
  }
}

const Op kMix = [](const Inputs& in) { return ops::residual_mix(in[0], in[1], in[2], in[3]); };
const Op kMixRef = [](const Inputs& in) { return ops::residual_mix_reference(in[0], in[1], in[2], in[3]); };
const Op kXsa = [](const Inputs& in) { return ops::xsa_gate(in[0], in[1], in[2]); };
const Op kXsaRef = [](const Inputs& in) { return ops::xsa_gate_reference(in[0], in[1], in[2]); };
const Op kSmear = [](const Inputs& in) { return ops::smear(in[0], in[1]); };
const Op kSmearRef = [](const Inputs& in) { return ops::smear_reference(in[0], in[1]); };

// The coefficient kinds model/model.cpp passes: none (1), per channel (d), 0-dim scalar (ρ, π).
enum class Coef { none, channel, scalar };
at::Tensor coefficient(Coef c, int64_t d, at::ScalarType dtype) {
  if (c == Coef::none) return {};
  return c == Coef::channel ? at::randn({d}, dtype) : at::randn({}, dtype);
}

Inputs mix_inputs(Coef ca, Coef cb, at::ScalarType dtype, int64_t B = 2, int64_t T = 5, int64_t d = 12) {
  return {at::randn({B, T, d}, dtype), coefficient(ca, d, dtype), at::randn({B, T, d}, dtype),
          cb == Coef::scalar ? at::randn({}, dtype) : at::randn({d}, dtype)};
}

// (B, T, H, Dh) y, (B, T, Hkv, Dh) v and optionally a (B, T, H) gate. zero_row: v's first row
// exactly zero (the clamp's branch: XSA leaves y untouched there).
Inputs xsa_inputs(int64_t H, int64_t Hkv, int64_t Dh, bool gate, at::ScalarType dtype, int64_t B = 2, int64_t T = 3,
                  bool zero_row = false) {
  at::Tensor v = at::randn({B, T, Hkv, Dh}, dtype);
  if (zero_row) v[0][0][0].zero_();
  return {at::randn({B, T, H, Dh}, dtype), v, gate ? at::rand({B, T, H}, dtype) * 2 : at::Tensor()};
}

// (B, T, d) e and (B, T, 1) g, zero at t = 0 and at one "BOS" as the model builds it.
Inputs smear_inputs(at::ScalarType dtype, int64_t B = 2, int64_t T = 6, int64_t d = 10) {
  at::Tensor g = at::rand({B, T, 1}, dtype);
  g.select(1, 0).zero_();
  g[1][T / 2].zero_();
  return {at::randn({B, T, d}, dtype), g};
}

struct XsaShape {
  int64_t H, Hkv, Dh;
};
const XsaShape kXsaShapes[] = {{8, 4, 64}, {4, 4, 16}, {6, 2, 40}};  // record GQA, MHA, head dim ∤ 32

// Tolerances. residual_mix's ATen path runs the chain's own operations (a·x, b·y, the add; the
// backward's products and sum_to): ≤ 1 ulp apart (1e-6 fp32, 1e-15 float64). xsa_gate: the op
// normalises v and projects in one precision without the chain's intermediate roundings; its
// gradients (through vn = v/‖v‖) sum Dh and the group's products in another order: 1e-5 fp32,
// 1e-13 float64. smear: the same products and sums: 1e-6 / 1e-15.
TEST(ResidualMix, EqualsTheChainForwardAndEveryGradient) {
  at::manual_seed(21);
  for (const auto dtype : {at::kFloat, at::kDouble})
    for (const Coef ca : {Coef::none, Coef::channel, Coef::scalar})
      for (const Coef cb : {Coef::channel, Coef::scalar}) {
        const double tol = dtype == at::kFloat ? 1e-6 : 1e-15;
        const Inputs in = mix_inputs(ca, cb, dtype);
        const std::string what = fmt::format("{} a{} b{}", c10::toString(dtype), static_cast<int>(ca), static_cast<int>(cb));
        expect_close(kMix, kMixRef, in, at::randn({2, 5, 12}, dtype), tol, tol, what);
      }
}

TEST(ResidualMix, BackwardMatchesFiniteDifferencesInFloat64) {
  at::manual_seed(22);
  expect_finite_differences(kMix, mix_inputs(Coef::channel, Coef::scalar, at::kDouble, 1, 2, 3), at::randn({1, 2, 3}, at::kDouble),
                            "channel/scalar");
  expect_finite_differences(kMix, mix_inputs(Coef::none, Coef::channel, at::kDouble, 1, 2, 3), at::randn({1, 2, 3}, at::kDouble),
                            "none/channel");
}

TEST(XsaGate, EqualsTheChainForwardAndEveryGradient) {
  at::manual_seed(23);
  for (const auto dtype : {at::kFloat, at::kDouble})
    for (const XsaShape& sh : kXsaShapes)
      for (const bool gate : {true, false}) {
        const double tol = dtype == at::kFloat ? 1e-5 : 1e-13;
        const Inputs in = xsa_inputs(sh.H, sh.Hkv, sh.Dh, gate, dtype);
        const std::string what = fmt::format("{} H{} Hkv{} Dh{} gate {}", c10::toString(dtype), sh.H, sh.Hkv, sh.Dh, gate);
        expect_close(kXsa, kXsaRef, in, at::randn_like(in[0]), tol, tol, what);
      }
}

TEST(XsaGate, BackwardMatchesFiniteDifferencesInFloat64) {
  at::manual_seed(24);
  Inputs in = xsa_inputs(4, 2, 5, /*gate=*/true, at::kDouble, 1, 2);
  expect_finite_differences(kXsa, in, at::randn_like(in[0]), "gated");
  in[2] = at::Tensor();
  expect_finite_differences(kXsa, in, at::randn_like(in[0]), "ungated");
}

TEST(XsaGate, OutputIsOrthogonalToTheTokensOwnValue) {
  // The invariant XSA exists for: each head's output (before the gate) has no component along v.
  at::manual_seed(25);
  const Inputs in = xsa_inputs(8, 4, 64, /*gate=*/false, at::kDouble, 2, 3, /*zero_row=*/true);
  const at::Tensor z = ops::xsa_gate(in[0], in[1], at::Tensor()).view({2, 3, 4, 2, 64});
  const at::Tensor vn = in[1] / in[1].norm(2, -1, true).clamp_min(1e-12);
  EXPECT_LE((z * vn.unsqueeze(3)).sum(-1).abs().max().item<double>(), 1e-12);
  EXPECT_TRUE(at::equal(z[0][0][0], in[0].view({2, 3, 4, 2, 64})[0][0][0])) << "a zero v leaves y as it is";
}

// A zero value row: the clamp's branch (‖v‖ < 1e-12: vn = v / 1e-12 = 0). There p = q = 0, so
// dvn = 0 and dv = dvn / 1e-12 = 0 (the projection is quadratic in v at 0): exactly zero in both.
TEST(XsaGate, AZeroValueRowTakesTheClampsGradient) {
  at::manual_seed(30);
  const Inputs in = xsa_inputs(8, 4, 16, /*gate=*/true, at::kFloat, 2, 3, /*zero_row=*/true);
  const at::Tensor dout = at::randn_like(in[0]);
  const Result a = run(kXsa, in, dout), b = run(kXsaRef, in, dout);
  EXPECT_LE(rel(a.out, b.out), 1e-5);
  EXPECT_LE(rel(a.grads[0], b.grads[0]), 1e-5);
  EXPECT_LE(rel(a.grads[2], b.grads[2]), 1e-5);
  EXPECT_TRUE(at::equal(a.grads[1][0][0][0], at::zeros({16})));
  EXPECT_TRUE(at::equal(b.grads[1][0][0][0], at::zeros({16})));
  EXPECT_LE(rel(a.grads[1], b.grads[1]), 1e-5);
}

TEST(Smear, EqualsTheChainForwardAndEveryGradient) {
  at::manual_seed(26);
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    const double tol = dtype == at::kFloat ? 1e-6 : 1e-15;
    const Inputs in = smear_inputs(dtype);
    expect_close(kSmear, kSmearRef, in, at::randn_like(in[0]), tol, tol, c10::toString(dtype));
  }
}

TEST(Smear, BackwardMatchesFiniteDifferencesInFloat64) {
  at::manual_seed(27);
  const Inputs in = smear_inputs(at::kDouble, 2, 3, 4);
  expect_finite_differences(kSmear, in, at::randn_like(in[0]), "smear");
}

// The references are the model's plain expressions (the GOLF_FUSED_MIX=0 path; model/model.cpp,
// model/attention.cpp), written out again here: bit for bit.
TEST(MixReferences, AreTheModelsChainsBitForBit) {
  at::manual_seed(28);
  const at::Tensor x = at::randn({2, 5, 12}), y = at::randn({2, 5, 12}), m = at::randn({2, 12}), s = at::randn({12});
  EXPECT_TRUE(at::equal(ops::residual_mix_reference(x, m[0], y, m[1]), m[0] * x + m[1] * y));
  EXPECT_TRUE(at::equal(ops::residual_mix_reference(x, {}, y, s), x + s * y));
  const Inputs in = xsa_inputs(8, 4, 16, /*gate=*/true, at::kFloat);
  const at::Tensor &yh = in[0], &v = in[1], &gate = in[2];
  const at::Tensor vn = (v / v.norm(2, -1, /*keepdim=*/true).clamp_min(1e-12)).unsqueeze(3);
  const at::Tensor yg = yh.view({2, 3, 4, 2, 16});
  const at::Tensor xsa = (yg - (yg * vn).sum(-1, /*keepdim=*/true) * vn).view({2, 3, 8, 16});
  EXPECT_TRUE(at::equal(ops::xsa_gate_reference(yh, v, at::Tensor()), xsa));
  EXPECT_TRUE(at::equal(ops::xsa_gate_reference(yh, v, gate), xsa * gate.unsqueeze(-1)));
  const Inputs sm = smear_inputs(at::kFloat);
  const at::Tensor& e = sm[0];
  const at::Tensor prev = at::cat({at::zeros_like(e.narrow(1, 0, 1)), e.narrow(1, 0, e.size(1) - 1)}, 1);
  EXPECT_TRUE(at::equal(ops::smear_reference(e, sm[1]), e + sm[1] * prev));
}

TEST(MixOps, BadShapesAreErrors) {
  const at::Tensor x = at::randn({2, 3, 8});
  EXPECT_THROW(ops::residual_mix(x, at::Tensor(), at::randn({2, 3, 7}), at::ones({7})), c10::Error);
  EXPECT_THROW(ops::residual_mix(x, at::ones({3}), x, at::ones({8})), c10::Error);  // neither scalar nor (d)
  EXPECT_THROW(ops::xsa_gate(at::randn({1, 2, 6, 8}), at::randn({1, 2, 4, 8}), at::Tensor()), c10::Error);  // 4 ∤ 6
  EXPECT_THROW(ops::xsa_gate(at::randn({1, 2, 4, 8}), at::randn({1, 2, 2, 8}), at::ones({1, 2, 3})), c10::Error);
  EXPECT_THROW(ops::smear(x, at::ones({2, 3})), c10::Error);
}

// CUDA kernels vs the CPU op on the same values (inputs rounded to the storage dtype first, the CPU
// op then computes in fp32). fp32 storage: the same arithmetic in another order (warp shuffles,
// fused multiply-adds, per-chunk column sums): 1e-5 relative, 1e-4 for the coefficient gradients
// (column sums over 4,000 rows). bf16 storage: one rounding of each output on the GPU side only
// (2⁻⁸ = 3.9e-3) → 8e-3; gradients that are sums (the coefficients, dgate, dv through the group)
// see each bf16 rounding of the upstream gradient: 1.6e-2. Estimates until the kit runs them.
TEST(MixOps, CudaKernelsEqualTheCpuOpOnGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(29);
  auto f32 = [](const Inputs& in) {
    Inputs out;
    for (const at::Tensor& t : in) out.push_back(t.defined() ? t.to(at::kFloat) : t);
    return out;
  };
  auto gpu = [](const Inputs& in) {
    Inputs out;
    for (const at::Tensor& t : in) out.push_back(t.defined() ? t.to(at::kCUDA) : t);
    return out;
  };
  auto compare = [&](const Op& op, const Inputs& stored, const at::Tensor& dout, at::ScalarType dtype, const std::string& what) {
    const Result c = run(op, f32(stored), dout.to(at::kFloat));
    const Result g = run(op, gpu(stored), dout.to(at::kCUDA));
    const double tol = dtype == at::kFloat ? 1e-5 : 8e-3, sum_tol = dtype == at::kFloat ? 1e-4 : 1.6e-2;
    EXPECT_EQ(g.out.scalar_type(), dtype) << what;
    EXPECT_LE(rel(g.out.cpu(), c.out), tol) << what;
    for (size_t i = 0; i < stored.size(); ++i)
      if (stored[i].defined()) {
        EXPECT_LE(rel(g.grads[i].cpu(), c.grads[i]), i == 0 ? 2 * tol : sum_tol) << what << " input " << i;
      }
  };
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    auto stored = [&](Inputs in) {
      for (at::Tensor& t : in)
        if (t.defined()) t = t.to(dtype);
      return in;
    };
    for (const Coef ca : {Coef::none, Coef::channel, Coef::scalar})
      for (const Coef cb : {Coef::channel, Coef::scalar}) {
        const Inputs in = stored(mix_inputs(ca, cb, at::kFloat, 4, 1000, 512));
        compare(kMix, in, at::randn({4, 1000, 512}).to(dtype), dtype,
                fmt::format("mix {} a{} b{}", c10::toString(dtype), static_cast<int>(ca), static_cast<int>(cb)));
      }
    for (const XsaShape& sh : kXsaShapes)
      for (const bool gate : {true, false}) {
        const Inputs in = stored(xsa_inputs(sh.H, sh.Hkv, sh.Dh, gate, at::kFloat, 3, 333));
        compare(kXsa, in, at::randn(in[0].sizes()).to(dtype), dtype,
                fmt::format("xsa {} H{} Hkv{} Dh{} gate {}", c10::toString(dtype), sh.H, sh.Hkv, sh.Dh, gate));
      }
    const Inputs sm = stored(smear_inputs(at::kFloat, 3, 333, 512));
    compare(kSmear, sm, at::randn(sm[0].sizes()).to(dtype), dtype, fmt::format("smear {}", c10::toString(dtype)));
  }
}

}  // namespace
}  // namespace golf
