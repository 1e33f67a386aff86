// The artifact container: byte shuffle, exact round trips, determinism, the documented byte layout,
// and a clear golf::Error for every kind of damage (truncation, any flipped bit, forged payloads).
#include "artifact/artifact.h"

#include <brotli/encode.h>
#include <lzma.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>

#include "core/error.h"
#include "tests/test_util.h"

namespace golf::artifact {
namespace {

using test::TempDir;
using Bytes = std::vector<uint8_t>;

// A finite, normal-range float → fp16 bit pattern, round to nearest even (enough for test data).
uint16_t to_half(float f) {
  const auto x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000;
  const int exponent = static_cast<int>((x >> 23) & 0xff) - 127 + 15;
  if (exponent <= 0) return static_cast<uint16_t>(sign);
  uint32_t h = (static_cast<uint32_t>(exponent) << 10) | ((x & 0x7fffff) >> 13);
  const uint32_t rest = x & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

// Built field by field: designated initializers that skip members trip -Wmissing-field-initializers.
Tensor q_tensor(std::string name, std::vector<int64_t> shape, int bits, std::vector<int8_t> q = {},
                std::vector<uint16_t> scales = {}) {
  Tensor t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  t.kind = Tensor::Kind::Quantized;
  t.bits = bits;
  t.q = std::move(q);
  t.scales = std::move(scales);
  return t;
}

Tensor f16_tensor(std::string name, std::vector<int64_t> shape, std::vector<uint16_t> values = {}) {
  Tensor t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  t.kind = Tensor::Kind::Float16;
  t.values = std::move(values);
  return t;
}

Tensor quantized(std::string name, std::vector<int64_t> shape, int bits, std::mt19937& rng) {
  Tensor t = q_tensor(std::move(name), std::move(shape), bits);
  int64_t n = 1;
  for (const int64_t d : t.shape) n *= d;
  const int qmax = (1 << (bits - 1)) - 1;
  std::uniform_int_distribution<int> code(-qmax, qmax);
  for (int64_t i = 0; i < n; ++i) t.q.push_back(static_cast<int8_t>(code(rng)));
  std::uniform_real_distribution<float> scale(1e-4f, 0.1f);
  for (int64_t r = 0; r < t.shape[0]; ++r) t.scales.push_back(to_half(scale(rng)));
  return t;
}

Tensor float16(std::string name, std::vector<int64_t> shape, std::mt19937& rng) {
  Tensor t = f16_tensor(std::move(name), std::move(shape));
  int64_t n = 1;
  for (const int64_t d : t.shape) n *= d;
  // Any bit pattern, NaN and Inf included: passthrough values are kept bit-exact.
  std::uniform_int_distribution<int> bits(0, 0xffff);
  for (int64_t i = 0; i < n; ++i) t.values.push_back(static_cast<uint16_t>(bits(rng)));
  return t;
}

// int6/int7/int8 matrices, fp16 vectors, a 0-d scalar and empty tensors, deliberately not in name order.
Artifact random_artifact(uint32_t seed) {
  std::mt19937 rng(seed);
  Artifact a;
  a.config_json = R"({"model_dim": 32, "num_layers": 1, "vocab_size": 48})";
  a.tensors.push_back(quantized("tok_emb.weight", {48, 32}, 7, rng));
  a.tensors.push_back(quantized("blocks.0.mlp.fc.weight", {64, 32}, 6, rng));
  a.tensors.push_back(quantized("blocks.0.attn.c_q.weight", {32, 32}, 6, rng));
  a.tensors.push_back(quantized("blocks.0.attn.attn_gate_proj.weight", {4, 12}, 8, rng));
  a.tensors.push_back(quantized("bigram.weight", {16, 2, 3}, 5, rng));
  a.tensors.push_back(quantized("empty_rows.weight", {0, 32}, 6, rng));
  a.tensors.push_back(quantized("empty_cols.weight", {3, 0}, 6, rng));
  a.tensors.push_back(float16("blocks.0.attn.q_gain", {4}, rng));
  a.tensors.push_back(float16("skip_weights", {2, 32}, rng));
  a.tensors.push_back(float16("smear_lambda", {}, rng));
  a.tensors.push_back(float16("empty_passthrough", {0}, rng));
  return a;
}

Artifact sorted(Artifact a) {
  std::sort(a.tensors.begin(), a.tensors.end(), [](const Tensor& x, const Tensor& y) { return x.name < y.name; });
  return a;
}

// A small artifact, so that exhaustive corruption tests stay fast.
Artifact tiny_artifact() {
  Artifact a;
  a.config_json = R"({"d":2})";
  a.tensors.push_back(q_tensor("w", {2, 2}, 6, {1, -31, 31, 0}, {0x3c00, 0x2e66}));
  a.tensors.push_back(f16_tensor("g", {2}, {0x3c00, 0xbc00}));
  return a;
}

// The error deserialize() raises for `bytes`, or "" if it accepts them. Anything other than a
// golf::Error escaping fails the calling test.
std::string read_error(const Bytes& bytes, const std::string& source = "model.gpak") {
  return test::error_of([&] { deserialize(bytes, source); });
}

std::string payload_error(const Bytes& payload) {
  return test::error_of([&] { decode_payload(payload, "p.gpak"); });
}

// The container built by hand from the documented layout (independent of serialize()), so that a
// forged payload gets a valid checksum and reaches the payload checks.
Bytes container(const Bytes& payload, uint8_t stride = 2, int64_t payload_size_field = -1, uint8_t version = 1) {
  Bytes shuffled(payload.size());
  size_t next = 0;
  for (size_t lane = 0; lane < stride; ++lane)
    for (size_t i = lane; i < payload.size(); i += stride) shuffled[next++] = payload[i];
  size_t stream_size = BrotliEncoderMaxCompressedSize(shuffled.size());
  Bytes stream(stream_size);
  EXPECT_TRUE(BrotliEncoderCompress(5, 22, BROTLI_MODE_GENERIC, shuffled.size(), shuffled.data(), &stream_size, stream.data()));
  stream.resize(stream_size);
  Bytes file = {'G', 'P', 'A', 'K', version, stride};
  const auto u32 = [&file](uint64_t v) {
    for (int i = 0; i < 4; ++i) file.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  u32(payload_size_field >= 0 ? static_cast<uint64_t>(payload_size_field) : payload.size());
  u32(stream.size());
  uint64_t crc = lzma_crc64(file.data(), file.size(), 0);
  crc = lzma_crc64(stream.data(), stream.size(), crc);
  for (int i = 0; i < 8; ++i) file.push_back(static_cast<uint8_t>(crc >> (8 * i)));
  file.insert(file.end(), stream.begin(), stream.end());
  return file;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---- byte shuffle -----------------------------------------------------------------------------

TEST(ByteShuffle, MatchesHandWrittenLayout) {
  const Bytes in = {10, 11, 12, 13, 14, 15, 16};
  EXPECT_EQ(byte_shuffle(in, 2), (Bytes{10, 12, 14, 16, 11, 13, 15}));
  EXPECT_EQ(byte_shuffle(in, 3), (Bytes{10, 13, 16, 11, 14, 12, 15}));
  EXPECT_EQ(byte_shuffle(in, 1), in);
  EXPECT_EQ(byte_unshuffle(Bytes{10, 13, 16, 11, 14, 12, 15}, 3), in);
}

TEST(ByteShuffle, RoundTripsEveryLengthAndStride) {
  std::mt19937 rng(7);
  for (const size_t n : {0, 1, 2, 3, 5, 8, 9, 1001, 100003}) {
    Bytes in(n);
    for (auto& b : in) b = static_cast<uint8_t>(rng());
    for (const int stride : {1, 2, 3, 4, 8}) {
      const Bytes out = byte_shuffle(in, stride);
      ASSERT_EQ(out.size(), n);
      // Lane p holds floor(n/stride) + (p < n mod stride) bytes; its first byte is in[p].
      if (stride > 1 && n >= static_cast<size_t>(stride)) {
        EXPECT_EQ(out[n / stride + (n % stride > 0)], in[1]) << "length " << n << ", stride " << stride;
      }
      EXPECT_EQ(byte_unshuffle(out, stride), in) << "length " << n << ", stride " << stride;
    }
  }
}

TEST(ByteShuffle, RejectsStrideBelowOne) {
  EXPECT_THROW(byte_shuffle(Bytes{1, 2}, 0), Error);
  EXPECT_THROW(byte_unshuffle(Bytes{1, 2}, -1), Error);
}

// ---- round trips and layout -------------------------------------------------------------------

TEST(Artifact, RandomTensorsRoundTripExactly) {
  for (uint32_t seed = 0; seed < 5; ++seed) {
    const Artifact a = random_artifact(seed);
    const Artifact back = deserialize(serialize(a));
    EXPECT_EQ(back, sorted(a)) << "seed " << seed;
  }
}

TEST(Artifact, EveryStrideAndQualityRoundTrips) {
  const Artifact a = random_artifact(1);
  for (const int stride : {1, 2, 4, 8})
    for (const int quality : {0, 5, 11}) {
      const Bytes file = serialize(a, {.shuffle_stride = stride, .brotli_quality = quality, .brotli_candidates = {{18, 0}}});
      EXPECT_EQ(file[5], stride);
      EXPECT_EQ(deserialize(file), sorted(a)) << "stride " << stride << ", quality " << quality;
    }
}

TEST(Artifact, EmptyArtifactRoundTrips) {
  const Bytes file = serialize(Artifact{});
  EXPECT_EQ(deserialize(file), Artifact{});
  EXPECT_LT(file.size(), 40u);  // 22-byte header + a tiny stream
}

TEST(Artifact, SerializationIsDeterministicAndIndependentOfTensorOrder) {
  Artifact a = random_artifact(3);
  const Bytes first = serialize(a);
  EXPECT_EQ(serialize(a), first);
  std::mt19937 rng(11);
  for (int i = 0; i < 3; ++i) {
    std::shuffle(a.tensors.begin(), a.tensors.end(), rng);
    EXPECT_EQ(serialize(a), first);
  }
}

TEST(Artifact, HeaderMatchesTheDocumentedLayout) {
  const Artifact a = random_artifact(2);
  const Bytes file = serialize(a);
  const Bytes payload = encode_payload(a);
  ASSERT_GT(file.size(), kHeaderBytes);
  EXPECT_EQ(Bytes(file.begin(), file.begin() + 4), (Bytes{'G', 'P', 'A', 'K'}));
  EXPECT_EQ(file[4], 1);
  EXPECT_EQ(file[5], 2);
  uint32_t payload_size, stream_size;
  uint64_t crc;
  std::memcpy(&payload_size, &file[6], 4);
  std::memcpy(&stream_size, &file[10], 4);
  std::memcpy(&crc, &file[14], 8);
  EXPECT_EQ(payload_size, payload.size());
  EXPECT_EQ(stream_size, file.size() - 22);
  EXPECT_EQ(crc, lzma_crc64(&file[22], stream_size, lzma_crc64(file.data(), 14, 0)));
  const Header h = read_header(file);
  EXPECT_EQ(h.payload_bytes, payload_size);
  EXPECT_EQ(h.crc64, crc);
  // A container built by hand from the documentation reads back the same artifact.
  EXPECT_EQ(deserialize(container(payload)), sorted(a));
}

TEST(Artifact, PayloadMatchesHandWrittenBytes) {
  Artifact a;
  a.tensors.push_back(f16_tensor("b", {1}, {0x1234}));
  a.tensors.push_back(q_tensor("a", {2, 1}, 2, {1, -1}, {0x3c00, 0x4000}));
  const Bytes expected = {
      0, 0, 0, 0,                                      // config length 0
      2, 0, 0, 0,                                      // 2 tensors, in name order:
      1, 0, 'a', 1, 2, 2, 2, 0, 0, 0, 1, 0, 0, 0,      //   "a" quantized, 2 bits, dims [2, 1]
      1, 0, 'b', 2, 0, 1, 1, 0, 0, 0,                  //   "b" float16, dims [1]
      0x01, 0xff, 0, 0, 0, 0, 0, 0,                    // codes at offset 32, padded to 40
      0x00, 0x3c, 0x00, 0x40, 0, 0, 0, 0,              // scales, padded to 48
      0x34, 0x12};                                     // float16 values
  EXPECT_EQ(encode_payload(a), expected);
  EXPECT_EQ(decode_payload(expected), sorted(a));
}

// ---- format version 2: grouped tensors (LQER factors) ------------------------------------------

Tensor g_tensor(std::string name, std::vector<int64_t> shape, int bits, int64_t group, std::vector<int8_t> q,
                std::vector<uint16_t> scales) {
  Tensor t = q_tensor(std::move(name), std::move(shape), bits, std::move(q), std::move(scales));
  t.kind = Tensor::Kind::Grouped;
  t.group = group;
  return t;
}

TEST(ArtifactV2, GroupedPayloadMatchesHandWrittenBytes) {
  Artifact a;
  a.tensors.push_back(g_tensor("a", {2, 2}, 2, 4, {-2, 1, 0, -1}, {0x3c00}));  // int2 [-2, 1], one scale
  const Bytes payload = encode_payload(a);
  const Bytes want = {
      0, 0, 0, 0,                                       // config length 0
      1, 0, 0, 0,                                       // 1 tensor:
      1, 0, 'a', 3, 2, 2, 2, 0, 0, 0, 2, 0, 0, 0,       //   "a" grouped, 2 bits, dims [2, 2]
      4, 0, 0, 0,                                       //   group 4 (table ends at offset 26)
      0, 0, 0, 0, 0, 0,                                 // padding to 32
      0xfe, 0x01, 0x00, 0xff, 0, 0, 0, 0,               // codes, padded to 40
      0x00, 0x3c, 0, 0, 0, 0, 0, 0};                    // one scale, padded to 48 (no float16 values)
  EXPECT_EQ(payload, want);
  EXPECT_EQ(decode_payload(want), a);
}

TEST(ArtifactV2, VersionTwoIsWrittenExactlyWhenAGroupedTensorIsPresent) {
  Artifact a = random_artifact(4);
  EXPECT_EQ(required_version(a, PackOptions{}), 1);
  EXPECT_EQ(serialize(a)[4], 1);  // artifacts without grouped tensors keep their version-1 bytes
  a.tensors.push_back(g_tensor("tok_emb.weight.lqB", {4, 32}, 4, 64, std::vector<int8_t>(128, -8),
                               std::vector<uint16_t>(2, 0x2e66)));
  a.tensors.push_back(g_tensor("tok_emb.weight.lqA", {48, 4}, 2, 192, std::vector<int8_t>(192, 1), {0x3c00}));
  EXPECT_EQ(required_version(a, PackOptions{}), 2);
  const Bytes file = serialize(a);
  EXPECT_EQ(file[4], 2);
  EXPECT_EQ(deserialize(file), sorted(a));
}

TEST(ArtifactV2, VersionTwoIsWrittenWhenTheCompressorIsNotBrotli) {
  const Artifact a = random_artifact(4);
  PackOptions o;
  o.compressor = Compressor::Golf;
  EXPECT_EQ(required_version(a, o), 2);
  Bytes file = serialize(a, o);
  EXPECT_EQ(file[4], 2);
  EXPECT_EQ(deserialize(file), sorted(a));
  file[4] = 1;  // a version-1 header cannot announce another compressor (checked before the CRC)
  EXPECT_NE(test::error_of([&] { read_header(file); }).find("needs format version 2"), std::string::npos);
}

TEST(ArtifactV2, GroupedTensorsInAVersionOnePayloadAreRefused) {
  Artifact a;
  a.tensors.push_back(g_tensor("w.lqA", {2, 2}, 2, 4, {-2, 1, 0, -1}, {0x3c00}));
  const Bytes payload = encode_payload(a);
  const std::string msg = read_error(container(payload, 2, -1, /*version=*/1));
  EXPECT_TRUE(contains(msg, "tensor 'w.lqA': kind 3 (grouped) needs format version 2, the file says version 1")) << msg;
  EXPECT_EQ(deserialize(container(payload, 2, -1, /*version=*/2)), a);
}

TEST(ArtifactV2, UnrepresentableGroupedTensorsAreNamed) {
  const auto error = [](Tensor t) {
    Artifact a;
    a.tensors.push_back(std::move(t));
    return test::error_of([&] { serialize(a); });
  };
  EXPECT_TRUE(contains(error(g_tensor("g", {2, 3}, 4, 4, std::vector<int8_t>(6, 0), {0x3c00})),
                       "tensor 'g': group 4 does not divide its 6 elements (shape 2x3)"));
  EXPECT_TRUE(contains(error(g_tensor("g", {2, 2}, 2, 4, {-3, 0, 0, 0}, {0x3c00})),
                       "tensor 'g': code -3 at element 0 is outside [-2, 1] (2-bit)"));
  EXPECT_TRUE(contains(error(g_tensor("g", {2, 2}, 2, 2, {0, 0, 0, 0}, {0x3c00})), "scales has 1 entries"));
  EXPECT_TRUE(contains(error(g_tensor("g", {2, 2}, 2, 4, {0, 0, 0, 0}, {0x7c00})), "scale of group 0 is not finite"));
  Tensor plain = q_tensor("q", {1, 1}, 6, {0}, {0x3c00});
  plain.group = 3;
  EXPECT_TRUE(contains(error(plain), "tensor 'q': group 3 set on a tensor that is not grouped"));
}

TEST(Artifact, WriteIsAtomicAndReadsBack) {
  TempDir dir;
  const Bytes file = serialize(tiny_artifact());
  write_artifact(dir / "model.gpak", file);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.gpak"});
  EXPECT_EQ(read_file_bytes(dir / "model.gpak"), file);
  EXPECT_THROW(read_file_bytes(dir / "missing.gpak"), Error);
}

// ---- what serialize() refuses -----------------------------------------------------------------

std::string write_error(const Artifact& a, const PackOptions& o = {}) {
  try {
    serialize(a, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Artifact, SerializeRejectsUnrepresentableTensors) {
  Artifact a = tiny_artifact();
  a.tensors[0].q[2] = 32;
  EXPECT_TRUE(contains(write_error(a), "tensor 'w': code 32 at element 2 is outside ±31 (6-bit)")) << write_error(a);
  a = tiny_artifact();
  a.tensors[0].q[1] = -32;  // the most negative int6 value is never used
  EXPECT_TRUE(contains(write_error(a), "code -32")) << write_error(a);
  a = tiny_artifact();
  a.tensors[0].scales.pop_back();
  EXPECT_TRUE(contains(write_error(a), "scales has 1 entries, shape 2x2 needs 2")) << write_error(a);
  a = tiny_artifact();
  a.tensors[0].bits = 9;
  EXPECT_TRUE(contains(write_error(a), "bits 9 is outside 2..8")) << write_error(a);
  a = tiny_artifact();
  a.tensors[0].scales[1] = 0x7e00;  // NaN
  EXPECT_TRUE(contains(write_error(a), "scale of row 1 is not finite")) << write_error(a);
  a = tiny_artifact();
  a.tensors[1].name = "w";
  EXPECT_TRUE(contains(write_error(a), "two tensors are named 'w'")) << write_error(a);
  a = tiny_artifact();
  a.tensors[1].values.push_back(0);
  EXPECT_TRUE(contains(write_error(a), "values has 3 entries, shape 2 needs 2")) << write_error(a);
  a = tiny_artifact();
  a.tensors[0].shape = {};
  a.tensors[0].q.resize(1);
  EXPECT_TRUE(contains(write_error(a), "needs at least one dimension")) << write_error(a);
  a = tiny_artifact();
  a.tensors[1].shape = {-2};
  EXPECT_TRUE(contains(write_error(a), "dimension -2")) << write_error(a);
  a = tiny_artifact();
  a.config_json = "{not json";
  EXPECT_TRUE(contains(write_error(a), "config_json is not valid JSON")) << write_error(a);
  EXPECT_TRUE(contains(write_error(tiny_artifact(), {.shuffle_stride = 3}), "shuffle stride 3 is invalid"));
  EXPECT_TRUE(contains(write_error(tiny_artifact(), {.brotli_quality = 12}), "Brotli quality 12"));
  EXPECT_TRUE(contains(write_error(tiny_artifact(), {.brotli_candidates = {{25, 0}}}), "Brotli window 25"));
}

// ---- damage on read ---------------------------------------------------------------------------

TEST(ArtifactDamage, TruncationAtEveryOffsetIsAClearError) {
  const Bytes file = serialize(tiny_artifact());
  for (size_t n = 0; n < file.size(); ++n) {
    const std::string msg = read_error(Bytes(file.begin(), file.begin() + n));
    EXPECT_TRUE(contains(msg, "model.gpak: ")) << n << ": " << msg;
    EXPECT_TRUE(contains(msg, n < 4 ? "too short" : "truncated")) << n << ": " << msg;
  }
}

TEST(ArtifactDamage, EveryFlippedBitIsCaught) {
  const Bytes file = serialize(tiny_artifact());
  ASSERT_LT(file.size(), 120u);
  for (size_t bit = 0; bit < file.size() * 8; ++bit) {
    Bytes bad = file;
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    const std::string msg = read_error(bad);
    EXPECT_TRUE(contains(msg, "model.gpak: ")) << "bit " << bit << " accepted or unclear: '" << msg << "'";
  }
}

TEST(ArtifactDamage, ChecksumCatchesStreamAndHeaderFlips) {
  const Bytes file = serialize(random_artifact(4));
  for (const size_t offset : {size_t{7}, size_t{14}, size_t{22}, file.size() / 2, file.size() - 1}) {
    Bytes bad = file;
    bad[offset] ^= 0x10;
    EXPECT_TRUE(contains(read_error(bad), "checksum mismatch")) << offset << ": " << read_error(bad);
  }
}

TEST(ArtifactDamage, ForeignFilesAndWrongVersionsAreNamed) {
  const Bytes zip = {'P', 'K', 3, 4, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_TRUE(contains(read_error(zip), "model.gpak: not a golf artifact: starts with 50 4b 03 04")) << read_error(zip);
  EXPECT_TRUE(contains(read_error({}), "model.gpak: 0 bytes, too short")) << read_error({});
  Bytes file = serialize(tiny_artifact());
  file[4] = 3;
  EXPECT_TRUE(contains(read_error(file), "format version 3 is not supported (this build reads versions 1 to 2)"))
      << read_error(file);
  file[4] = 0;
  EXPECT_TRUE(contains(read_error(file), "format version 0 is not supported")) << read_error(file);
  file[4] = 1;
  file[5] = 3;
  EXPECT_TRUE(contains(read_error(file), "shuffle stride 3 is invalid"));
  file[5] = 2;
  file.push_back(0);
  EXPECT_TRUE(contains(read_error(file), "1 trailing bytes after")) << read_error(file);
}

TEST(ArtifactDamage, StreamSizeMismatchesAreCaughtBehindAValidChecksum) {
  const Bytes payload = encode_payload(tiny_artifact());
  EXPECT_EQ(deserialize(container(payload)), sorted(tiny_artifact()));
  EXPECT_TRUE(contains(read_error(container(payload, 2, static_cast<int64_t>(payload.size()) + 1)),
                       fmt::format("the Brotli stream holds {} bytes, expected {}", payload.size(), payload.size() + 1)));
  EXPECT_TRUE(contains(read_error(container(payload, 2, static_cast<int64_t>(payload.size()) - 1)),
                       "the Brotli stream holds more than the expected"));
  EXPECT_TRUE(contains(read_error(container(payload, 2, int64_t{1} << 31)), "exceeds the format's limit"));
}

// Payload fields edited one at a time (offsets from PayloadMatchesHandWrittenBytes' layout).
TEST(ArtifactDamage, ForgedPayloadFieldsAreRejected) {
  Artifact a;
  a.tensors.push_back(q_tensor("a", {2, 1}, 2, {1, -1}, {0x3c00, 0x4000}));
  a.tensors.push_back(f16_tensor("b", {1}, {0x1234}));
  const Bytes good = encode_payload(a);
  const auto edited = [&](size_t offset, uint8_t value) {
    Bytes p = good;
    p[offset] = value;
    return payload_error(p);
  };
  EXPECT_TRUE(contains(edited(32, 2), "tensor 'a': code 2 at element 0 is outside ±1 (2-bit)")) << edited(32, 2);
  EXPECT_TRUE(contains(edited(11, 4), "tensor 'a': unknown kind 4"));
  {  // kind 3 (grouped) is version 2's: refused in a version-1 payload, read as grouped in version 2
    Bytes p = good;
    p[11] = 3;
    EXPECT_TRUE(contains(test::error_of([&] { decode_payload(p, "p.gpak", 1); }),
                         "tensor 'a': kind 3 (grouped) needs format version 2, the file says version 1"));
    EXPECT_FALSE(payload_error(p).empty());  // the table entry then lacks its group field
  }
  EXPECT_TRUE(contains(edited(12, 9), "bits 9 is outside 2..8"));
  EXPECT_TRUE(contains(edited(26, 1), "float16 tensor has bits 1"));
  EXPECT_TRUE(contains(edited(24, 'a'), "tensor 'a' follows 'a': names must be unique and in ascending order"));
  EXPECT_TRUE(contains(edited(10, 'c'), "tensor 'b' follows 'c'"));
  EXPECT_TRUE(contains(edited(8, 0), "table entry 0 has an empty name"));
  EXPECT_TRUE(contains(edited(13, 0), "a quantized tensor needs at least one dimension"));
  EXPECT_TRUE(contains(edited(34, 1), "non-zero padding byte 1 before the scales"));
  EXPECT_TRUE(contains(edited(43, 0x7c), "scale of row 1 is not finite"));
  EXPECT_TRUE(contains(edited(4, 0xff), "tensor count 255 cannot fit")) << edited(4, 0xff);
  EXPECT_TRUE(contains(edited(7, 0xff), "exceeds the format's limit of 65536"));
  EXPECT_TRUE(contains(edited(3, 0xff), "payload truncated in the config JSON")) << edited(3, 0xff);
  EXPECT_TRUE(contains(edited(0, 4), "the config (4 bytes) is not valid JSON")) << edited(0, 4);
  EXPECT_TRUE(contains(edited(17, 0xff), "shape 4278190082x1 has more elements than the 50-byte payload can hold"))
      << edited(17, 0xff);
  EXPECT_TRUE(contains(edited(14, 30), "need more data than the 50-byte payload holds")) << edited(14, 30);
  Bytes longer = good;
  longer.push_back(0);
  EXPECT_TRUE(contains(payload_error(longer), "1 bytes follow the float16 values"));
  Bytes with_config = good;
  with_config[0] = 2;
  with_config.insert(with_config.begin() + 4, {'{', '['});
  EXPECT_TRUE(contains(payload_error(with_config), "the config (2 bytes) is not valid JSON"));
  EXPECT_EQ(payload_error(good), "");
}

// A miniature fuzzer in the test suite: random payload edits behind a valid checksum either
// decode (the edit hit a float16 value) or raise golf::Error, never anything else.
TEST(ArtifactDamage, MutatedPayloadsAreCleanErrors) {
  const Bytes good = encode_payload(random_artifact(5));
  std::mt19937 rng(5);
  int accepted = 0;
  for (int i = 0; i < 300; ++i) {
    Bytes p = good;
    for (int k = 0, edits = 1 + static_cast<int>(rng() % 3); k < edits; ++k) p[rng() % p.size()] = static_cast<uint8_t>(rng());
    if (rng() % 4 == 0) p.resize(rng() % p.size());
    accepted += read_error(container(p)).empty();
  }
  EXPECT_LT(accepted, 300);
}

// ---- accounting -------------------------------------------------------------------------------

TEST(GroupStats, GroupsFollowTheRecordsNaming) {
  EXPECT_EQ(group_of("tok_emb.weight"), "embedding");
  EXPECT_EQ(group_of("blocks.3.attn.c_q.weight"), "attention");
  EXPECT_EQ(group_of("blocks.3.mlp.proj.weight"), "mlp");
  EXPECT_EQ(group_of("bigram.weight"), "other quantized");
  EXPECT_EQ(group_of("blocks.3.attn.q_gain", Tensor::Kind::Float16), "fp16 passthrough");
  EXPECT_EQ(group_of("tok_emb.weight", Tensor::Kind::Float16), "fp16 passthrough");
}

TEST(GroupStats, CountsParamsBytesAndEntropyPerGroup) {
  Artifact a;
  // Codes -1 and +1 in equal numbers: exactly 1 bit of order-0 entropy per weight.
  Tensor mlp = q_tensor("blocks.0.mlp.fc.weight", {64, 64}, 6);
  for (int i = 0; i < 64 * 64; ++i) mlp.q.push_back(static_cast<int8_t>(i % 2 ? 1 : -1));
  mlp.scales.assign(64, 0x2000);
  a.tensors.push_back(mlp);
  std::mt19937 rng(1);
  a.tensors.push_back(quantized("tok_emb.weight", {32, 16}, 7, rng));
  a.tensors.push_back(float16("blocks.0.attn.q_gain", {8}, rng));
  const auto stats = group_stats(a);
  ASSERT_EQ(stats.size(), 3u);
  EXPECT_EQ(stats[0].group, "embedding");
  EXPECT_EQ(stats[1].group, "mlp");
  EXPECT_EQ(stats[2].group, "fp16 passthrough");
  EXPECT_EQ(stats[1].tensors, 1);
  EXPECT_EQ(stats[1].params, 64 * 64);
  EXPECT_EQ(stats[1].raw_bytes, 64 * 64 + 2 * 64);
  EXPECT_DOUBLE_EQ(stats[1].entropy_bits, 1.0);
  EXPECT_GT(stats[1].compressed_bytes, 0);
  EXPECT_LT(stats[1].compressed_bytes, 200);  // a strictly alternating pattern compresses to almost nothing
  EXPECT_DOUBLE_EQ(stats[1].bits_per_weight, stats[1].compressed_bytes * 8.0 / (64 * 64));
  EXPECT_EQ(stats[0].raw_bytes, 32 * 16 + 2 * 32);
  EXPECT_GT(stats[0].entropy_bits, 6.5);  // uniform over 127 codes: log2(127) = 6.99
  EXPECT_LE(stats[0].entropy_bits, std::log2(127.0));
  EXPECT_EQ(stats[2].params, 8);
  EXPECT_EQ(stats[2].raw_bytes, 16);
}

TEST(GroupStats, DescribeShowsHeaderTableAndGroups) {
  const Artifact a = random_artifact(6);
  const Bytes file = serialize(a);
  const std::string text = describe(a, file);
  for (const std::string& part : std::vector<std::string>{"artifact: " + with_commas(static_cast<int64_t>(file.size())) + " bytes", "format version 1", "shuffle stride 2",
                                 "blocks.0.mlp.fc.weight", "64x32", "scalar", "embedding", "attention", "mlp",
                                 "other quantized", "fp16 passthrough", "vs entropy"})
    EXPECT_TRUE(contains(text, part)) << "missing '" << part << "' in:\n" << text;
}

// golf-pack inspect's default: the cheap columns only (compressing every group alone takes as
// long as packing); the counts and the entropy are those of the full report.
TEST(GroupStats, WithoutCompressionOnlyTheCheapColumns) {
  const Artifact a = random_artifact(6);
  const auto full = group_stats(a), cheap = group_stats(a, {}, /*compress=*/false);
  ASSERT_EQ(cheap.size(), full.size());
  for (size_t i = 0; i < full.size(); ++i) {
    EXPECT_EQ(cheap[i].group, full[i].group);
    EXPECT_EQ(cheap[i].params, full[i].params);
    EXPECT_EQ(cheap[i].raw_bytes, full[i].raw_bytes);
    EXPECT_EQ(cheap[i].entropy_bits, full[i].entropy_bits);
    EXPECT_EQ(cheap[i].compressed_bytes, 0);
    EXPECT_GT(full[i].compressed_bytes, 0);
  }
  const Bytes file = serialize(a);
  const std::string text = describe(a, file, {}, /*compress_groups=*/false);
  EXPECT_TRUE(contains(text, "entropy bytes")) << text;
  EXPECT_TRUE(contains(text, "--compress-groups")) << text;
  EXPECT_FALSE(contains(text, "vs entropy")) << text;
}

TEST(GroupStats, WithCommasGroupsThousands) {
  EXPECT_EQ(with_commas(0), "0");
  EXPECT_EQ(with_commas(999), "999");
  EXPECT_EQ(with_commas(16000000), "16,000,000");
  EXPECT_EQ(with_commas(-1234567), "-1,234,567");
  EXPECT_EQ(with_commas(INT64_MIN), "-9,223,372,036,854,775,808");  // its magnitude is no int64_t
}

// ---- benchmark (run with --gtest_also_run_disabled_tests) -------------------------------------

// Realistic payload: SDClip int6 codes (k = 12.85: q = clamp(round(z·31/12.85)), z ~ N(0,1)) for
// attention and MLP matrices, int7 embedding (k = 15), fp16 row scales and a few fp16 vectors;
// compares Brotli with and without the shuffle against xz -9e and the order-0 entropy.
TEST(PackBenchmark, DISABLED_CompressorComparison) {
  std::mt19937 rng(2024);
  std::normal_distribution<float> z(0.f, 1.f);
  std::uniform_real_distribution<float> sigma(0.015f, 0.03f);
  const auto sdclip = [&](std::string name, int64_t rows, int64_t cols, int bits, float k) {
    Tensor t = q_tensor(std::move(name), {rows, cols}, bits);
    const int qmax = (1 << (bits - 1)) - 1;
    for (int64_t i = 0; i < rows * cols; ++i)
      t.q.push_back(static_cast<int8_t>(std::clamp(static_cast<int>(std::nearbyint(z(rng) * qmax / k)), -qmax, qmax)));
    for (int64_t r = 0; r < rows; ++r) t.scales.push_back(to_half(k * sigma(rng) / qmax));
    return t;
  };
  Artifact a;
  a.config_json = R"({"model_dim": 512, "num_layers": 4, "vocab_size": 8192})";
  for (int l = 0; l < 4; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    for (const char* m : {"attn.c_q.weight", "attn.proj.weight"}) a.tensors.push_back(sdclip(b + m, 512, 512, 6, 12.85f));
    for (const char* m : {"attn.c_k.weight", "attn.c_v.weight"}) a.tensors.push_back(sdclip(b + m, 256, 512, 6, 12.85f));
    a.tensors.push_back(sdclip(b + "mlp.fc.weight", 2048, 512, 6, 12.85f));
    a.tensors.push_back(sdclip(b + "mlp.proj.weight", 512, 2048, 6, 12.85f));
    Tensor gain = f16_tensor(b + "attn.q_gain", {8});
    for (int i = 0; i < 8; ++i) gain.values.push_back(to_half(5.f + 0.3f * z(rng)));
    a.tensors.push_back(gain);
    Tensor scale = f16_tensor(b + "mlp_scale", {512});
    for (int i = 0; i < 512; ++i) scale.values.push_back(to_half(1.f + 0.1f * z(rng)));
    a.tensors.push_back(scale);
  }
  a.tensors.push_back(sdclip("tok_emb.weight", 8192, 512, 7, 15.f));

  const Bytes payload = encode_payload(a);
  int64_t params = 0;
  for (const Tensor& t : a.tensors) params += static_cast<int64_t>(t.q.size() + t.values.size());
  const auto report = [&](const std::string& what, size_t bytes, double seconds) {
    std::printf("  %-34s %12s bytes  %.3f bits/weight  %6.1f s\n", what.c_str(), with_commas(static_cast<int64_t>(bytes)).c_str(),
                bytes * 8.0 / params, seconds);
  };
  const auto timed = [](auto f) {
    const auto t0 = std::chrono::steady_clock::now();
    const size_t bytes = f();
    return std::pair{bytes, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
  };
  std::printf("payload %s bytes, %s params\n", with_commas(static_cast<int64_t>(payload.size())).c_str(),
              with_commas(params).c_str());
  for (const auto& [name, options] : std::vector<std::pair<std::string, PackOptions>>{
           {"brotli q11 best of w22/w24, shuffle 2 (default)", {}},
           {"brotli q11 w24, no shuffle", {.shuffle_stride = 1, .brotli_candidates = {{24, 0}}}},
           {"brotli q11 w22, shuffle 2", {.brotli_candidates = {{22, 0}}}}}) {
    const PackOptions o = options;
    const auto [bytes, s] = timed([&] { return serialize(a, o).size(); });
    report(name, bytes, s);
  }
  for (const int stride : {2, 1}) {
    const auto [bytes, s] = timed([&] {
      const Bytes in = byte_shuffle(payload, stride);
      Bytes out(lzma_stream_buffer_bound(in.size()));
      size_t size = 0;
      lzma_easy_buffer_encode(9 | LZMA_PRESET_EXTREME, LZMA_CHECK_CRC64, nullptr, in.data(), in.size(), out.data(), &size,
                              out.size());
      return size;
    });
    report(stride == 2 ? "xz -9e, shuffle 2" : "xz -9e, no shuffle", bytes, s);
  }
  for (const GroupStats& g : group_stats(a))
    std::printf("  group %-16s %12s bytes  %.3f bits/weight, entropy %.3f (%+.1f%%)\n", g.group.c_str(),
                with_commas(g.compressed_bytes).c_str(), g.bits_per_weight, g.entropy_bits,
                g.entropy_bits > 0 ? (g.bits_per_weight / g.entropy_bits - 1) * 100 : 0.0);
}

}  // namespace
}  // namespace golf::artifact
