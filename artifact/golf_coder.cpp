// artifact/golf_coder.cpp — golf's weight-code coder (model and stream: golf_coder.h). Encoder and
// decoder share every modelling step (Model below); only the range coder differs.
#include "artifact/golf_coder.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "artifact/binary_coder.h"
#include "artifact/row_distance.h"

namespace golf::artifact {

namespace {

using namespace binary_coder;

constexpr int kUnary = 20;                 // |q| > k coded in unary for k = 1..kUnary-1
constexpr int kGammaLength = kUnary + 1;   // nodes: "the gamma code has another bit"
constexpr int kGammaBits = kGammaLength + 8;  // nodes: the gamma code's bits by position
constexpr int kNodes = kGammaBits + 8;
constexpr int kColBuckets = 16, kRowBuckets = 12, kNeighbour = 3;

// Running means of |q| are kept ×16; these thresholds split them into log-spaced buckets.
constexpr std::array<int, kColBuckets - 1> kColThresholds = {4, 8, 12, 16, 20, 24, 28, 32, 38, 45, 53, 64, 80, 104, 144};
constexpr std::array<int, kRowBuckets - 1> kRowThresholds = {8, 16, 20, 24, 28, 32, 36, 42, 50, 64, 96};

// The running means stay in [0, 63·16]; a table per threshold list turns a mean into its bucket.
constexpr int kMeanLimit = 63 << 4;
template <size_t N>
std::array<uint8_t, kMeanLimit + 1> bucket_table(const std::array<int, N>& thresholds) {
  std::array<uint8_t, kMeanLimit + 1> table{};
  for (int v = 0; v <= kMeanLimit; ++v) {
    int b = 0;
    while (b < static_cast<int>(N) && v >= thresholds[static_cast<size_t>(b)]) ++b;
    table[static_cast<size_t>(v)] = static_cast<uint8_t>(b);
  }
  return table;
}
const auto kColBucket = bucket_table(kColThresholds);
const auto kRowBucket = bucket_table(kRowThresholds);

// Column statistics: a running mean whose rate falls as 1/n over a matrix's first rows, then
// stays at 1/kColWindow. A column's spread is a property of its input feature, stable down the
// rows: on the 35-step CPU-trained 11 × 512 weights windows 8/32/64 gave 15.736/15.688/15.674 MB
// (golf's group bytes, without the sign context) and, with it, 32/64/128 gave 15.619/15.603/
// 15.597 MB. (On 4-step near-init weights, whose zero-initialized projections drift down the
// rows, 32 is better than 128 by 0.3 %.)
constexpr int kColWindow = 128, kLocalRate = 4;  // local mean |q|: rate 2^-4
constexpr size_t kInputs = 5;                    // (slow, fast) per model, bias
constexpr int kSignNode = 1;
constexpr int32_t kInitialWeight = 1 << 14, kMaxWeight = 1 << 22;

// The column's running mean of q (×256), in signed buckets (bounds ±1/16, 3/16, 6/16, 12/16,
// 24/16 of a code): a column whose codes lean one way (the embedding's mean direction) makes the
// sign predictable (tok_emb: −3.5 % bytes on the trained weights).
constexpr int kSignBuckets = 11;
constexpr int kSignedLimit = 63 << 4;  // |mean q| ≤ 63 codes, ×16 after the shift below
const std::array<uint8_t, 2 * kSignedLimit + 1> kSignBucket = [] {
  constexpr std::array<int, kSignBuckets - 1> bounds = {-24, -12, -6, -3, -1, 1, 3, 6, 12, 24};  // ×16
  std::array<uint8_t, 2 * kSignedLimit + 1> table{};
  for (int v = -kSignedLimit; v <= kSignedLimit; ++v) {
    uint8_t b = 0;
    while (b < bounds.size() && v >= bounds[b]) ++b;
    table[static_cast<size_t>(v + kSignedLimit)] = b;
  }
  return table;
}();
size_t sign_bucket(int col_signed) { return kSignBucket[static_cast<size_t>((col_signed >> 4) + kSignedLimit)]; }

// A row with a reference row (format 2) is coded as its codes, not their difference from the
// reference: three more context models (C, D, E) see the reference row's code at the same column
// (and its own chain of references) — where the difference coding of format 1 saw only the
// difference — and the mixer's weight set is chosen by how closely this row has followed its
// reference so far (a running mean of |q − ref| in the row). This is, we think, what ZPAQ gets
// from the records' nearest-neighbour row order (the previous bytes of a transposed column are
// the neighbour rows' codes). On the 11 × 512 weights tok_emb went 1,654,503 → 1,600,776 bytes;
// without retuning, 8 × 384: 1,402,420 → 1,275,628 and 4 × 128 (long): 465,875 → 453,310.
// Step by step (an experimental build): codes with model C instead of differences −11,036; C's
// residual bucket −1,356; margin 400 → 0 −4,398; model D −13,317; mixer sets by residual bucket
// −13,236; residual rate 2^-4 → 2^-5 and D's clamp ±6 → ±8 −4,856; without an extra model for
// plain rows +612 (kept out: every other group's bytes stay as they were); margin 0 → 50 +552;
// model E (the chain of three references, × residual bucket) −6,723; C–E without fast counters +31.
// Tried and left out: an APM stage on (ref, p) −0.5 KB; the row's fit to the column means (α·mean,
// as a context) and a smoothed prototype along the reference chain, both worse than E.
// Format 3 changed model D: the reference's code × the code above (the column's previous value
// coded by this model: in a reordered matrix the previous row of the chain, another near row)
// instead of × the reference's own reference, which E sees too (tok_emb, reordered: 11 × 512
// −5.7 KB, 8 × 384 −3.4 KB, 4 × 128-long −1.8 KB; keeping both D's gained 0.8 KB more on 11 × 512
// for an eleventh mixer input).
constexpr int kRefHalf = 16;                           // model C: ref code clamped to ±16
constexpr int kRefRefHalf = 8;                         // model D: ref and above codes to ±8
constexpr int kResidualBuckets = 4;                    // mean |q − ref| < ½, < 1, < 2, ≥ 2 (×16 thresholds)
constexpr std::array<int, kResidualBuckets - 1> kResidualThresholds = {8, 16, 32};
constexpr int kResidualRate = 5;                       // its running mean's rate: 2^-5
constexpr size_t kRefCtx = (2 * kRefHalf + 1) * kResidualBuckets;
constexpr size_t kRefRefCtx = (2 * kRefRefHalf + 1) * (2 * kRefRefHalf + 1);
constexpr int kChainHalf = 5;                          // model E: ref, ref-of-ref, its ref to ±5
constexpr size_t kChainValues = 2 * kChainHalf + 2;    // none, or the clamped code
constexpr size_t kChainCtx = kChainValues * kChainValues * kChainValues * kResidualBuckets;
constexpr size_t kRefInputs = 10;                      // (slow, fast) of A, B and F; C, D, E; bias
constexpr int32_t kRefInitialWeight = 1 << 13;
// Format 3 adds to the referenced rows' model (tok_emb −0.5 … −1.5 %; see the format-3 comment at
// code_matrices): model F, the matrix's own column × node (its counters start afresh with each
// matrix: a column of the embedding is one feature, with its own lean and spread, which the
// bucketed running means of model A only approximate); and, for the magnitude decisions, the sign
// of the code (known by then) in the contexts of C, D, E and F — a reference code of +3 says |q| ≈ 3
// when q > 0 but |q| small when q < 0. Three slots per context: before the sign, positive, negative.
constexpr size_t kSignSlots = 3;

// Everything both sides predict with; `Coder` is Encoder or Decoder, and bit() returns the bit
// that was coded (the encoder's own, or the decoded one). Counter tables are laid out context-
// major, node-minor, so one code's decisions touch one short run of counters per model. A Model
// for referenced rows (`referenced`) mixes models C–F too; the plain one is format 1's model
// unchanged (a group without reference rows codes to the same size as in format 1 and 2; format
// 3's stream differs from theirs only by the per-matrix "reordered" decision, code_matrices).
template <bool kReferenced>
class Model {
 public:
  static constexpr size_t kModelInputs = kReferenced ? kRefInputs : kInputs;
  Model()
      : a_(kColBuckets * kNeighbour * kNodes), b_(kRowBuckets * kNeighbour * kNodes),
        sign_a_(kColBuckets * kNeighbour * kSignBuckets), sign_b_(kRowBuckets * kNeighbour),
        c_(kReferenced ? kSignSlots * kRefCtx * kNodes : 0), d_(kReferenced ? kSignSlots * kRefRefCtx * kNodes : 0),
        e_(kReferenced ? kSignSlots * kChainCtx * kNodes : 0),
        weights_(kNodes * (kReferenced ? kResidualBuckets : 1) * kModelInputs) {
    const int32_t initial = kReferenced ? kRefInitialWeight : kInitialWeight;
    for (size_t set = 0; set < weights_.size() / kModelInputs; ++set)
      for (size_t i = 0; i < kModelInputs; ++i) weights_[set * kModelInputs + i] = i + 1 < kModelInputs ? initial : 0;
  }

