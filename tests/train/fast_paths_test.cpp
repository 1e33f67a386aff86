// The model's fast paths (model/fast_paths.h) against its plain paths on the CPU: the same live
// model run once with plain_paths() and once with each fast path (and all together) must give the
// same loss, logits and every parameter gradient, with and without recurrence; the varlen
// attention glue must keep causality and document isolation exactly as the masked reference does.
// With cu_seqlens given from the host, forward, backward, validation and the optimizer step read
// nothing back to the host (tests/host_reads.h; on the card: sync debug mode, FastPathsStep).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/cuda.h>

#include <algorithm>

#include "model/fast_paths.h"
#include "model/model.h"
#include "core/shard.h"
#include "model/varlen.h"
#include "tests/host_reads.h"
#include "tests/live_model.h"
#include "tests/model/invariants.h"
#include "tests/test_util.h"
#include "tests/train/fast_path_setup.h"
#include "train/optim.h"
#include "scoring/validation.h"

namespace golf {
namespace {

using test::live_model;

struct Result {
  double loss;
  at::Tensor logits;
  std::map<std::string, at::Tensor> grads;
};

Result run(const Config& c, const FastPaths& f, const at::Tensor& x, bool looping, bool precomputed_cu = false) {
  Model m = test::live_model_with(c, f);
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
    const std::string loop = " looping " + std::to_string(looping);
    using test::plain_with;
    expect_same(run(c, plain_with(&FastPaths::fused_ops, true), x, looping), plain, "fused_ops" + loop);
    expect_same(run(c, plain_with(&FastPaths::bank_unbind, true), x, looping), plain, "bank_unbind" + loop);
    expect_same(run(c, plain_with(&FastPaths::attn, AttnBackend::varlen_ref), x, looping), plain, "varlen_ref" + loop);
    expect_same(run(c, plain_with(&FastPaths::fused_qk, true), x, looping), plain, "fused_qk" + loop);
    expect_same(run(c, plain_with(&FastPaths::fused_mix, true), x, looping), plain, "fused_mix" + loop);
    FastPaths f = plain_paths();
    f.fused_qk = f.fused_mix = true;
    f.attn = AttnBackend::varlen_ref;
    f.fused_ops = f.bank_unbind = true;
    expect_same(run(c, f, x, looping), plain, "all looping " + std::to_string(looping));
    expect_same(run(c, f, x, looping, /*precomputed_cu=*/true), plain, "all, cu_seqlens given");
  }
}

TEST(FastPathsModel, ForwardAndBackwardReadNothingBackToTheHost) {
  // What CUDA graph capture needs (issue 13): with cu_seqlens given from the host rows, as
  // golf-train, validation, calibration and golf-eval pass them, the forward and backward read no
  // device value to the host: no .item(), no data-dependent shape (nonzero), no .cpu() — the max
  // segment length is the static min(T, TRAIN_SEQ_LEN). The CPU autograd engine runs the backward
  // on this thread, so the recorder sees it too. Every fast path on, the record stack's parts on
  // (SmearGate, BigramHash, value residual, XSA, AttnOutGate, two lanes, recurrence).
  Config c = test::small_model_config();
  c.bigram_hash = 1, c.bigram_buckets = 64, c.bigram_dim = 16, c.value_residual = 1;
  const at::Tensor x = batch();
  const at::Tensor tokens = x.narrow(1, 0, x.size(1) - 1), targets = x.narrow(1, 1, x.size(1) - 1);
  for (const AttnBackend attn : {AttnBackend::sdpa, AttnBackend::varlen_ref})
    for (const bool looping : {false, true}) {
      FastPaths f = plain_paths();
      f.attn = attn;
      f.fused_ops = f.bank_unbind = f.fused_qk = f.fused_mix = true;
      Model m = test::live_model_with(c, f);
      ForwardOptions forward;
      forward.cu_seqlens = varlen_segments(tokens, c).cu_seqlens;  // the loader's side, before the step
      test::HostReads reads;
      m.loss(tokens, targets, looping, forward).backward();
      const std::vector<std::string> seen = reads.stop();
      EXPECT_TRUE(seen.empty()) << attn_backend_name(attn) << " looping " << looping << ": first read " << seen.front();
    }
  // The recorder sees a read: without cu_seqlens the varlen forward derives them from a host copy
  // of the tokens (the fallback the callers above avoid).
  Model m = test::live_model_with(c, test::plain_with(&FastPaths::attn, AttnBackend::varlen_ref));
  test::HostReads reads;
  m.loss(tokens, targets, false);
  EXPECT_FALSE(reads.stop().empty());
}

TEST(FastPathsStep, TheTrainingStepDoesNotSyncOnGpu) {
  // The GPU side of the two host-read tests above and tests/train/optim_fast_test.cpp: one
  // golf-train step as the trainer runs it with the defaults (varlen flash, fused ops, bank unbind,
  // foreach optimizer, fused QK on) under PyTorch's sync debug mode "error", which throws at any
  // blocking device→host copy, .item() or stream synchronisation. Batch and cu_seqlens come from
  // pinned memory without blocking, as train/trainer.cpp copies them.
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  Config c = test::small_model_config();
  c.model_dim = 64;  // head dim 16: the flash kernels need a multiple of 8
  c.grad_clip_norm = 0.3;
  FastPaths f = fast_paths_from_env(true);
  f.fused_qk = true;
  const auto setup = test::train_setup(c, f, at::kCUDA);
  auto& [m, opt, ema] = *setup;
  const at::Tensor x = batch();
  auto step = [&](int64_t k) {
    const at::Tensor host = x.pin_memory();
    ForwardOptions forward;
    forward.cu_seqlens = varlen_segments(host.narrow(1, 0, x.size(1) - 1), c).cu_seqlens.pin_memory();
    const at::Tensor tokens = host.to(at::kCUDA, /*non_blocking=*/true);
    const int64_t T = x.size(1) - 1;
    opt.zero_grad();
    m.loss(tokens.narrow(1, 0, T), tokens.narrow(1, 1, T), k > 0, forward).backward();
    opt.clip_gradients_async();
    opt.step(k, k == 0 ? 1.0 : 0.5);
    ema.update(m);
  };
  step(0);  // lazy initialisation (cuBLAS handles, kernels) outside the check
  torch::cuda::synchronize();
  struct DebugMode {  // sync debug "error" for this scope only
    DebugMode() { c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR); }
    ~DebugMode() { c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED); }
  };
  {
    DebugMode error_on_sync;
    EXPECT_NO_THROW(step(1));
    EXPECT_NO_THROW(step(2));
  }
  torch::cuda::synchronize();
  for (const auto& name : m.names()) EXPECT_TRUE(m.param(name).isfinite().all().item<bool>()) << name;
}

