// SMAT's fast paths against the naive formulas (seed-techniques.md §1.4, §1.8): λS folded into q·k
// vs explicit additive logits, running-sum centrality vs the O(T²) masked row sums; S's range,
// λ's positivity, and the BigramHash ids.
#include <ATen/ATen.h>

#include <cmath>

#include "model/model.h"
#include "model/variants.h"
#include "tests/model/variants/naive.h"
#include "tests/test_util.h"

namespace golf {
namespace {

Config seg_config(int64_t train_seq_len) {
  Config c;
  c.train_seq_len = train_seq_len;
  return c;
}

at::Tensor tokens_with_bos(int64_t B, int64_t T) {
  at::Tensor tokens = at::randint(4, 100, {B, T}, at::kLong);
  tokens[0][9] = 1, tokens[0][40] = 1;
  if (B > 1) tokens[1][1] = 1, tokens[1][30] = 1;
  return tokens;
}

at::Tensor unit_rows(const at::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-6); }

// z = q·k/√Dh + λ û_i·û_j, explicit (B, H, T, T), masked to same segment and causal.
at::Tensor naive_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& uhat,
                           double lambda, const at::Tensor& seg) {
  const int64_t T = q.size(1), H = q.size(2), Hkv = k.size(2), Dh = q.size(3);
  const at::Tensor kh = k.repeat_interleave(H / Hkv, 2), vh = v.repeat_interleave(H / Hkv, 2);
  at::Tensor scores = at::einsum("bthd,bshd->bhts", {q, kh}) / std::sqrt(double(Dh));
  scores = scores + lambda * at::matmul(uhat, uhat.transpose(1, 2)).unsqueeze(1);
  const at::Tensor allowed = (seg.unsqueeze(2) == seg.unsqueeze(1)).logical_and(at::ones({T, T}, at::kBool).tril());
  scores = scores.masked_fill(allowed.logical_not().unsqueeze(1), -INFINITY);
  return at::einsum("bhts,bshd->bthd", {scores.softmax(-1), vh});
}

TEST(SmatFastPath, FoldedLogitsEqualTheExplicitAdditiveBias) {
  at::manual_seed(21);
  const int64_t B = 2, T = 53, H = 4, Hkv = 2, Dh = 8;
  double worst = 0;
  for (const int64_t ds : {4, 16}) {
    for (const int64_t W : {16, 64}) {  // blocked path (T > W) and single-block path
      const at::Tensor q = at::randn({B, T, H, Dh}), k = at::randn({B, T, Hkv, Dh}), v = at::randn({B, T, Hkv, Dh});
      const at::Tensor uhat = unit_rows(at::randn({B, T, ds}));
      const double lambda = 1.7;
      const at::Tensor seg = segments(tokens_with_bos(B, T), seg_config(W)).first;
      const auto [qf, kf] = variants::smat_fold(q, k, uhat, at::full({1}, lambda));
      ASSERT_EQ(qf.size(-1), Dh + ds);
      const at::Tensor vf = at::constant_pad_nd(v, {0, ds});
      const at::Tensor fast = segment_attention(qf, kf, vf, seg, W, 1.0 / std::sqrt(double(Dh))).narrow(-1, 0, Dh);
      const at::Tensor naive = naive_attention(q, k, v, uhat, lambda, seg);
      const double err = (fast - naive).abs().max().item<double>();
      worst = std::max(worst, err);
      EXPECT_LE(err, 1e-5) << "d_s " << ds << " W " << W;
      // The bias matters: without it the outputs differ (the test can fail).
      EXPECT_GT((naive_attention(q, k, v, uhat, 0.0, seg) - naive).abs().max().item<double>(), 1e-3);
      // The default scale (1/√(Dh+d_s)) would be wrong.
      const at::Tensor wrong = segment_attention(qf, kf, vf, seg, W).narrow(-1, 0, Dh);
      EXPECT_GT((wrong - naive).abs().max().item<double>(), 1e-3);
    }
  }
  RecordProperty("max_abs_diff_fold_vs_explicit", std::to_string(worst));
  std::printf("max |fold - explicit| = %.3g\n", worst);
}

TEST(SmatFastPath, RunningSumCentralityEqualsTheQuadraticDefinition) {
  at::manual_seed(22);
  const int64_t B = 2, T = 70;
  double worst = 0;
  for (const char* mode : {"seq", "count"}) {
    for (const int64_t ds : {4, 16}) {
      Config c = seg_config(24);  // documents longer than a segment are chopped
      c.smat_centrality = mode;
      const auto [seg, pos] = segments(tokens_with_bos(B, T), c);
      const at::Tensor uhat = unit_rows(at::randn({B, T, ds}));
      const at::Tensor fast = variants::smat_centrality(uhat, pos, c);
      const at::Tensor naive = variants::smat_centrality_naive(uhat, seg, pos, c);
      ASSERT_EQ(fast.sizes(), (std::vector<int64_t>{B, T}));
      const double err = (fast - naive).abs().max().item<double>();
      worst = std::max(worst, err);
      EXPECT_LE(err, 1e-6) << mode << " d_s " << ds;
    }
  }
  std::printf("max |running-sum c - O(T^2) c| = %.3g\n", worst);
}