  // The context of the next code: column and local running means, left and above codes, the
  // column's running mean of q (signed).
  void set_context(int col_mean, int local_mean, int left, int above, int col_signed) {
    const size_t col = kColBucket[static_cast<size_t>(col_mean)], row = kRowBucket[static_cast<size_t>(local_mean)];
    const size_t l = static_cast<size_t>(std::min(std::abs(left), 2)), u = static_cast<size_t>(std::min(std::abs(above), 2));
    const size_t l_sign = left == 0 ? 0 : left > 0 ? 1 : 2, u_sign = above == 0 ? 0 : above > 0 ? 1 : 2;
    a_now_ = &a_[(col * kNeighbour + l) * kNodes];
    b_now_ = &b_[(row * kNeighbour + u) * kNodes];
    sign_a_now_ = &sign_a_[(col * kNeighbour + l_sign) * kSignBuckets + sign_bucket(col_signed)];
    sign_b_now_ = &sign_b_[row * kNeighbour + u_sign];
  }
  // Referenced rows only. A matrix's first referenced row starts model F afresh (cols columns).
  void begin_matrix(size_t cols) {
    if constexpr (kReferenced) f_.assign(cols * kSignSlots * kNodes, Counter{});
  }
  // The reference's code at column `col`, the code above (the column's previous value coded by
  // this model), the reference's own reference's code and that row's reference's (or none), and
  // the row's running mean |q − ref| (×16).
  void set_reference(size_t col, int ref, int above, const int* ref_ref, const int* ref3, int residual_mean) {
    f_now_ = &f_[col * kSignSlots * kNodes];
    size_t residual = 0;
    while (residual < kResidualThresholds.size() && residual_mean >= kResidualThresholds[residual]) ++residual;
    const auto r = static_cast<size_t>(std::clamp(ref, -kRefHalf, kRefHalf) + kRefHalf);
    const auto r8 = static_cast<size_t>(std::clamp(ref, -kRefRefHalf, kRefRefHalf) + kRefRefHalf);
    const auto a8 = static_cast<size_t>(std::clamp(above, -kRefRefHalf, kRefRefHalf) + kRefRefHalf);
    c_now_ = &c_[(r * kResidualBuckets + residual) * kNodes];
    d_now_ = &d_[(a8 * (2 * kRefRefHalf + 1) + r8) * kNodes];
    const auto chain = [](const int* v) { return v ? static_cast<size_t>(std::clamp(*v, -kChainHalf, kChainHalf) + kChainHalf + 1) : 0; };
    e_now_ = &e_[(((chain(&ref) * kChainValues + chain(ref_ref)) * kChainValues + chain(ref3)) * kResidualBuckets + residual) * kNodes];
    weight_set_ = residual;
  }
  // Referenced rows only: the code's sign is known; C–F's magnitude decisions use its slot.
  void set_sign(bool negative) {
    if constexpr (kReferenced) {
      const size_t slot = negative ? 2 : 1;
      c_now_ += slot * kRefCtx * kNodes, d_now_ += slot * kRefRefCtx * kNodes, e_now_ += slot * kChainCtx * kNodes;
      f_now_ += slot * kNodes;
    }
  }