TEST(FastPathsValidation, NoSyncReadsTheLossOnceAndGivesTheSameBitsAsAReadPerBatch) {
  // golf-train's validation with varlen attention: segment bounds from the host rows; with
  // GOLF_NO_SYNC the scores stay on the device and are read back once, without it once per
  // batch. Same additions in the same order: the loss and bpb are bit-identical. (The read is the
  // scores' copy to the host, aten::to(CPU), since validation is golf-eval's plain protocol; it
  // was one aten::item of a device sum before, and only aten::item was counted.)
  test::TempDir dir;
  at::manual_seed(5);
  at::Tensor ids = at::randint(2, 8192, {5 * 16 + 1}, at::kInt);
  ids[0] = 1, ids[20] = 1, ids[47] = 1;  // documents
  std::vector<uint16_t> tokens(ids.data_ptr<int32_t>(), ids.data_ptr<int32_t>() + ids.numel());
  shard::write(dir / "fineweb_val_000000.bin", tokens);
  Config c = test::small_model_config();
  c.vocab_size = 8192;
  c.data_path = dir.path().string();
  c.tokenizer_path = test::challenge_tokenizer().string();
  c.val_batch_tokens = 32, c.grad_accum_steps = 1;  // 2 rows of 16 per batch: 3 batches for 5 rows
  const scoring::Validation validation(c);
  scoring::ValidationResult result[2];
  size_t items[2];
  for (const bool no_sync : {false, true}) {
    FastPaths f = plain_paths();
    f.attn = AttnBackend::varlen_ref;
    f.no_sync = no_sync;
    Model m = test::live_model_with(c, f);
    test::HostReads reads;
    result[no_sync] = validation.evaluate(m, true);
    const std::vector<std::string> seen = reads.stop();
    // The scores' reads (aten::nonzero is the segment bounds' search in the host rows, no device read).
    items[no_sync] = static_cast<size_t>(
        std::count_if(seen.begin(), seen.end(), [](const std::string& s) { return s != "aten::nonzero"; }));
  }
  EXPECT_EQ(result[1].loss, result[0].loss);
  EXPECT_EQ(result[1].bpb, result[0].bpb);
  EXPECT_EQ(result[1].predictions, 80);
  EXPECT_EQ(items[0], 3u) << "one read per batch";
  EXPECT_EQ(items[1], 1u) << "one read in all";
}

