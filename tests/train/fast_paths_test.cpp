// The model's fast paths (core/fast_paths.h) against its plain paths on the CPU: the same live
// model run once with plain_paths() and once with each fast path (and all together) must give the
// same loss, logits and every parameter gradient, with and without recurrence; the varlen
// attention glue must keep causality and document isolation exactly as the masked reference does.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/fast_paths.h"
#include "core/model.h"
#include "core/varlen.h"
#include "tests/live_model.h"
#include "tests/test_util.h"

namespace golf {
namespace {

using test::live_model;

struct Result {
  double loss;
  at::Tensor logits;
  std::map<std::string, at::Tensor> grads;
};

Result run(const Config& c, const FastPaths& f, const at::Tensor& x, bool looping, bool precomputed_cu = false) {
  Model m = live_model(c);
  m.set_fast_paths(f);
  const at::Tensor tokens = x.narrow(1, 0, x.size(1) - 1), targets = x.narrow(1, 1, x.size(1) - 1);
  ForwardOptions forward;
  if (precomputed_cu) forward.cu_seqlens = varlen_segments(tokens, c).cu_seqlens;
  const at::Tensor loss = m.loss(tokens, targets, looping, forward);
  loss.backward();
  Result r{loss.item<double>(), {}, {}};
  {
    at::NoGradGuard no_grad;
    r.logits = m.logits(tokens, looping, nullptr, forward);
  }
  for (const auto& name : m.names()) r.grads[name] = m.param(name).grad();
  return r;
}

at::Tensor batch() {
  at::manual_seed(21);
  at::Tensor x = at::randint(4, 300, {3, 41}, at::kLong);
  x[0][0] = 1, x[0][9] = 1, x[1][30] = 1, x[2][5] = 1, x[2][6] = 1;  // documents, incl. a 1-token one
  return x;
}

// Tolerances (fp32, CPU). The fast paths compute the same functions in a different rounding
// order: at::rms_norm (≤ 4 ulp per output), varlen per-segment SDPA vs blocked masked SDPA
// (different summation order), bank unbind (bit-equal forward; gradients summed by stack instead
// of by accumulating zero-filled banks: bit-equal, or 1 ulp), the fused QK-norm + RoPE + gain
// (n rounded once instead of after each RoPE product: a few ulp). Through 10 layer visits these grow
// to ~1e-6 relative; 1e-5 on logits and loss, 1e-4 relative on gradients (the twin tests' bar),
// with an absolute floor for near-zero gradients.
void expect_same(const Result& a, const Result& b, const std::string& what) {
  EXPECT_NEAR(a.loss, b.loss, 1e-5) << what;
  EXPECT_LE((a.logits - b.logits).abs().max().item<double>(), 1e-5) << what;
  for (const auto& [name, g] : a.grads) {
    const at::Tensor& h = b.grads.at(name);
    ASSERT_TRUE(g.defined() && h.defined()) << what << " " << name;
    const double scale = std::max(g.abs().max().item<double>(), 1e-3);
    EXPECT_LE((g - h).abs().max().item<double>() / scale, 1e-4) << what << ": gradient of " << name;
  }
}

TEST(FastPathsModel, EachFastPathGivesTheSameLossLogitsAndGradients) {
  const Config c = test::small_model_config();
  const at::Tensor x = batch();
  for (const bool looping : {false, true}) {
    const Result plain = run(c, plain_paths(), x, looping);
    FastPaths f = plain_paths();
    f.fused_ops = true;
    expect_same(run(c, f, x, looping), plain, "fused_ops looping " + std::to_string(looping));
    f = plain_paths();
    f.bank_unbind = true;
    expect_same(run(c, f, x, looping), plain, "bank_unbind looping " + std::to_string(looping));
    f = plain_paths();
    f.attn = AttnBackend::varlen_ref;
    expect_same(run(c, f, x, looping), plain, "varlen_ref looping " + std::to_string(looping));
    f = plain_paths();
    f.fused_qk = true;
    expect_same(run(c, f, x, looping), plain, "fused_qk looping " + std::to_string(looping));
    f.attn = AttnBackend::varlen_ref;
    f.fused_ops = f.bank_unbind = true;
    expect_same(run(c, f, x, looping), plain, "all looping " + std::to_string(looping));
    expect_same(run(c, f, x, looping, /*precomputed_cu=*/true), plain, "all, cu_seqlens given");
  }
}

TEST(FastPathsModel, BankUnbindIsBitExactInTheForward) {
  const Config c = test::small_model_config();
  const at::Tensor x = batch();
  FastPaths f = plain_paths();
  f.bank_unbind = true;
  EXPECT_TRUE(at::equal(run(c, f, x, true).logits, run(c, plain_paths(), x, true).logits));
}

TEST(FastPathsModel, DenseRowsAndVariantsKeepTheirReferenceAttention) {
  // DOC_MASK=0 rows and the seed variants (value residual, gated attention; SMAT's folded heads
  // stay on the masked path by design) through the varlen glue.
  Config c = test::small_model_config();
  c.doc_mask = 0;
  c.value_residual = 1;
  c.gated_attention = 1;
  c.attn_out_gate_enabled = 0;  // exclusive with gated attention
  const at::Tensor x = batch();
  FastPaths f = plain_paths();
  f.attn = AttnBackend::varlen_ref;
  f.fused_ops = f.bank_unbind = true;
  expect_same(run(c, f, x, true), run(c, plain_paths(), x, true), "doc_mask 0 + variants");
}

// Compliance invariants with the varlen attention and the fused QK op: bit-exact like the reference.
Model varlen_model(const Config& c) {
  Model m = live_model(c);
  FastPaths f = plain_paths();
  f.attn = AttnBackend::varlen_ref;
  f.fused_ops = f.bank_unbind = f.fused_qk = true;
  m.set_fast_paths(f);
  return m;
}

TEST(FastPathsModel, VarlenChangingAFutureTokenLeavesEarlierLogitsUnchanged) {
  for (const int64_t doc_mask : {1, 0}) {
    Config c = test::small_model_config();
    c.doc_mask = doc_mask;
    const Model m = varlen_model(c);
    at::Tensor x = at::randint(4, 300, {1, 50}, at::kLong);
    x[0][0] = 1, x[0][21] = 1;
    at::NoGradGuard no_grad;
    const at::Tensor before = m.logits(x, true);
    at::Tensor y = x.clone();
    y[0][37] = 5;
    const at::Tensor after = m.logits(y, true);
    EXPECT_TRUE(at::equal(before.narrow(1, 0, 37), after.narrow(1, 0, 37))) << "doc_mask " << doc_mask;
    EXPECT_FALSE(at::allclose(before.narrow(1, 37, 13), after.narrow(1, 37, 13))) << "the change must matter";
  }
}

TEST(FastPathsModel, VarlenDocumentScoresTheSameAloneAsAfterAnother) {
  const Model m = varlen_model(test::small_model_config());
  std::vector<int64_t> doc = {1};
  for (int i = 0; i < 29; ++i) doc.push_back(10 + (i * 37) % 250);
  std::vector<int64_t> packed = {1, 200, 201, 202, 203, 204, 205};
  packed.insert(packed.end(), doc.begin(), doc.end());
  at::NoGradGuard no_grad;
  const at::Tensor alone = m.logits(at::tensor(doc, at::kLong).unsqueeze(0), true);
  const at::Tensor after =
      m.logits(at::tensor(packed, at::kLong).unsqueeze(0), true).narrow(1, 7, static_cast<int64_t>(doc.size()));
  EXPECT_LE((alone - after).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace golf
