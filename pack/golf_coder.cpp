// pack/golf_coder.cpp — golf's weight-code coder (model and stream: golf_coder.h). Encoder and
// decoder share every modelling step (Model below); only the range coder differs.
#include "pack/golf_coder.h"

#include <algorithm>
#include <array>
#include <bit>

#include "core/error.h"

namespace golf::pack {

namespace {

constexpr int kUnary = 20;                 // |q| > k coded in unary for k = 1..kUnary-1
constexpr int kGammaLength = kUnary + 1;   // nodes: "the gamma code has another bit"
constexpr int kGammaBits = kGammaLength + 8;  // nodes: the gamma code's bits by position
constexpr int kNodes = kGammaBits + 8;
constexpr int kColBuckets = 16, kRowBuckets = 12, kNeighbour = 3;
constexpr int kInputs = 5;  // model A slow, fast; model B slow, fast; bias

// Running means of |q| are kept ×16; these thresholds split them into log-spaced buckets.
constexpr std::array<int, kColBuckets - 1> kColThresholds = {4, 8, 12, 16, 20, 24, 28, 32, 38, 45, 53, 64, 80, 104, 144};
constexpr std::array<int, kRowBuckets - 1> kRowThresholds = {8, 16, 20, 24, 28, 32, 36, 42, 50, 64, 96};

template <size_t N>
int bucket(const std::array<int, N>& thresholds, int v) {
  int b = 0;
  while (b < static_cast<int>(N) && v >= thresholds[static_cast<size_t>(b)]) ++b;
  return b;
}

// Logistic squash and its inverse in fixed point: stretch domain ×256 (±2047), probability ×4096.
int squash(int d) {
  static constexpr int t[33] = {1,    2,    3,    6,    10,   16,   27,   45,   73,   120,  194,
                                310,  488,  747,  1101, 1546, 2047, 2549, 2994, 3348, 3607, 3785,
                                3901, 3975, 4024, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094};
  if (d > 2047) return 4095;
  if (d < -2047) return 1;
  const int w = d & 127, i = (d >> 7) + 16;
  return (t[i] * (128 - w) + t[i + 1] * w + 64) >> 7;
}

const std::array<int16_t, 4096>& stretch_table() {
  static const std::array<int16_t, 4096> table = [] {
    std::array<int16_t, 4096> s{};
    int next = 0;
    for (int x = -2047; x <= 2047; ++x)
      for (const int v = squash(x); next <= v; ++next) s[static_cast<size_t>(next)] = static_cast<int16_t>(x);
    for (; next < 4096; ++next) s[static_cast<size_t>(next)] = 2047;
    return s;
  }();
  return table;
}

// Two adaptive probabilities of a 1 (×65536) for one context: `slow` is nearly a frequency count
// (rate 1/(n+2), floor 1/1024), `fast` follows local drift (rate floor 1/16). The mixer weighs them.
struct Counter {
  uint16_t slow = 32768, fast = 32768;
  uint16_t n = 0;
  void update(int bit) {
    static constexpr int kSlowLimit = 1022, kFastLimit = 14;
    static const std::array<int32_t, kSlowLimit + 1> recip = [] {
      std::array<int32_t, kSlowLimit + 1> r{};
      for (int i = 0; i <= kSlowLimit; ++i) r[static_cast<size_t>(i)] = 65536 / (i + 2);
      return r;
    }();
    const int target = bit ? 65535 : 0;
    slow = static_cast<uint16_t>(slow + (((target - slow) * recip[n]) >> 16));
    fast = static_cast<uint16_t>(fast + (((target - fast) * recip[std::min<int>(n, kFastLimit)]) >> 16));
    if (n < kSlowLimit) ++n;
  }
};

class Encoder {
 public:
  int code(int bit, int p16) {  // p16: probability of a 1
    const uint32_t bound = (range_ >> 16) * static_cast<uint32_t>(p16);
    if (bit) {
      range_ = bound;
    } else {
      low_ += bound;
      range_ -= bound;
    }
    while (range_ < (1u << 24)) range_ <<= 8, shift_low();
    return bit;
  }
  std::vector<uint8_t> finish() {
    for (int i = 0; i < 5; ++i) shift_low();
    return std::move(out_);
  }