TEST(FastPathsModel, FusedMixCoversEveryMixAndGateVariant) {
  // GOLF_FUSED_MIX against the plain chains in each block shape and gate the ops serve: GPT-J
  // single-lane parallel blocks, sequential-only blocks, ungated skips, raw-input SmearGate without
  // the BOS mask, gated attention, the sparse gate and the head gate (alone and with XSA off on
  // early layers).
  const at::Tensor x = batch();
  auto check = [&](Config c, const std::string& what) {
    FastPaths f = plain_paths();
    f.fused_mix = true;
    for (const bool looping : {false, true})
      expect_same(run(c, f, x, looping), run(c, plain_paths(), x, looping), what + " looping " + std::to_string(looping));
  };
  Config c = test::small_model_config();
  c.parallel_mode = "gptj";
  c.skip_gates_enabled = 0;
  c.smear_input = "raw", c.smear_bos_mask = 0;
  check(c, "gptj, ungated skips, raw smear");
  c = test::small_model_config();
  c.parallel_mode = "none";
  c.xsa_last_n = 3;
  c.attn_out_gate_enabled = 0, c.gated_attention = 1, c.head_gate_enabled = 1;
  check(c, "sequential, gated attention + head gate, XSA on the last 3");
  c = test::small_model_config();
  c.attn_out_gate_enabled = 0, c.sparse_attn_gate_enabled = 1, c.sparse_attn_gate_init_std = 0.1;
  check(c, "sparse gate");
  c = test::small_model_config();
  c.attn_out_gate_enabled = 0, c.head_gate_enabled = 1, c.xsa_last_n = 2;
  check(c, "head gate alone");
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
  FastPaths f = plain_paths();
  f.attn = AttnBackend::varlen_ref;
  f.fused_ops = f.bank_unbind = f.fused_qk = f.fused_mix = true;
  return test::live_model_with(c, f);
}

TEST(FastPathsModel, VarlenChangingAFutureTokenLeavesEarlierLogitsUnchanged) {
  for (const int64_t doc_mask : {1, 0}) {
    Config c = test::small_model_config();
    c.doc_mask = doc_mask;
    test::expect_causal(varlen_model(c), "doc_mask " + std::to_string(doc_mask));
  }
}

TEST(FastPathsModel, VarlenDocumentScoresTheSameAloneAsAfterAnother) {
  test::expect_document_isolated(varlen_model(test::small_model_config()));
}

}  // namespace
}  // namespace golf