TEST(SmatFastPath, NaiveCentralityIsItselfRightOnAHandExample) {
  // Two segments: [a, b] then [a]; û rows a = (1, 0), b = (0, 1). count mode: c = [1, 1/2, 1].
  Config c = seg_config(16);
  c.smat_centrality = "count";
  const at::Tensor tokens = at::tensor(std::vector<int64_t>{1, 7, 1}, at::kLong).unsqueeze(0);
  const auto [seg, pos] = segments(tokens, c);
  const at::Tensor uhat = at::tensor(std::vector<float>{1, 0, 0, 1, 1, 0}).view({1, 3, 2});
  const at::Tensor expected = at::tensor(std::vector<float>{1, 0.5, 1}).view({1, 3});
  EXPECT_TRUE(at::allclose(variants::smat_centrality_naive(uhat, seg, pos, c), expected));
  EXPECT_TRUE(at::allclose(variants::smat_centrality(uhat, pos, c), expected));
  c.smat_centrality = "seq";  // n = TRAIN_SEQ_LEN = 16
  EXPECT_TRUE(at::allclose(variants::smat_centrality(uhat, pos, c), at::tensor(std::vector<float>{1, 1, 1}).view({1, 3}) / 16));
}

TEST(SmatFastPath, SeqModeIsCountModeRescaledByPositionOverTrainSeqLen) {
  at::manual_seed(23);
  Config c = seg_config(32);
  const auto [seg, pos] = segments(tokens_with_bos(1, 50), c);
  const at::Tensor uhat = unit_rows(at::randn({1, 50, 8}));
  c.smat_centrality = "count";
  const at::Tensor count = variants::smat_centrality(uhat, pos, c);
  c.smat_centrality = "seq";
  const at::Tensor seq = variants::smat_centrality(uhat, pos, c);
  EXPECT_TRUE(at::allclose(seq * 32, count * (pos + 1).to(at::kFloat), 1e-5, 1e-6));
}

TEST(SmatS, IsSymmetricWithUnitDiagonalAndBoundedByOne) {
  at::manual_seed(24);
  const at::Tensor h = at::randn({2, 30, 48}), ws = at::randn({16, 48});
  at::Tensor u = variants::smat_unit(h, ws);
  u.select(1, 3).zero_();  // a zero projection stays finite (ε = 1e-6)
  const at::Tensor S = at::matmul(u, u.transpose(1, 2));
  EXPECT_TRUE(at::isfinite(S).all().item<bool>());
  EXPECT_TRUE(at::allclose(S, S.transpose(1, 2)));
  const at::Tensor diag = S.diagonal(0, 1, 2);
  EXPECT_LE((diag.narrow(1, 0, 3) - 1).abs().max().item<double>(), 1e-6);
  EXPECT_LE(S.abs().max().item<double>(), 1 + 1e-6);
}

TEST(SmatLambda, SoftplusIsPositiveOverTheRawRange) {
  const at::Tensor raw = at::linspace(-20, 20, 401);
  EXPECT_TRUE((at::softplus(raw) > 0).all().item<bool>());
  EXPECT_NEAR(at::softplus(at::zeros({1})).item<double>(), std::log(2.0), 1e-7);
}

TEST(SmatRandomS, IsSeededPerLayerAndFixed) {
  const at::Tensor a = variants::smat_random_projection(8, 32, 0), b = variants::smat_random_projection(8, 32, 0);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, variants::smat_random_projection(8, 32, 1)));
}

TEST(BigramHash, IdsFollowTheRecordHashWithReservedStarts) {
  const at::Tensor tokens = at::tensor(std::vector<int64_t>{5, 9, 1, 9, 59138}, at::kLong).unsqueeze(0);
  const at::Tensor ids = variants::bigram_hash_ids(tokens, 4096, 1);
  auto h = [](int64_t cur, int64_t prev) {  // the records' int32 arithmetic
    return static_cast<int64_t>(((int32_t)(36313 * (int32_t)cur) ^ (int32_t)(27191 * (int32_t)prev)) % 4095);
  };
  EXPECT_EQ(ids[0][0].item<int64_t>(), 4095);  // t = 0
  EXPECT_EQ(ids[0][1].item<int64_t>(), h(9, 5));
  EXPECT_EQ(ids[0][2].item<int64_t>(), 4095);  // BOS: never hashes the previous document's last token
  EXPECT_EQ(ids[0][3].item<int64_t>(), h(9, 1));
  EXPECT_EQ(ids[0][4].item<int64_t>(), h(59138, 9));  // the largest id where int32 does not overflow
  EXPECT_TRUE((ids >= 0).all().item<bool>() && (ids < 4096).all().item<bool>());
}

}  // namespace
}  // namespace golf