 private:
  void shift_low() {
    if (static_cast<uint32_t>(low_) < 0xFF000000u || (low_ >> 32) != 0) {
      const auto carry = static_cast<uint8_t>(low_ >> 32);
      uint8_t byte = cache_;
      do {
        out_.push_back(static_cast<uint8_t>(byte + carry));
        byte = 0xFF;
      } while (--pending_ != 0);
      cache_ = static_cast<uint8_t>(low_ >> 24);
    }
    ++pending_;
    low_ = (low_ & 0x00FFFFFFu) << 8;
  }
  uint64_t low_ = 0;
  uint32_t range_ = 0xFFFFFFFFu;
  uint8_t cache_ = 0;
  uint64_t pending_ = 1;
  std::vector<uint8_t> out_;
};

class Decoder {
 public:
  Decoder(std::span<const uint8_t> in, const std::string& source) : in_(in), source_(source) {
    if (in.empty() || in[0] != 0) fail("{}: not a golf code stream (it must start with a zero byte)", source);
    for (int i = 0; i < 5; ++i) code_ = (code_ << 8) | next();
  }
  int code(int /*unused*/, int p16) {
    const uint32_t bound = (range_ >> 16) * static_cast<uint32_t>(p16);
    int bit;
    if (code_ < bound) {
      range_ = bound;
      bit = 1;
    } else {
      code_ -= bound;
      range_ -= bound;
      bit = 0;
    }
    while (range_ < (1u << 24)) range_ <<= 8, code_ = (code_ << 8) | next();
    return bit;
  }
  void finish() const {
    if (pos_ > in_.size()) fail("{}: the golf code stream ends early ({} bytes)", source_, in_.size());
    if (pos_ < in_.size()) fail("{}: {} bytes follow the end of the golf code stream", source_, in_.size() - pos_);
  }

 private:
  uint32_t next() { return pos_ < in_.size() ? in_[pos_++] : (++pos_, 0u); }
  std::span<const uint8_t> in_;
  const std::string& source_;
  size_t pos_ = 0;
  uint32_t code_ = 0, range_ = 0xFFFFFFFFu;
};

// Everything both sides predict with; `Coder` is Encoder or Decoder, and bit() returns the bit
// that was coded (the encoder's own, or the decoded one).
class Model {
 public:
  Model() : a_(kNodes * kColBuckets * kNeighbour), b_(kNodes * kRowBuckets * kNeighbour), weights_(kNodes * kInputs) {
    for (int n = 0; n < kNodes; ++n)
      for (int i = 0; i < kInputs; ++i) weights_[static_cast<size_t>(kInputs * n + i)] = i < 4 ? 1 << 14 : 0;
  }

  // The context of the next code: column and row running means, left and above codes.
  void set_context(int col_mean, int row_mean, int left, int above) {
    col_ = bucket(kColThresholds, col_mean);
    row_ = bucket(kRowThresholds, row_mean);
    left_ = std::min(std::abs(left), 2);
    above_ = std::min(std::abs(above), 2);
    left_sign_ = left == 0 ? 0 : left > 0 ? 1 : 2;
    above_sign_ = above == 0 ? 0 : above > 0 ? 1 : 2;
  }

  template <class Coder>
  int bit(Coder& coder, int node, int bit) {
    const bool sign = node == 1;
    Counter& ca = a_[static_cast<size_t>((node * kColBuckets + col_) * kNeighbour + (sign ? left_sign_ : left_))];
    Counter& cb = b_[static_cast<size_t>((node * kRowBuckets + row_) * kNeighbour + (sign ? above_sign_ : above_))];
    const auto& stretch = stretch_table();
    const int x[kInputs] = {stretch[ca.slow >> 4], stretch[ca.fast >> 4], stretch[cb.slow >> 4], stretch[cb.fast >> 4], 256};
    int32_t* w = &weights_[static_cast<size_t>(kInputs * node)];
    int64_t dot = 0;
    for (int i = 0; i < kInputs; ++i) dot += int64_t{w[i]} * x[i];
    const int p = std::clamp(squash(static_cast<int>(std::clamp<int64_t>(dot >> 16, -2047, 2047))), 1, 4095);
    const int coded = coder.code(bit, p << 4);
    // Mixer step 2^-13: slow enough that on i.i.d. codes the mix costs ≤ 0.1 % over the entropy.
    const int err = (coded << 12) - p;
    constexpr int32_t kMaxWeight = 1 << 22;
    for (int i = 0; i < kInputs; ++i) w[i] = std::clamp(w[i] + ((x[i] * err + (1 << 12)) >> 13), -kMaxWeight, kMaxWeight);
    ca.update(coded);
    cb.update(coded);
    return coded;
  }