  template <class Coder>
  int bit(Coder& coder, int node, int bit) {
    Counter& ca = node == kSignNode ? *sign_a_now_ : a_now_[node];
    Counter& cb = node == kSignNode ? *sign_b_now_ : b_now_[node];
    int x[kModelInputs];  // sized per model: the plain model's bit() must not pay for C–F's inputs
    x[0] = kStretch[ca.slow >> 4], x[1] = kStretch[ca.fast >> 4], x[2] = kStretch[cb.slow >> 4], x[3] = kStretch[cb.fast >> 4];
    if constexpr (kReferenced) {
      x[4] = kStretch[c_now_[node].p >> 4], x[5] = kStretch[d_now_[node].p >> 4], x[6] = kStretch[e_now_[node].p >> 4];
      x[7] = kStretch[f_now_[node].slow >> 4], x[8] = kStretch[f_now_[node].fast >> 4];
    }
    x[kModelInputs - 1] = 256;
    int32_t* w = &weights_[(weight_set_ * kNodes + static_cast<size_t>(node)) * kModelInputs];
    int64_t dot = 0;
    for (size_t i = 0; i < kModelInputs; ++i) dot += int64_t{w[i]} * x[i];
    const int p = kSquash[static_cast<size_t>(std::clamp<int64_t>(dot >> 16, -2047, 2047) + 2047)];
    const int coded = coder.code(bit, p << 4);
    // Mixer step 2^-13: slow enough that on i.i.d. codes the mix costs ≤ 0.1 % over the entropy.
    const int err = (coded << 12) - p;
    for (size_t i = 0; i < kModelInputs; ++i) w[i] = std::clamp(w[i] + ((x[i] * err + (1 << 12)) >> 13), -kMaxWeight, kMaxWeight);
    ca.update(coded);
    cb.update(coded);
    if constexpr (kReferenced) c_now_[node].update(coded), d_now_[node].update(coded), e_now_[node].update(coded), f_now_[node].update(coded);
    return coded;
  }

