// artifact/golf_words.cpp — golf's coder for the payload's fp16 words (the scales and passthrough
// values; model and stream: golf_coder.h), on the range coder it shares with the code coder.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "artifact/binary_coder.h"
#include "artifact/golf_coder.h"

namespace golf::artifact {

namespace {

using namespace binary_coder;

// The fp16 words' model (golf_coder.h): bit-tree contexts over each byte, two models mixed.
class WordModel {
 public:
  WordModel() : a_(2 * 256 * 256), b_(2 * 256 * 256), weights_(16 * kWordInputs) {
    for (size_t n = 0; n < 16; ++n)
      for (size_t i = 0; i < kWordInputs; ++i) weights_[n * kWordInputs + i] = i < 4 ? 1 << 14 : 0;
  }

  template <class Coder>
  uint16_t word(Coder& coder, uint16_t value) {
    int high = 1;  // bit-tree node: a leading 1, then the bits so far
    for (int k = 15; k >= 8; --k)
      high = (high << 1) | bit(coder, 15 - k, high, static_cast<size_t>(prev_high_) * 256 + static_cast<size_t>(high), (value >> k) & 1);
    high &= 0xFF;
    const size_t near = high == prev_high_ ? 1 + (prev_low_ >> 2) : 0;  // the previous low byte, when comparable
    int low = 1;
    for (int k = 7; k >= 0; --k)
      low = (low << 1) | bit(coder, 15 - k, 65536 + static_cast<size_t>(high) * 256 + static_cast<size_t>(low),
                             65536 + near * 256 + static_cast<size_t>(low), (value >> k) & 1);
    low &= 0xFF;
    prev_high_ = high, prev_low_ = low;
    return static_cast<uint16_t>(high << 8 | low);
  }

 private:
  static constexpr size_t kWordInputs = 5;
  template <class Coder>
  int bit(Coder& coder, int position, size_t ctx_a, size_t ctx_b, int bit) {
    Counter& ca = a_[ctx_a];
    Counter& cb = b_[ctx_b];
    const auto& stretch = kStretch;
    const int x[kWordInputs] = {stretch[ca.slow >> 4], stretch[ca.fast >> 4], stretch[cb.slow >> 4], stretch[cb.fast >> 4], 256};
    int32_t* w = &weights_[static_cast<size_t>(position) * kWordInputs];
    int64_t dot = 0;
    for (size_t i = 0; i < kWordInputs; ++i) dot += int64_t{w[i]} * x[i];
    const int p = kSquash[static_cast<size_t>(std::clamp<int64_t>(dot >> 16, -2047, 2047) + 2047)];
    const int coded = coder.code(bit, p << 4);
    const int err = (coded << 12) - p;
    constexpr int32_t kMaxWeight = 1 << 22;
    // A faster mixer step than the codes' (2^-11): there are few words to learn from.
    for (size_t i = 0; i < kWordInputs; ++i) w[i] = std::clamp(w[i] + ((x[i] * err + (1 << 10)) >> 11), -kMaxWeight, kMaxWeight);
    ca.update(coded);
    cb.update(coded);
    return coded;
  }
  // a_: node × own high byte (low byte) or node alone (high byte, ctx < 256); b_: node × the
  // previous word's high byte (high byte) or × the previous low byte's bucket (low byte).
  std::vector<Counter> a_, b_;
  std::vector<int32_t> weights_;
  int prev_high_ = 0, prev_low_ = 0;
};

// Format 1: the only one so far.
constexpr uint8_t kWordStreamVersion = 1;

}  // namespace

std::vector<uint8_t> golf_encode_words(std::span<const uint16_t> words) {
  WordModel model;
  Encoder enc;
  for (const uint16_t w : words) model.word(enc, w);
  std::vector<uint8_t> out = enc.finish();
  out[0] = kWordStreamVersion;
  return out;
}

std::vector<uint16_t> golf_decode_words(std::span<const uint8_t> stream, size_t count, const std::string& source) {
  // 16 decisions of at least log2(4096/4095) bits each: a byte holds at most ~1,400 words.
  if (count / 1400 > stream.size()) fail("{}: a {}-byte golf word stream cannot hold {} words", source, stream.size(), count);
  check_version(stream, kWordStreamVersion, "word", source);
  std::vector<uint8_t> body(stream.begin(), stream.end());
  body[0] = 0;
  std::vector<uint16_t> words(count);
  WordModel model;
  Decoder dec(body, source);
  for (uint16_t& w : words) w = model.word(dec, 0);
  dec.finish();
  return words;
}

}  // namespace golf::artifact