 private:
  std::vector<Counter> a_, b_;
  std::vector<int32_t> weights_;
  int col_ = 0, row_ = 0, left_ = 0, above_ = 0, left_sign_ = 0, above_sign_ = 0;
};

void encode_code(Model& m, Encoder& e, int q) {
  if (m.bit(e, 0, q == 0)) return;
  m.bit(e, 1, q < 0);
  const int mag = std::abs(q);
  for (int k = 1; k < kUnary; ++k)
    if (!m.bit(e, 1 + k, mag > k)) return;
  const auto value = static_cast<uint32_t>(mag - kUnary + 1);  // ≥ 1: Elias gamma
  const int length = std::bit_width(value);
  for (int i = 0; i < 7; ++i)
    if (!m.bit(e, kGammaLength + i, i < length - 1)) break;
  for (int i = length - 2; i >= 0; --i) m.bit(e, kGammaBits + i, (value >> i) & 1);
}

int decode_code(Model& m, Decoder& d, const std::string& source) {
  if (m.bit(d, 0, 0)) return 0;
  const bool negative = m.bit(d, 1, 0);
  int mag = 1;
  while (mag < kUnary && m.bit(d, 1 + mag, 0)) ++mag;
  if (mag == kUnary) {
    int length = 1;
    while (length < 8 && m.bit(d, kGammaLength + length - 1, 0)) ++length;
    uint32_t value = 1;
    for (int i = length - 2; i >= 0; --i) value = (value << 1) | static_cast<uint32_t>(m.bit(d, kGammaBits + i, 0));
    mag = static_cast<int>(value) + kUnary - 1;
  }
  if (mag > (negative ? 128 : 127)) fail("{}: corrupt golf code stream (a code of magnitude {})", source, mag);
  return negative ? -mag : mag;
}

// Walks the matrices in order, keeping the running means; `step(model, i)` codes element i.
template <class Step>
void walk(const std::vector<std::pair<uint32_t, uint32_t>>& shapes, const int8_t* codes, Model& model, Step step) {
  size_t base = 0;
  for (const auto& [rows, cols] : shapes) {
    std::vector<int> col_mean(cols, 2 << 4);
    int row_mean = 2 << 4;
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c) {
        const size_t i = base + r * cols + c;
        model.set_context(col_mean[c], row_mean, c ? codes[i - 1] : 0, r ? codes[i - cols] : 0);
        step(i);
        const int mag = std::min(std::abs(static_cast<int>(codes[i])), 63) << 4;
        col_mean[c] += (mag - col_mean[c]) >> 3;
        row_mean += (mag - row_mean) >> 4;
      }
    base += size_t{rows} * cols;
  }
}

size_t total_codes(const std::vector<std::pair<uint32_t, uint32_t>>& shapes) {
  size_t n = 0;
  for (const auto& [rows, cols] : shapes) n += size_t{rows} * cols;
  return n;
}

}  // namespace

std::vector<uint8_t> golf_encode_codes(std::span<const int8_t> codes, const std::vector<std::pair<uint32_t, uint32_t>>& shapes) {
  if (total_codes(shapes) != codes.size())
    fail("golf coder: the shapes hold {} codes, {} were given", total_codes(shapes), codes.size());
  for (const int8_t q : codes)
    if (q == -128) fail("golf coder: code -128 is outside the symmetric range");
  Model model;
  Encoder enc;
  walk(shapes, codes.data(), model, [&](size_t i) { encode_code(model, enc, codes[i]); });
  return enc.finish();
}

std::vector<int8_t> golf_decode_codes(std::span<const uint8_t> stream, const std::vector<std::pair<uint32_t, uint32_t>>& shapes,
                                      const std::string& source) {
  // A code costs at least log2(4096/4095) bits (the model's most confident prediction), so a
  // stream far too short for the shapes is refused before anything is allocated.
  const size_t n = total_codes(shapes);
  if (n / 24000 > stream.size()) fail("{}: a {}-byte golf code stream cannot hold {} codes", source, stream.size(), n);
  std::vector<int8_t> codes(n);
  Model model;
  Decoder dec(stream, source);
  walk(shapes, codes.data(), model, [&](size_t i) { codes[i] = static_cast<int8_t>(decode_code(model, dec, source)); });
  dec.finish();
  return codes;
}

}  // namespace golf::pack
