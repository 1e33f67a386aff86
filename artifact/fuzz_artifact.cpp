// artifact/fuzz_artifact.cpp — libFuzzer harness for the artifact reader; scripts/fuzz_pack.sh builds
// and runs it. A golf::Error is the expected answer to bad input; any other exception, a crash, or
// a sanitizer report is a bug. Built with -DGOLF_FUZZ_WRITE_SEEDS instead, it is a small program
// that writes a seed corpus of valid inputs.
//
// The first input byte picks what the rest is, so mutations reach every layer despite the CRC:
//   0: a whole artifact file → deserialize()
//   1: a whole artifact file whose CRC is recomputed first → the compressors' decoders (Brotli,
//      the grouped stream of COMPRESSOR=pergroup/golf, golf's coder), shuffle and payload checks
//   2: a raw payload → decode_payload(); whatever it accepts must re-encode to the same bytes
//   3: u32 payload size, u8 compressor (pergroup/golf), then a raw grouped stream → grouped_decode()
//   4: u8 rows − 1, u8 cols − 1, then a raw golf code stream → golf_decode_codes(); whatever it accepts
//      must survive another encode and decode unchanged
//   5: u16 word count, then a raw golf fp16 word stream → golf_decode_words(); likewise
#include <lzma.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "artifact/artifact.h"
#include "artifact/golf_coder.h"
#include "artifact/grouped.h"

namespace {

using golf::artifact::Artifact;
using Bytes = std::vector<uint8_t>;

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "fuzz_artifact: %s\n", what);
  std::abort();
}

void fix_crc(Bytes& file) {
  if (file.size() < golf::artifact::kHeaderBytes) return;
  uint64_t crc = lzma_crc64(file.data(), 14, 0);
  crc = lzma_crc64(file.data() + golf::artifact::kHeaderBytes, file.size() - golf::artifact::kHeaderBytes, crc);
  std::memcpy(file.data() + 14, &crc, sizeof crc);
}

// Whatever deserialize() accepts must survive another write and read unchanged.
void check_round_trip(const Artifact& a, const Bytes& file) {
  golf::artifact::PackOptions fast;
  fast.brotli_quality = 1;
  fast.shuffle_stride = file[5];
  if (golf::artifact::deserialize(golf::artifact::serialize(a, fast)) != a) bug("accepted artifact does not round-trip");
}

void run_one(const uint8_t* data, size_t size) {
  if (size == 0) return;
  Bytes in(data + 1, data + size);
  switch (data[0] % 6) {
    case 0:
      check_round_trip(golf::artifact::deserialize(in, "fuzz"), in);
      break;
    case 1:
      fix_crc(in);
      check_round_trip(golf::artifact::deserialize(in, "fuzz"), in);
      break;
    case 2:
      // The payload encoding is canonical: one artifact, one byte sequence.
      if (golf::artifact::encode_payload(golf::artifact::decode_payload(in, "fuzz")) != in) bug("accepted payload is not canonical");
      break;
    case 3: {
      if (in.size() < 5) return;
      uint32_t payload_bytes;
      std::memcpy(&payload_bytes, in.data(), 4);
      const auto c = in[4] % 2 ? golf::artifact::Compressor::Golf : golf::artifact::Compressor::PerGroup;
      const Bytes stream(in.begin() + 5, in.end());
      const Bytes payload = golf::artifact::grouped_decode(stream, payload_bytes % (1u << 20), c, 2, "fuzz");
      if (payload.size() != payload_bytes % (1u << 20)) bug("grouped stream decoded to the wrong size");
      break;
    }
    case 5: {
      if (in.size() < 2) return;
      const size_t count = in[0] | (size_t{in[1]} << 8);
      const Bytes stream(in.begin() + 2, in.end());
      const std::vector<uint16_t> words = golf::artifact::golf_decode_words(stream, count, "fuzz");
      if (golf::artifact::golf_decode_words(golf::artifact::golf_encode_words(words), count, "fuzz") != words)
        bug("accepted golf words do not round-trip");
      break;
    }
    default: {
      if (in.size() < 2) return;
      const std::vector<std::pair<uint32_t, uint32_t>> shapes = {{in[0] + 1u, in[1] + 1u}};
      const Bytes stream(in.begin() + 2, in.end());
      const std::vector<int8_t> codes = golf::artifact::golf_decode_codes(stream, shapes, "fuzz");
      if (golf::artifact::golf_decode_codes(golf::artifact::golf_encode_codes(codes, shapes), shapes, "fuzz") != codes)
        bug("accepted golf codes do not round-trip");
    }
  }
}

}  // namespace

#ifndef GOLF_FUZZ_WRITE_SEEDS

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    run_one(data, size);
  } catch (const golf::Error&) {
    // the reader's answer to bad input
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_artifact: escaped %s\n", e.what());
    std::abort();
  }
  return 0;
}

#else

