// artifact/binary_coder.h — the pieces golf's code coder (golf_coder.cpp) and its fp16 word coder
// (golf_words.cpp) share: fixed-point logistic squash/stretch, adaptive bit counters, the binary
// range coder (encoder and validating decoder) and the stream-format check. Internal to those two
// files; the coders' interface is artifact/golf_coder.h.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"

namespace golf::artifact::binary_coder {

// Logistic squash and its inverse in fixed point: stretch domain ×256 (±2047), probability ×4096.
inline int squash(int d) {
  static constexpr int t[33] = {1,    2,    3,    6,    10,   16,   27,   45,   73,   120,  194,
                                310,  488,  747,  1101, 1546, 2047, 2549, 2994, 3348, 3607, 3785,
                                3901, 3975, 4024, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094};
  if (d > 2047) return 4095;
  if (d < -2047) return 1;
  const int w = d & 127, i = (d >> 7) + 16;
  return (t[i] * (128 - w) + t[i + 1] * w + 64) >> 7;
}

// stretch = squash⁻¹ over probabilities ×4096, and squash over the clamped stretch domain as a
// table (clamped to [1, 4095]: no decision is ever certain).
inline const std::array<int16_t, 4096> kStretch = [] {
  std::array<int16_t, 4096> s{};
  int next = 0;
  for (int x = -2047; x <= 2047; ++x)
    for (const int v = squash(x); next <= v; ++next) s[static_cast<size_t>(next)] = static_cast<int16_t>(x);
  for (; next < 4096; ++next) s[static_cast<size_t>(next)] = 2047;
  return s;
}();
inline const std::array<int16_t, 4095> kSquash = [] {
  std::array<int16_t, 4095> t{};
  for (int d = -2047; d <= 2047; ++d) t[static_cast<size_t>(d + 2047)] = static_cast<int16_t>(std::clamp(squash(d), 1, 4095));
  return t;
}();

// Two adaptive probabilities of a 1 (×65536) for one context: `slow` is nearly a frequency count
// (rate 1/(n+2), floor 1/1024), `fast` follows local drift (rate floor 1/16). The mixer weighs them.
inline constexpr int kSlowLimit = 1022, kFastLimit = 14;
inline const std::array<int32_t, kSlowLimit + 1> kCounterRate = [] {  // 65536 / (n + 2)
  std::array<int32_t, kSlowLimit + 1> r{};
  for (int i = 0; i <= kSlowLimit; ++i) r[static_cast<size_t>(i)] = 65536 / (i + 2);
  return r;
}();
// Models C–E keep the slow probability only: their fast ones bought 31 bytes on the 11 × 512
// tok_emb (of 1.6 MB), for three more mixer inputs and counter updates per decision.
struct SlowCounter {
  uint16_t p = 32768, n = 0;
  void update(int bit) {
    p = static_cast<uint16_t>(p + ((((bit ? 65535 : 0) - p) * kCounterRate[n]) >> 16));
    if (n < kSlowLimit) ++n;
  }
};
struct Counter {
  uint16_t slow = 32768, fast = 32768;
  uint16_t n = 0;
  void update(int bit) {
    const int target = bit ? 65535 : 0;
    slow = static_cast<uint16_t>(slow + (((target - slow) * kCounterRate[n]) >> 16));
    fast = static_cast<uint16_t>(fast + (((target - fast) * kCounterRate[std::min<int>(n, kFastLimit)]) >> 16));
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
  void check_not_past_end() const {}
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
    const uint64_t bound = (range_ >> 16) * static_cast<uint32_t>(p16);  // < 2^32
    // Branch-free (selects, not a branch): the bit is the hard one to predict, and the caller
    // branches on it anyway; one mispredicted branch per surprising bit instead of two.
    const int bit = code_ < bound;
    const uint64_t if_zero = static_cast<uint64_t>(bit) - 1u;  // all ones when the bit is 0
    code_ -= bound & if_zero;
    range_ = (bound & ~if_zero) | ((range_ - bound) & if_zero);
    while (range_ < (1u << 24)) range_ <<= 8, code_ = ((code_ << 8) | next()) & 0xFFFFFFFFu;
    return bit;
  }
  // Reading on past the end yields zeros, refused at finish(); rather than walk a forged stream's
  // long matrices (a reordered one's order too) over them, rows check as they go: the decoder
  // reads at most 5 bytes ahead of what it has decoded.
  void check_not_past_end() const {
    if (pos_ > in_.size() + 8) fail("{}: the golf code stream ends early ({} bytes)", source_, in_.size());
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
  // 32-bit values held in 64-bit words: a uint32_t member may alias the mixer's int32_t weights
  // (and Stats' ints), so the compiler must reload it after every store to them; a uint64_t
  // cannot. Both stay below 2^32 (the mask above; the stream's first byte is 0).
  uint64_t code_ = 0, range_ = 0xFFFFFFFFu;
};

// The first byte of a stream names its format (the range coder's first byte is always 0, so the
// version takes its place); a stream of another format is one error naming both.
inline void check_version(std::span<const uint8_t> stream, uint8_t version, const char* kind, const std::string& source) {
  if (stream.empty()) fail("{}: the golf {} stream is empty", source, kind);
  if (stream[0] != version)
    fail("{}: golf {} stream format {} is not supported (this build reads format {}{})", source, kind, stream[0], version,
         stream[0] < version ? "; it was written by an earlier golf coder: repack from the run's weights" : "");
}

}  // namespace golf::artifact::binary_coder
