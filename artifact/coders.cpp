// artifact/coders.cpp — Brotli (best of a few settings) and xz, with hostile-input decoders.
#include "artifact/coders.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <lzma.h>

#include <algorithm>
#include <memory>
#include <thread>

#include "core/error.h"

namespace golf::artifact {

Bytes brotli_compress(std::span<const uint8_t> in, int quality, BrotliSetting s) {
  if (quality < BROTLI_MIN_QUALITY || quality > BROTLI_MAX_QUALITY)
    fail("Brotli quality {} is outside {}..{}", quality, BROTLI_MIN_QUALITY, BROTLI_MAX_QUALITY);
  if (s.window < BROTLI_MIN_WINDOW_BITS || s.window > BROTLI_MAX_WINDOW_BITS)
    fail("Brotli window {} is outside {}..{}", s.window, BROTLI_MIN_WINDOW_BITS, BROTLI_MAX_WINDOW_BITS);
  if (s.mode < BROTLI_MODE_GENERIC || s.mode > BROTLI_MODE_FONT) fail("Brotli mode {} is not 0, 1 or 2", s.mode);
  size_t size = BrotliEncoderMaxCompressedSize(in.size());
  if (size == 0) fail("{} bytes are too many for one Brotli stream", in.size());
  Bytes out(size);
  if (!BrotliEncoderCompress(quality, s.window, static_cast<BrotliEncoderMode>(s.mode), in.size(), in.data(), &size,
                             out.data()))
    fail("Brotli compression of {} bytes failed", in.size());
  out.resize(size);
  return out;
}

std::vector<BrotliSetting> default_brotli_candidates() { return {{22, 0}, {24, 0}}; }

BrotliResult brotli_best(std::span<const uint8_t> in, int quality, const std::vector<BrotliSetting>& requested) {
  if (requested.empty()) fail("no Brotli settings to try");
  // A window larger than the input reaches nothing more but costs memory and time (the encoder
  // sizes its tables by the window): each window is cut to the smallest that spans the input
  // (a window of 2^w holds 2^w − 16 bytes), and settings that then coincide are tried once.
  int needed = BROTLI_MIN_WINDOW_BITS;
  while (needed < BROTLI_MAX_WINDOW_BITS && (size_t{1} << needed) - 16 < in.size()) ++needed;
  std::vector<BrotliSetting> candidates;
  for (BrotliSetting s : requested) {
    s.window = std::min(s.window, needed);
    if (std::find(candidates.begin(), candidates.end(), s) == candidates.end()) candidates.push_back(s);
  }
  std::vector<Bytes> streams(candidates.size());
  std::vector<std::string> errors(candidates.size());
  // Each quality-11 run is single-threaded; the candidates run side by side, at most one per core.
  const size_t workers = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, candidates.size());
  std::vector<std::thread> pool;
  for (size_t w = 0; w < workers; ++w)
    pool.emplace_back([&, w] {
      for (size_t i = w; i < candidates.size(); i += workers) try {
          streams[i] = brotli_compress(in, quality, candidates[i]);
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
    });
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (!e.empty()) throw Error(e);
  size_t best = 0;
  for (size_t i = 1; i < streams.size(); ++i)
    if (streams[i].size() < streams[best].size()) best = i;
  return {std::move(streams[best]), candidates[best]};
}

Bytes brotli_decompress(std::span<const uint8_t> in, size_t expected, const std::string& source) {
  std::unique_ptr<BrotliDecoderState, decltype(&BrotliDecoderDestroyInstance)> dec(
      BrotliDecoderCreateInstance(nullptr, nullptr, nullptr), &BrotliDecoderDestroyInstance);
  if (!dec) fail("{}: cannot create a Brotli decoder", source);
  Bytes out(std::min(expected, in.size() * 4 + 65536));
  size_t avail_in = in.size(), produced = 0;
  const uint8_t* next_in = in.data();
  for (;;) {
    size_t avail_out = out.size() - produced;
    uint8_t* next_out = out.data() + produced;
    const BrotliDecoderResult r = BrotliDecoderDecompressStream(dec.get(), &avail_in, &next_in, &avail_out, &next_out, nullptr);
    produced = static_cast<size_t>(next_out - out.data());
    if (r == BROTLI_DECODER_RESULT_SUCCESS) break;
    if (r == BROTLI_DECODER_RESULT_ERROR)
      fail("{}: corrupt Brotli stream ({})", source, BrotliDecoderErrorString(BrotliDecoderGetErrorCode(dec.get())));
    if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT)
      fail("{}: the Brotli stream ends early (after {} of {} bytes)", source, produced, expected);
    if (produced < out.size()) fail("{}: the Brotli decoder stalled at byte {}", source, produced);
    if (out.size() >= expected) fail("{}: the Brotli stream holds more than the expected {} bytes", source, expected);
    out.resize(std::min(expected, out.size() * 2));
  }
  if (avail_in != 0) fail("{}: {} bytes follow the end of the Brotli stream", source, avail_in);
  if (produced != expected) fail("{}: the Brotli stream holds {} bytes, expected {}", source, produced, expected);
  out.resize(produced);
  return out;
}