namespace {

using golf::artifact::Tensor;

Artifact seed_artifact(int variant) {
  Artifact a;
  if (variant == 0) return a;
  a.config_json = R"({"model_dim": 8, "num_layers": 1})";
  Tensor w;
  w.name = "blocks.0.attn.c_q.weight";
  w.shape = {4, 3};
  w.kind = Tensor::Kind::Quantized;
  w.bits = 6;
  for (int i = 0; i < 12; ++i) w.q.push_back(static_cast<int8_t>((i * 7) % 63 - 31));
  w.scales = {0x2e66, 0x3c00, 0x0400, 0x1234};
  a.tensors.push_back(w);
  Tensor g;
  g.name = "blocks.0.attn.q_gain";
  g.shape = {2};
  g.values = {0x4500, 0x7e00};
  a.tensors.push_back(g);
  if (variant >= 2) {
    Tensor e = w;
    e.name = "tok_emb.weight";
    e.shape = {2, 3, 2};
    e.bits = 2;
    for (auto& q : e.q) q = static_cast<int8_t>(q % 2);
    e.scales.resize(2);
    a.tensors.push_back(e);
    Tensor s;
    s.name = "smear_lambda";
    s.values = {0x3800};
    a.tensors.push_back(s);
    Tensor empty;
    empty.name = "empty.weight";
    empty.shape = {0, 5};
    empty.kind = Tensor::Kind::Quantized;
    empty.bits = 8;
    a.tensors.push_back(empty);
  }
  return a;
}

void write(const std::filesystem::path& path, uint8_t mode, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.put(static_cast<char>(mode));
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SEED_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  int n = 0;
  for (int variant = 0; variant < 3; ++variant)
    for (const int stride : {1, 2, 8}) {
      golf::artifact::PackOptions o;
      o.shuffle_stride = stride;
      o.brotli_quality = 5;
      const Artifact a = seed_artifact(variant);
      const Bytes file = golf::artifact::serialize(a, o);
      const std::string stem = "seed-" + std::to_string(variant) + "-" + std::to_string(stride);
      write(dir / (stem + "-file"), 0, file);
      write(dir / (stem + "-crc"), 1, file);
      if (stride == 2) write(dir / (stem + "-payload"), 2, golf::artifact::encode_payload(a));
      n += stride == 2 ? 3 : 2;
    }
  // The grouped compressors: whole files, raw grouped streams, raw golf code streams.
  for (int variant = 1; variant < 3; ++variant)
    for (const auto c : {golf::artifact::Compressor::PerGroup, golf::artifact::Compressor::Golf}) {
      golf::artifact::PackOptions o;
      o.brotli_quality = 5;
      o.compressor = c;
      const Artifact a = seed_artifact(variant);
      const std::string stem = "seed-" + std::to_string(variant) + "-" + golf::artifact::compressor_name(c);
      const Bytes file = golf::artifact::serialize(a, o);
      write(dir / (stem + "-file"), 0, file);
      write(dir / (stem + "-crc"), 1, file);
      std::vector<golf::artifact::CodeSpan> spans;
      const Bytes payload = golf::artifact::encode_payload(a, &spans);
      Bytes raw(4);
      const auto size = static_cast<uint32_t>(payload.size());
      std::memcpy(raw.data(), &size, 4);
      raw.push_back(c == golf::artifact::Compressor::Golf ? 1 : 0);
      const Bytes stream = golf::artifact::grouped_encode(payload, spans, o);
      raw.insert(raw.end(), stream.begin(), stream.end());
      write(dir / (stem + "-grouped"), 3, raw);
      n += 3;
    }
  for (const auto& [rows, cols] : std::vector<std::pair<uint32_t, uint32_t>>{{4, 3}, {16, 40}, {32, 48}}) {
    std::vector<int8_t> codes;
    for (uint32_t i = 0; i < rows * cols; ++i) codes.push_back(static_cast<int8_t>((i * 37) % 41 - 20));
    if (rows == 32)  // rows that repeat one row up to ±1: the encoder codes them against a reference row
      for (uint32_t i = 0; i < rows * cols; ++i)
        codes[i] = static_cast<int8_t>(((i % cols) * 37) % 41 - 20 + ((i / cols * 7 + i % cols) % 5 == 0));
    Bytes raw = {static_cast<uint8_t>(rows - 1), static_cast<uint8_t>(cols - 1)};
    const Bytes stream = golf::artifact::golf_encode_codes(codes, {{rows, cols}});
    raw.insert(raw.end(), stream.begin(), stream.end());
    write(dir / ("seed-golf-codes-" + std::to_string(rows)), 4, raw);
    ++n;
  }
  for (const size_t count : {size_t{3}, size_t{300}}) {
    std::vector<uint16_t> words;
    for (size_t i = 0; i < count; ++i) words.push_back(static_cast<uint16_t>(0x2000 + (i * 97) % 700));
    Bytes raw = {static_cast<uint8_t>(count & 0xFF), static_cast<uint8_t>(count >> 8)};
    const Bytes stream = golf::artifact::golf_encode_words(words);
    raw.insert(raw.end(), stream.begin(), stream.end());
    write(dir / ("seed-golf-words-" + std::to_string(count)), 5, raw);
    ++n;
  }
  std::printf("wrote %d seeds to %s\n", n, dir.c_str());
  return 0;
}

#endif
