// artifact/row_distance.h — Σ|a − b| between two rows of codes stored as unsigned bytes (code + 128,
// which leaves every |a − b| unchanged). Shared by golf's row-reference search
// (artifact/golf_coder.cpp) and pergroup's nearest-neighbour row order (artifact/grouped.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace golf::artifact {

// Fixed 32-byte blocks so the compiler turns each into vector sum-of-absolute-differences; a
// block's sum (≤ 32 · 255) and the total (≤ n · 255) fit 32 bits for any row under 16 M codes.
inline uint32_t l1_distance(const uint8_t* a, const uint8_t* b, size_t n) {
  uint32_t d = 0;
  size_t c = 0;
  for (; c + 32 <= n; c += 32) {
    uint32_t block = 0;
    for (size_t k = 0; k < 32; ++k) block += static_cast<uint32_t>(std::abs(int{a[c + k]} - int{b[c + k]}));
    d += block;
  }
  for (; c < n; ++c) d += static_cast<uint32_t>(std::abs(int{a[c]} - int{b[c]}));
  return d;
}

}  // namespace golf::artifact