int brotli_stream_window(std::span<const uint8_t> s) {
  if (s.empty()) return 0;
  const uint32_t bits = s[0] | (s.size() > 1 ? uint32_t{s[1]} << 8 : 0);  // read least significant bit first
  if ((bits & 1) == 0) return 16;
  if (const uint32_t n = (bits >> 1) & 7; n != 0) return 17 + static_cast<int>(n);
  const uint32_t m = (bits >> 4) & 7;
  if (m == 1) return 0;  // the large-window extension, never written here
  return m == 0 ? 17 : 8 + static_cast<int>(m);
}

Bytes xz_encode(std::span<const uint8_t> in) {
  Bytes out(lzma_stream_buffer_bound(in.size()));
  size_t size = 0;
  if (lzma_easy_buffer_encode(9 | LZMA_PRESET_EXTREME, LZMA_CHECK_NONE, nullptr, in.data(), in.size(), out.data(), &size,
                              out.size()) != LZMA_OK)
    fail("xz compression of {} bytes failed", in.size());
  out.resize(size);
  return out;
}

Bytes xz_decode(std::span<const uint8_t> in, size_t expected, const std::string& source) {
  lzma_stream strm = LZMA_STREAM_INIT;
  // 1 GiB memory limit: preset 9 needs 65 MiB to decode; a forged header cannot ask for more.
  if (lzma_stream_decoder(&strm, uint64_t{1} << 30, 0) != LZMA_OK) fail("{}: cannot create an xz decoder", source);
  std::unique_ptr<lzma_stream, decltype(&lzma_end)> guard(&strm, &lzma_end);
  Bytes out(std::min(expected, in.size() * 4 + 65536));
  strm.next_in = in.data();
  strm.avail_in = in.size();
  size_t produced = 0;
  for (;;) {
    strm.next_out = out.data() + produced;
    strm.avail_out = out.size() - produced;
    const lzma_ret r = lzma_code(&strm, LZMA_FINISH);
    produced = out.size() - strm.avail_out;
    if (r == LZMA_STREAM_END) break;
    if (r != LZMA_OK && r != LZMA_BUF_ERROR) fail("{}: corrupt xz stream (liblzma error {})", source, static_cast<int>(r));
    if (strm.avail_out == 0) {
      if (out.size() >= expected) fail("{}: the xz stream holds more than the expected {} bytes", source, expected);
      out.resize(std::min(expected, out.size() * 2));
    } else if (r == LZMA_BUF_ERROR) {
      fail("{}: the xz stream ends early (after {} of {} bytes)", source, produced, expected);
    }
  }
  if (strm.avail_in != 0) fail("{}: {} bytes follow the end of the xz stream", source, strm.avail_in);
  if (produced != expected) fail("{}: the xz stream holds {} bytes, expected {}", source, produced, expected);
  out.resize(produced);
  return out;
}

}  // namespace golf::artifact