 private:
  std::vector<Counter> a_, b_, sign_a_, sign_b_, f_;
  std::vector<SlowCounter> c_, d_, e_;
  std::vector<int32_t> weights_;  // one mixer per decision node (× residual bucket when referenced)
  Counter *a_now_ = nullptr, *b_now_ = nullptr, *sign_a_now_ = nullptr, *sign_b_now_ = nullptr, *f_now_ = nullptr;
  SlowCounter *c_now_ = nullptr, *d_now_ = nullptr, *e_now_ = nullptr;
  size_t weight_set_ = 0;
};

// A value (a code; the decoder may meet |x| up to 274 in a corrupt stream, refused later) as binary
// decisions: zero?, sign, |x| in unary to kUnary, then Elias gamma of |x| − kUnary + 1.
template <class M, class Coder>
int code_value(M& m, Coder& coder, int x) {
  if (m.bit(coder, 0, x == 0)) return 0;
  const bool negative = m.bit(coder, kSignNode, x < 0);
  m.set_sign(negative);
  const int mag_in = std::abs(x);
  int mag = 1;
  while (mag < kUnary && m.bit(coder, 1 + mag, mag_in > mag)) ++mag;
  if (mag == kUnary) {
    const auto value_in = static_cast<uint32_t>(mag_in - kUnary + 1);  // ≥ 1 when encoding
    const int length_in = std::bit_width(value_in);
    int length = 1;
    while (length < 8 && m.bit(coder, kGammaLength + length - 1, length < length_in)) ++length;
    uint32_t value = 1;
    for (int i = length - 2; i >= 0; --i) value = (value << 1) | static_cast<uint32_t>(m.bit(coder, kGammaBits + i, (value_in >> i) & 1));
    mag = static_cast<int>(value) + kUnary - 1;
  }
  return negative ? -mag : mag;
}

// The running statistics one Model predicts from, kept per matrix.
struct Stats {
  std::vector<int> col_mean, col_signed, above;  // ×256: mean |x|, mean x per column; the column's last x
  int local_mean = 2 << 4;                       // ×16: mean |x| of the last ~16 values
  int residual_mean = 1 << 4;                    // ×16: referenced rows' running mean |q − ref|
  int rows = 0;                                  // rows seen (the column rate falls as 1/rows)
  explicit Stats(size_t cols) : col_mean(cols, 2 << 8), col_signed(cols, 0), above(cols, 0) {}
};

const std::array<int32_t, kColWindow + 1> kColRate = [] {  // 65536 / n
  std::array<int32_t, kColWindow + 1> r{};
  for (int n = 1; n <= kColWindow; ++n) r[static_cast<size_t>(n)] = 65536 / n;
  return r;
}();

// Codes one row's codes through `m`: x[c] is the code to encode (ignored when decoding); returns
// them (the decoded ones when decoding). `ref` (and `ref_ref`, which may be null) are the row's
// reference row, that row's own reference and its reference in turn, for a referenced Model;
// else null.
template <class M, class Coder>
void code_row(M& m, Stats& st, Coder& coder, int* x, size_t cols, const int8_t* ref, const int8_t* ref_ref, const int8_t* ref3) {
  const int32_t col_rate = kColRate[static_cast<size_t>(std::min(st.rows + 1, kColWindow))];
  for (size_t c = 0; c < cols; ++c) {
    m.set_context(st.col_mean[c] >> 4, st.local_mean, c ? x[c - 1] : 0, st.above[c], st.col_signed[c]);
    if constexpr (M::kModelInputs == kRefInputs) {
      const int ref_ref_code = ref_ref ? ref_ref[c] : 0, ref3_code = ref3 ? ref3[c] : 0;
      m.set_reference(c, ref[c], st.above[c], ref_ref ? &ref_ref_code : nullptr, ref3 ? &ref3_code : nullptr, st.residual_mean);
    }
    const int v = code_value(m, coder, x[c]);
    x[c] = v;
    const int mag = std::min(std::abs(v), 63);
    st.col_mean[c] += static_cast<int>((int64_t{(mag << 8) - st.col_mean[c]} * col_rate) >> 16);
    st.col_signed[c] += static_cast<int>((int64_t{(std::clamp(v, -63, 63) << 8) - st.col_signed[c]} * col_rate) >> 16);
    st.local_mean += ((mag << 4) - st.local_mean) >> kLocalRate;
    if (ref) st.residual_mean += ((std::min(std::abs(v - ref[c]), 63) << 4) - st.residual_mean) >> kResidualRate;
    st.above[c] = v;
  }
  ++st.rows;
}

// Per matrix, what the encoder chose; the decoder reads the same from the stream.
struct MatrixPlan {
  bool reordered = false;       // rows coded in `order`, every row after the first referenced
  std::vector<uint32_t> order;  // reordered: order[i] = the matrix row coded i-th
  std::vector<int32_t> refs;    // per coded row: the coded position of its reference, -1 none
};

// The encoder's choice of reference rows for a matrix coded in its own order (the decoder only
// reads it): for each row, the earlier row nearest in L1 (ties: the latest), kept when the
// estimated saving, cols · log2(Σ|q| / L1 distance) bits (codes cost about log2 of their mean
// magnitude), exceeds the reference's own cost, bit_width(r − 1) bits, by kReferenceMargin bits.
// The estimate is optimistic for rows that are only loosely alike (their differences code worse
// than it says): on the 35-step 11 × 512 weights tok_emb (the only group where any row gets a
// reference) took 1,707,089 / 1,693,505 / 1,670,242 / 1,654,958 / 1,653,647 / 1,656,402 bytes
// with margins 16 / 64 / 160 / 320 / 500 / 800 bits (no references: 1,868,383), in format 1
// (difference rows). Format 2 codes a referenced row with its reference as a context, which costs
// little when the rows are only loosely alike: on the 11 × 512 tok_emb margins 0 / 50 / 100 / 200
// gave 1,606,916 / 1,607,468 / 1,609,352 / 1,614,703 bytes (an experimental build of this model);
// at 0 the "other" group (small matrices) took references and grew by 87 bytes, at 50 it takes
// none (its bytes stay format 1's).
constexpr double kReferenceMargin = 50;
MatrixPlan choose_references(const int8_t* q, size_t rows, size_t cols) {
  MatrixPlan plan;
  plan.refs.assign(rows, -1);
  std::vector<uint8_t> u(rows * cols);  // codes + 128: |a − b| unchanged, unsigned for the SAD
  for (size_t i = 0; i < u.size(); ++i) u[i] = static_cast<uint8_t>(q[i] + 128);
  const std::vector<uint8_t> zero(cols, 128);
  for (size_t r = 1; r < rows; ++r) {
    const uint8_t* row = u.data() + r * cols;
    const uint32_t own = l1_distance(row, zero.data(), cols);
    uint32_t best = std::numeric_limits<uint32_t>::max();
    size_t best_j = 0;
    for (size_t j = r; j-- > 0;) {
      const uint32_t d = l1_distance(row, u.data() + j * cols, cols);
      if (d < best) best = d, best_j = j;
    }
    const double saving = static_cast<double>(cols) * std::log2((own + 1.0) / (best + 1.0));
    if (saving > std::bit_width(r - 1) + kReferenceMargin) plan.refs[r] = static_cast<int32_t>(best_j);
  }
  return plan;
}

// Format 3's reordered matrix (the encoder's side): the records' greedy nearest-neighbour chain
// (start at row 0, then repeatedly the unused row nearest in L1, ties: the lowest index; as
// grouped.cpp's nearest_neighbour_order), and every row's reference the nearest row placed
// before it (ties: the latest), found in the same pass: each step's distances from the row just
// placed to every unused row update those rows' nearest-so-far.
MatrixPlan chain_references(const int8_t* q, size_t rows, size_t cols) {
  MatrixPlan plan;
  plan.reordered = true;
  std::vector<uint8_t> u(rows * cols);
  for (size_t i = 0; i < u.size(); ++i) u[i] = static_cast<uint8_t>(q[i] + 128);
  std::vector<uint32_t> left(rows - 1), nearest(rows, std::numeric_limits<uint32_t>::max());
  std::vector<int32_t> nearest_at(rows, -1);  // the coded position of each unused row's nearest placed row
  for (size_t r = 1; r < rows; ++r) left[r - 1] = static_cast<uint32_t>(r);
  plan.order.push_back(0);
  plan.refs.push_back(-1);
  while (!left.empty()) {
    const auto position = static_cast<int32_t>(plan.order.size() - 1);
    const uint8_t* current = u.data() + size_t{plan.order.back()} * cols;
    uint32_t best = std::numeric_limits<uint32_t>::max();
    size_t best_i = 0;
    for (size_t i = 0; i < left.size(); ++i) {
      const uint32_t d = l1_distance(current, u.data() + size_t{left[i]} * cols, cols);
      if (d <= nearest[left[i]]) nearest[left[i]] = d, nearest_at[left[i]] = position;
      if (d < best) best = d, best_i = i;
    }
    plan.order.push_back(left[best_i]);
    plan.refs.push_back(nearest_at[left[best_i]]);
    left.erase(left.begin() + static_cast<std::ptrdiff_t>(best_i));
  }
  return plan;
}

// k in [0, n) at exactly log2(n) bits (to 16-bit precision): a binary search whose every
// decision has the probability of the upper part. A decoder always lands inside [0, n).
template <class Coder>
uint32_t code_uniform(Coder& coder, uint32_t k, uint32_t n) {
  uint32_t lo = 0, hi = n;
  while (hi - lo > 1) {
    const uint32_t mid = lo + (hi - lo) / 2;
    const auto p16 = static_cast<int>((uint64_t{hi - mid} << 16) / (hi - lo));  // in [1/3, 1/2] × 65536
    if (coder.code(k >= mid, p16)) lo = mid;
    else hi = mid;
  }
  return lo;
}

// A reordered matrix's reference distance back (r − j − 1 ≥ 0), most often 0 (the previous row of
// the chain): Elias gamma of back + 1, the length in unary and the first bit after the leading 1
// through adaptive counters by length, the rest at ½. The length stops at bit_width(r), which
// back + 1 ≤ r never exceeds; a longer value read from a corrupt stream is refused by the caller.
struct DistanceModel {
  static constexpr int kLengths = 33;
  std::array<SlowCounter, kLengths> longer{}, top{};
  template <class Coder>
  uint32_t code(Coder& coder, uint32_t back, size_t r) {
    const int max_length = std::bit_width(r), length_in = std::bit_width(back + 1);
    int length = 1;
    for (; length < max_length; ++length) {
      SlowCounter& c = longer[static_cast<size_t>(length)];
      const int bit = coder.code(length < length_in, std::clamp<int>(c.p, 64, 65536 - 64));
      c.update(bit);
      if (!bit) break;
    }
    uint32_t value = 1;
    for (int i = length - 2; i >= 0; --i) {
      const int in = static_cast<int>(((back + 1) >> i) & 1);
      int bit;
      if (i == length - 2) {
        SlowCounter& c = top[static_cast<size_t>(length)];
        bit = coder.code(in, std::clamp<int>(c.p, 64, 65536 - 64));
        c.update(bit);
      } else {
        bit = coder.code(in, 32768);
      }
      value = (value << 1) | static_cast<uint32_t>(bit);
    }
    return value - 1;
  }
};

// Format 3: a matrix may be coded with its rows reordered (the records' nearest-neighbour chain),
// the order stored, and every row after the first referenced, the distance back coded by
// DistanceModel. One decision per matrix says which, at a fixed probability of 1/4096 for
// "reordered" (12 bits when used, nothing measurable when not). The encoder tries it on the
// matrices where the margin test above finds any reference (in practice only tok_emb) and keeps
// whichever whole stream is smaller. Why it pays: in chain order a row's neighbours in the code
// stream are its neighbours in L1, so every adaptive statistic (column means, the value above,
// the mixer, counters C–F) follows the local cluster of rows, and every row gets a close
// reference, at a cost of log2(rows!) bits for the order (11,836 bytes for 8,192 rows) plus
// ~1 byte per row for the reference. On tok_emb (a format-2 experimental build, golf's bytes):
// 11 × 512 1,600,776 → model F and the signed contexts 1,578,505 → reordered 1,526,632 (order
// included); 8 × 384 1,275,628 → 1,250,214 → 1,215,805; 4 × 128-long 453,310 → 450,270 →
// 435,769. Reordering the rows of mlp.fc made it larger (8 × 384: 2,068,723 → 2,077,136), as
// did model F on rows without a reference (mlp.fc +0.03 %), so other groups keep format 2's model.
constexpr int kReorderedP16 = 16;

// Codes every matrix of `shapes` (codes concatenated, each matrix's rows in its coded order: the
// encoder permutes reordered matrices before, the decoder restores them after). Per matrix: the
// "reordered" decision, and for a reordered matrix its order (each row as its index among the
// rows not yet placed, uniform). Per row of a matrix in natural order: "has a reference row?"
// (one adaptive counter per previous row's answer), then the reference's distance back (r − j − 1
// in bit_width(r − 1) even bits); of a reordered one: the distance back (DistanceModel). Then the
// row's codes: through `plain`, or, with a reference, through `referenced` (its own model and
// statistics, the reference row and its chain of references as context). Encoding, `plans` holds
// the choices; decoding, it receives them.
template <class Coder>
void code_matrices(Coder& coder, const std::vector<std::pair<uint32_t, uint32_t>>& shapes, int8_t* codes, std::vector<MatrixPlan>& plans,
                   bool encoding, const std::string* source) {
  Model<false> plain;
  Model<true> referenced;
  Counter has_ref[2];
  DistanceModel distance;
  size_t base = 0;
  std::vector<int> x;
  std::vector<uint32_t> left;
  plans.resize(shapes.size());
  for (size_t mi = 0; mi < shapes.size(); ++mi) {
    const auto [rows, cols] = shapes[mi];
    MatrixPlan& plan = plans[mi];
    Stats plain_stats(cols), referenced_stats(cols);
    bool referenced_started = false;
    x.assign(cols, 0);
    plan.reordered = coder.code(plan.reordered, kReorderedP16);
    if (plan.reordered) {
      left.resize(rows);
      for (uint32_t r = 0; r < rows; ++r) left[r] = r;
      plan.order.resize(rows);
      for (size_t i = 0; i < rows; ++i) {
        coder.check_not_past_end();
        const auto at = encoding ? static_cast<uint32_t>(std::lower_bound(left.begin(), left.end(), plan.order[i]) - left.begin()) : 0;
        const uint32_t k = code_uniform(coder, at, static_cast<uint32_t>(left.size()));
        plan.order[i] = left[k];
        left.erase(left.begin() + k);
      }
    }
    plan.refs.resize(rows);
    int previous_had_ref = 0;
    for (size_t r = 0; r < rows; ++r) {
      coder.check_not_past_end();
      int8_t* row = codes + base + r * cols;
      int32_t ref = -1;
      const auto back_in = [&] { return static_cast<uint32_t>(r - 1 - static_cast<size_t>(plan.refs[r])); };
      if (r > 0 && plan.reordered) {
        const uint32_t got = distance.code(coder, encoding ? back_in() : 0, r);
        if (got > r - 1) fail("{}: corrupt golf code stream (row {} refers {} rows back)", *source, r, got + 1);
        ref = static_cast<int32_t>(r - 1 - got);
      } else if (r > 0) {
        Counter& flag = has_ref[previous_had_ref];
        const int p = std::clamp<int>(flag.slow, 64, 65536 - 64);
        const int bit = coder.code(encoding && plan.refs[r] >= 0, p);
        flag.update(bit);
        previous_had_ref = bit;
        if (bit) {
          const int width = std::bit_width(r - 1);
          const uint32_t back = encoding ? back_in() : 0;
          uint32_t got = 0;
          for (int i = width - 1; i >= 0; --i) got = (got << 1) | static_cast<uint32_t>(coder.code((back >> i) & 1, 32768));
          if (got > r - 1) fail("{}: corrupt golf code stream (row {} refers {} rows back)", *source, r, got + 1);
          ref = static_cast<int32_t>(r - 1 - got);
        }
      }
      plan.refs[r] = ref;
      if (encoding)
        for (size_t c = 0; c < cols; ++c) x[c] = row[c];
      if (ref >= 0) {
        if (!referenced_started) referenced.begin_matrix(cols), referenced_started = true;
        const int8_t* matrix = codes + base;
        const size_t width = cols;  // clang 14 cannot capture the structured binding itself
        const auto row_at = [matrix, width](int32_t j) { return matrix + static_cast<size_t>(j) * width; };
        const int32_t ref_ref = plan.refs[static_cast<size_t>(ref)];
        const int32_t ref3 = ref_ref >= 0 ? plan.refs[static_cast<size_t>(ref_ref)] : -1;
        code_row(referenced, referenced_stats, coder, x.data(), cols, row_at(ref), ref_ref >= 0 ? row_at(ref_ref) : nullptr,
                 ref3 >= 0 ? row_at(ref3) : nullptr);
      } else {
        code_row(plain, plain_stats, coder, x.data(), cols, nullptr, nullptr, nullptr);
      }
      if (!encoding)
        for (size_t c = 0; c < cols; ++c) {
          if (x[c] < -127 || x[c] > 127) fail("{}: corrupt golf code stream (a code of {})", *source, x[c]);
          row[c] = static_cast<int8_t>(x[c]);
        }
    }
    base += size_t{rows} * cols;
  }
}

// Reordered matrices' rows between the matrix order and the coded order (to_coded: codes[i] =
// matrix row order[i]; else the inverse).
void permute_rows(int8_t* codes, const std::vector<std::pair<uint32_t, uint32_t>>& shapes, const std::vector<MatrixPlan>& plans, bool to_coded) {
  size_t base = 0;
  std::vector<int8_t> copy;
  for (size_t mi = 0; mi < shapes.size(); ++mi) {
    const auto [rows, cols] = shapes[mi];
    if (plans[mi].reordered) {
      int8_t* m = codes + base;
      copy.assign(m, m + size_t{rows} * cols);
      for (size_t i = 0; i < rows; ++i) {
        const size_t row = plans[mi].order[i];
        if (to_coded) std::copy_n(copy.data() + row * cols, cols, m + i * cols);
        else std::copy_n(copy.data() + i * cols, cols, m + row * cols);
      }
    }
    base += size_t{rows} * cols;
  }
}

size_t total_codes(const std::vector<std::pair<uint32_t, uint32_t>>& shapes) {
  size_t n = 0;
  for (const auto& [rows, cols] : shapes) n += size_t{rows} * cols;
  return n;
}

// The first byte of a stream names its format: the range coder's first byte is always 0, so
// the version takes its place. Version 0 streams came from the coder before row references
// (issue 16, session 3), version 1 from the one that coded a referenced row as its difference
// from the reference (sessions 4-7), version 2 from the one without reordered matrices and model
// F (session 8); no build decodes a version it was not written for.
constexpr uint8_t kCodeStreamVersion = 3;

}  // namespace

std::vector<uint8_t> golf_encode_codes(std::span<const int8_t> codes, const std::vector<std::pair<uint32_t, uint32_t>>& shapes) {
  if (total_codes(shapes) != codes.size())
    fail("golf coder: the shapes hold {} codes, {} were given", total_codes(shapes), codes.size());
  for (const int8_t q : codes)
    if (q == -128) fail("golf coder: code -128 is outside the symmetric range");
  // Natural order with the margin test's references; then, when any matrix found a reference,
  // the same with those matrices reordered (format 3, at code_matrices); the smaller stream wins.
  std::vector<MatrixPlan> plans;
  std::vector<size_t> starts;
  bool any_reference = false;
  size_t base = 0;
  for (const auto& [rows, cols] : shapes) {
    plans.push_back(choose_references(codes.data() + base, rows, cols));
    any_reference = any_reference || std::any_of(plans.back().refs.begin(), plans.back().refs.end(), [](int32_t j) { return j >= 0; });
    starts.push_back(base);
    base += size_t{rows} * cols;
  }
  const auto encode = [&](std::vector<MatrixPlan> p) {
    std::vector<int8_t> copy(codes.begin(), codes.end());
    permute_rows(copy.data(), shapes, p, true);
    Encoder enc;
    code_matrices(enc, shapes, copy.data(), p, true, nullptr);
    std::vector<uint8_t> out = enc.finish();
    out[0] = kCodeStreamVersion;  // the range coder's first byte is always 0
    return out;
  };
  std::vector<uint8_t> best = encode(plans);
  if (any_reference) {
    for (size_t mi = 0; mi < shapes.size(); ++mi)
      if (std::any_of(plans[mi].refs.begin(), plans[mi].refs.end(), [](int32_t j) { return j >= 0; }))
        plans[mi] = chain_references(codes.data() + starts[mi], shapes[mi].first, shapes[mi].second);
    std::vector<uint8_t> reordered = encode(plans);
    if (reordered.size() < best.size()) best = std::move(reordered);
  }
  return best;
}

std::vector<int8_t> golf_decode_codes(std::span<const uint8_t> stream, const std::vector<std::pair<uint32_t, uint32_t>>& shapes,
                                      const std::string& source) {
  // A code costs at least log2(4096/4095) bits (the model's most confident prediction), so a
  // stream far too short for the shapes is refused before anything is allocated.
  const size_t n = total_codes(shapes);
  if (n / 24000 > stream.size()) fail("{}: a {}-byte golf code stream cannot hold {} codes", source, stream.size(), n);
  check_version(stream, kCodeStreamVersion, "code", source);
  std::vector<uint8_t> body(stream.begin(), stream.end());
  body[0] = 0;
  std::vector<int8_t> codes(n);
  Decoder dec(body, source);
  std::vector<MatrixPlan> plans;
  code_matrices(dec, shapes, codes.data(), plans, false, &source);
  dec.finish();
  permute_rows(codes.data(), shapes, plans, false);
  return codes;
}

}  // namespace golf::artifact
