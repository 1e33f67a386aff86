// Model invariants, independent of any reference: the layer schedule, identity at init of the
// gates, causality, document isolation (the BOS mask), the recurrence switch, and the blocked
// segment attention equal to the naive masked formula.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <thread>

#include "model/model.h"
#include "train/optim.h"
#include "tests/live_model.h"
#include "tests/model/invariants.h"
#include "tests/test_util.h"

namespace golf {
namespace {

Config small_config() { return test::small_model_config(); }

using test::live_model;

at::Tensor tokens_with_docs(std::vector<int64_t> ids) { return at::tensor(ids, at::kLong).unsqueeze(0); }

// ---- forward probes: the forward keeps nothing between calls ---------------------------------
TEST(ModelProbes, RecordingHessiansChangesNoOutput) {
  const Config c = small_config();
  const Model m = live_model(c);
  const at::Tensor x = at::randint(4, 300, {2, 40}, at::kLong);
  at::NoGradGuard no_grad;
  const at::Tensor plain = m.logits(x, true);
  HessianCollector h;
  const ForwardProbes probes{.hessians = &h};
  EXPECT_TRUE(at::equal(m.logits(x, true, &probes), plain));
  EXPECT_TRUE(at::equal(m.logits(x, true), plain)) << "nothing recorded stays in the model";
  for (int i = 0; i < c.num_layers; ++i)
    for (const char* name : {"attn.c_q.weight", "attn.proj.weight", "mlp.fc.weight", "mlp.proj.weight"})
      EXPECT_GT(h.rows[fmt::format("blocks.{}.{}", i, name)], 0) << i << " " << name;
  EXPECT_EQ(h.rows["tok_emb.weight"], 2 * 40);
}

// Two threads running forwards of one model at once get what each gets alone: the per-forward state
// (segments, RoPE tables, the banks cast once with GOLF_BANK_UNBIND) lives in the call, not the model.
TEST(ModelProbes, ConcurrentForwardsOfOneModelEqualSequentialOnes) {
  Model m = live_model(small_config());
  FastPaths f = plain_paths();
  f.bank_unbind = true;
  m.set_fast_paths(f);
  const at::Tensor a = at::randint(4, 300, {2, 40}, at::kLong), b = at::randint(4, 300, {3, 24}, at::kLong);
  at::NoGradGuard no_grad;
  const at::Tensor want_a = m.logits(a, true), want_b = m.logits(b, false);
  for (int round = 0; round < 4; ++round) {
    at::Tensor got_a, got_b;
    std::thread ta([&] {
      at::NoGradGuard ng;
      for (int k = 0; k < 3; ++k) got_a = m.logits(a, true);
    });
    std::thread tb([&] {
      at::NoGradGuard ng;
      for (int k = 0; k < 3; ++k) got_b = m.logits(b, false);
    });
    ta.join();
    tb.join();
    EXPECT_TRUE(at::equal(got_a, want_a)) << round;
    EXPECT_TRUE(at::equal(got_b, want_b)) << round;
  }
}

TEST(ModelSchedule, VisitOrderMatchesTheRecordTable) {
  Config c;  // the record shape: 11 layers, loop 3..5 twice more
  at::manual_seed(0);
  c.vocab_size = 64, c.model_dim = 64, c.num_heads = 4, c.num_kv_heads = 2;  // small, same schedule
  const Model m(c, at::kCPU);
  const auto [enc_off, dec_off] = m.visit_order(false);
  EXPECT_EQ(enc_off, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(dec_off, (std::vector<int>{5, 6, 7, 8, 9, 10}));
  const auto [enc_on, dec_on] = m.visit_order(true);
  EXPECT_EQ(enc_on, (std::vector<int>{0, 1, 2, 3, 4, 5, 3, 4}));
  EXPECT_EQ(dec_on, (std::vector<int>{5, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(m.num_skip_rows(), 8);
}

TEST(ModelInit, AttnOutGateAndSmearGateAreIdentityAtInit) {
  Config with = small_config(), without = small_config();
  without.attn_out_gate_enabled = 0;
  without.smear_gate_enabled = 0;
  at::manual_seed(3);
  Model a(with, at::kCPU);
  Model b(without, at::kCPU);
  {  // same weights for everything the two share; a's gates stay at their zero init
    at::NoGradGuard no_grad;
    for (const auto& name : b.names()) {
      b.param(name).copy_(a.param(name));
      if (a.param(name).dim() == 3) {  // live O/down so the attention output matters
        at::Tensor noise = at::randn_like(a.param(name)) * 0.1;
        a.param(name).add_(noise);
        b.param(name).add_(noise);
      }
    }
  }
  const auto x = at::randint(4, 300, {2, 40}, at::kLong);
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(a.logits(x, true), b.logits(x, true)));
}

// R29's sparse attention gate is a plain sigmoid: 0.5 at its zero init, so the model equals the
// ungated one with every W_O halved (exact in fp32: a power-of-two scale).
TEST(ModelInit, SparseAttnGateIsOneHalfAtZeroInit) {
  Config gated = small_config(), plain = small_config();
  gated.attn_out_gate_enabled = 0, plain.attn_out_gate_enabled = 0;
  gated.sparse_attn_gate_enabled = 1;
  Model a = live_model(gated);
  Model b = live_model(plain);
  {
    at::NoGradGuard no_grad;
    for (const auto& name : b.names()) b.param(name).copy_(a.param(name));
    for (int64_t i = 0; i < gated.num_layers; ++i) {
      a.param(fmt::format("blocks.{}.attn.attn_gate_w", i)).zero_();
      b.param("qo_bank")[gated.num_layers + i].mul_(0.5);
    }
  }
  const auto x = at::randint(4, 300, {2, 40}, at::kLong);
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::allclose(a.logits(x, true), b.logits(x, true), 1e-6, 1e-6));
  // A live gate changes the output, and SPARSE_ATTN_GATE_SCALE scales its logits.
  at::manual_seed(1);
  for (int64_t i = 0; i < gated.num_layers; ++i) a.param(fmt::format("blocks.{}.attn.attn_gate_w", i)).normal_(0, 0.5);
  EXPECT_FALSE(at::allclose(a.logits(x, true), b.logits(x, true), 1e-4, 1e-4));
}

TEST(ModelInit, SparseAttnGateInitStdDrawsNormalWeights) {
  Config c = small_config();
  c.attn_out_gate_enabled = 0, c.sparse_attn_gate_enabled = 1, c.sparse_attn_gate_init_std = 0.25;
  at::manual_seed(0);
  const Model m(c, at::kCPU);
  const at::Tensor w = m.param("blocks.0.attn.attn_gate_w");
  EXPECT_EQ(w.sizes(), (at::IntArrayRef{c.num_heads, c.gate_width}));
  EXPECT_NEAR(w.std().item<double>(), 0.25, 0.08);  // 48 draws
}

TEST(ModelInvariants, ChangingAFutureTokenLeavesEarlierLogitsUnchanged) {
  for (const int64_t doc_mask : {1, 0}) {
    Config c = small_config();
    c.doc_mask = doc_mask;
    test::expect_causal(live_model(c), fmt::format("doc_mask {}", doc_mask));
  }
}

TEST(ModelInvariants, ADocumentScoresTheSameAloneAsAfterAnother) {
  test::expect_document_isolated(live_model(small_config()));
}

TEST(ModelInvariants, WithoutDocumentMaskingAttentionLeaksAcrossDocuments) {
  // The same check with a dense-row model (attention crosses BOS) must fail: it is what the BOS
  // mask and the segments are for.
  Config c = small_config();
  c.doc_mask = 0;
  const Model m = live_model(c);
  std::vector<int64_t> doc = {1, 50, 51, 52, 53};
  std::vector<int64_t> packed = {1, 200, 201, 1, 50, 51, 52, 53};
  at::NoGradGuard no_grad;
  const at::Tensor alone = m.logits(tokens_with_docs(doc), true);
  const at::Tensor after = m.logits(tokens_with_docs(packed), true).narrow(1, 3, 5);
  EXPECT_GT((alone - after).abs().max().item<double>(), 1e-3);
}

TEST(ModelInvariants, RecurrenceSwitchChangesTheComputationOnlyWhenOn) {
  const Model m = live_model(small_config());
  const auto x = at::randint(4, 300, {1, 30}, at::kLong);
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(m.logits(x, false), m.logits(x, false)));
  EXPECT_GT((m.logits(x, true) - m.logits(x, false)).abs().max().item<double>(), 1e-3);
  const auto [enc, dec] = m.visit_order(true);
  EXPECT_EQ(enc.size() + dec.size(), 6u + 2 * 2) << "layers 2..3 visited twice more";
}

TEST(SegmentAttention, BlockedFastPathEqualsNaiveMaskedAttention) {
  at::manual_seed(11);
  const int64_t B = 2, T = 53, H = 4, Hkv = 2, Dh = 8, W = 16;
  const at::Tensor q = at::randn({B, T, H, Dh}), k = at::randn({B, T, Hkv, Dh}), v = at::randn({B, T, Hkv, Dh});
  at::Tensor tokens = at::randint(4, 100, {B, T}, at::kLong);
  tokens[0][9] = 1, tokens[0][40] = 1, tokens[1][1] = 1;
  Config c = small_config();
  c.train_seq_len = W;
  const at::Tensor seg = segments(tokens, c).first;
  const at::Tensor fast = segment_attention(q, k, v, seg, W);
  // Naive: full T×T scores, mask = same segment & causal, softmax, weighted sum.
  const at::Tensor kh = k.repeat_interleave(H / Hkv, 2), vh = v.repeat_interleave(H / Hkv, 2);
  at::Tensor scores = at::einsum("bthd,bshd->bhts", {q, kh}) / std::sqrt(double(Dh));
  const at::Tensor allowed = (seg.unsqueeze(2) == seg.unsqueeze(1)).logical_and(at::ones({T, T}, at::kBool).tril());
  scores = scores.masked_fill(allowed.logical_not().unsqueeze(1), -INFINITY);
  const at::Tensor naive = at::einsum("bhts,bshd->bthd", {scores.softmax(-1), vh});
  EXPECT_LE((fast - naive).abs().max().item<double>(), 1e-5);
}

TEST(Segments, StartAtBosAndEveryTrainSeqLenTokensOfADocument) {
  Config c = small_config();
  c.train_seq_len = 4;
  const at::Tensor x = tokens_with_docs({7, 7, 1, 7, 7, 7, 7, 7, 1, 7});
  const auto [seg, pos] = segments(x, c);
  EXPECT_TRUE(at::equal(seg[0], at::tensor(std::vector<int64_t>{1, 1, 2, 2, 2, 2, 3, 3, 4, 4})));
  EXPECT_TRUE(at::equal(pos[0], at::tensor(std::vector<int64_t>{0, 1, 0, 1, 2, 3, 0, 1, 0, 1})));
  c.doc_mask = 0;  // dense rows: BOS is an ordinary token
  EXPECT_TRUE(at::equal(segments(x, c).first[0], at::tensor(std::vector<int64_t>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3})));
}

// Each component takes only its part of the settings (a Config converts) and trusts it: from
// resolution to a model and its optimizer, validate() runs once.
TEST(ModelConfigPart, ValidationRunsOnceFromResolutionToTheOptimizer) {
  ConfigSources sources;
  sources.pinned_json = to_json(small_config()).dump();
  sources.pinned_source = "the test";
  const int64_t before = validate_calls();
  const Config config = resolve_config(sources);
  const ModelConfig& part = config;
  at::manual_seed(0);
  Model m(part, at::kCPU);
  train::Optimizer optimizer(m, config);
  EXPECT_EQ(validate_calls() - before, 1);
  EXPECT_EQ(to_json(config), to_json(small_config()));
  EXPECT_EQ(m.config().num_layers, small_config().num_layers);
}

}  // namespace
}  // namespace golf
