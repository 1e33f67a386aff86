// artifact/coders.h — the general-purpose byte compressors the artifact uses (libbrotli, liblzma),
// each with a validating decoder that treats its input as hostile. Torch-free.
//
// Brotli is chosen per input: every (window, mode) pair of a small candidate set is tried at the
// same quality and the smallest stream is kept (ties: the earlier candidate). The decoder needs
// none of these settings: the window is written in the stream's own header (RFC 7932 §9.1, WBITS)
// and the mode only steers the encoder's context modelling.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace golf::artifact {

using Bytes = std::vector<uint8_t>;

struct BrotliSetting {
  int window = 22;  // lgwin, 10..24
  int mode = 0;     // BROTLI_MODE_GENERIC 0, TEXT 1, FONT 2
  friend bool operator==(const BrotliSetting&, const BrotliSetting&) = default;
};

struct BrotliResult {
  Bytes stream;
  BrotliSetting setting;  // the candidate that gave `stream`
};

// One Brotli stream per candidate (in parallel threads), the smallest kept. A candidate's window
// is first cut to the smallest that spans the input (a larger one reaches nothing more); the
// result names the setting actually used. Throws golf::Error on an empty candidate list or a
// setting out of range.
BrotliResult brotli_best(std::span<const uint8_t> in, int quality, const std::vector<BrotliSetting>& candidates);
// PackOptions' default candidates (artifact/artifact.h says why): windows 22 and 24, GENERIC.
// Out of line: GCC 12 misreads the list's constant array as maybe-uninitialized wherever an
// inlined PackOptions() built it from `= {{22, 0}, {24, 0}}`.
std::vector<BrotliSetting> default_brotli_candidates();
Bytes brotli_compress(std::span<const uint8_t> in, int quality, BrotliSetting setting);
// Decompresses exactly `expected` bytes; anything else (corrupt, short, long, trailing bytes) is
// one golf::Error "<source>: ...". Memory grows only with what the stream really yields.
Bytes brotli_decompress(std::span<const uint8_t> in, size_t expected, const std::string& source);
// The window (lgwin) a Brotli stream declares in its first bits; 0 if it cannot be read.
int brotli_stream_window(std::span<const uint8_t> stream);

// xz container, preset 9 | LZMA_PRESET_EXTREME, no integrity check (the artifact has its CRC-64).
Bytes xz_encode(std::span<const uint8_t> in);
Bytes xz_decode(std::span<const uint8_t> in, size_t expected, const std::string& source);

}  // namespace golf::artifact
