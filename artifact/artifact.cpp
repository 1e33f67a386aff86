// artifact/artifact.cpp — the artifact writer, its validating reader (format: artifact.h), and the
// per-group byte accounting. The reader treats every byte as hostile: each length is checked
// against what the remaining input can hold before anything is allocated.
#include "artifact/artifact.h"

#include <brotli/encode.h>
#include <fmt/ranges.h>
#include <lzma.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "artifact/grouped.h"

namespace golf::artifact {
namespace fs = std::filesystem;
static_assert(std::endian::native == std::endian::little, "the artifact is little-endian; so must the host be");

namespace {

constexpr std::array<uint8_t, 4> kMagic = {'G', 'P', 'A', 'K'};
constexpr size_t kCrcOffset = 14;  // the CRC covers [0, kCrcOffset) and the Brotli stream
constexpr size_t kStreamAlignment = 8;
// Smallest table entry: u16 name length, a 1-byte name, kind, bits, ndim.
constexpr size_t kMinTableEntryBytes = 2 + 1 + 1 + 1 + 1;
constexpr uint16_t kHalfExponentMask = 0x7C00;  // all ones: Inf or NaN

bool valid_stride(int s) { return s == 1 || s == 2 || s == 4 || s == 8; }
int qmax_of(int bits) { return (1 << (bits - 1)) - 1; }
int64_t rows_of(const Tensor& t) { return t.shape.empty() ? 1 : t.shape[0]; }
bool has_codes(const Tensor& t) { return t.kind == Tensor::Kind::Quantized || t.kind == Tensor::Kind::Grouped; }

// Names from hostile input can be long or binary; messages show a short, escaped form.
std::string printable(std::string_view name) {
  std::string out;
  for (size_t i = 0; i < name.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    out += (c >= 0x20 && c < 0x7F) ? std::string(1, static_cast<char>(c)) : fmt::format("\\x{:02x}", c);
  }
  if (name.size() > 80) out += fmt::format("… ({} bytes)", name.size());
  return out;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  return shape.empty() ? "scalar" : fmt::format("{}", fmt::join(shape, "x"));
}

bool valid_config(std::string_view json) { return json.empty() || nlohmann::json::accept(json); }

template <class T>
void put(std::vector<uint8_t>& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

void pad_to_alignment(std::vector<uint8_t>& out) {
  out.resize((out.size() + kStreamAlignment - 1) / kStreamAlignment * kStreamAlignment, 0);
}

// Tensors in name order; throws on a duplicate name.
std::vector<const Tensor*> sorted_tensors(const std::vector<Tensor>& tensors, const std::string& where) {
  std::vector<const Tensor*> order;
  for (const Tensor& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const Tensor* a, const Tensor* b) { return a->name < b->name; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->name == order[i - 1]->name) fail("{}: two tensors are named '{}'", where, printable(order[i]->name));
  return order;
}

// The Q, S and V streams of `tensors` (already in order), each starting 8-byte aligned relative
// to `out`'s start.
void append_streams(std::vector<uint8_t>& out, const std::vector<const Tensor*>& tensors,
                    std::vector<CodeSpan>* code_spans = nullptr) {
  pad_to_alignment(out);
  for (const Tensor* t : tensors)
    if (has_codes(*t)) {
      const auto* p = reinterpret_cast<const uint8_t*>(t->q.data());
      const uint32_t rows = static_cast<uint32_t>(rows_of(*t));
      if (code_spans && !t->q.empty())
        code_spans->push_back({out.size(), rows, static_cast<uint32_t>(t->q.size() / rows), t->name});
      out.insert(out.end(), p, p + t->q.size());
    }
  pad_to_alignment(out);
  for (const Tensor* t : tensors)
    if (has_codes(*t))
      for (const uint16_t s : t->scales) put(out, s);
  pad_to_alignment(out);
  for (const Tensor* t : tensors)
    if (t->kind == Tensor::Kind::Float16)
      for (const uint16_t v : t->values) put(out, v);
}

void check_options(const PackOptions& o) {
  if (!valid_stride(o.shuffle_stride)) fail("shuffle stride {} is invalid (1, 2, 4 or 8)", o.shuffle_stride);
  if (o.brotli_quality < BROTLI_MIN_QUALITY || o.brotli_quality > BROTLI_MAX_QUALITY)
    fail("Brotli quality {} is outside {}..{}", o.brotli_quality, BROTLI_MIN_QUALITY, BROTLI_MAX_QUALITY);
  if (o.brotli_candidates.empty()) fail("no Brotli settings to try");
  for (const BrotliSetting& b : o.brotli_candidates) {
    if (b.window < BROTLI_MIN_WINDOW_BITS || b.window > BROTLI_MAX_WINDOW_BITS)
      fail("Brotli window {} is outside {}..{}", b.window, BROTLI_MIN_WINDOW_BITS, BROTLI_MAX_WINDOW_BITS);
    if (b.mode < BROTLI_MODE_GENERIC || b.mode > BROTLI_MODE_FONT) fail("Brotli mode {} is not 0, 1 or 2", b.mode);
  }
  if (o.compressor != Compressor::Brotli && o.compressor != Compressor::PerGroup && o.compressor != Compressor::Golf)
    fail("compressor {} is unknown", static_cast<int>(o.compressor));
}

uint64_t artifact_crc(std::span<const uint8_t> file) {
  const uint64_t crc = lzma_crc64(file.data(), kCrcOffset, 0);
  return lzma_crc64(file.data() + kHeaderBytes, file.size() - kHeaderBytes, crc);
}

// memcpy that accepts the null data() of an empty vector (a zero-byte memcpy from/to null is UB).
void copy_bytes(void* to, const void* from, size_t n) {
  if (n) std::memcpy(to, from, n);
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Bounds-checked little-endian reads from the payload; every failure names the source and what
// was being read.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& source) : bytes_(bytes), source_(source) {}
  size_t left() const { return bytes_.size() - pos_; }
  size_t pos() const { return pos_; }
  std::span<const uint8_t> take(size_t n, std::string_view what) {
    if (n > left())
      fail("{}: payload truncated in {}: {} bytes needed at offset {}, {} left", source_, what, n, pos_, left());
    const auto s = bytes_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  template <class T>
  T get(std::string_view what) {
    return load<T>(take(sizeof(T), what).data());
  }
  void skip_padding(std::string_view before) {
    const size_t n = (kStreamAlignment - pos_ % kStreamAlignment) % kStreamAlignment;
    for (const uint8_t b : take(n, fmt::format("the padding before {}", before)))
      if (b != 0) fail("{}: non-zero padding byte {} before {}", source_, b, before);
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
  const std::string& source_;
};

// prod(dims), failing when it exceeds `limit` (what the payload could possibly hold).
uint64_t bounded_count(const std::vector<int64_t>& dims, uint64_t limit, const std::string& source,
                       const std::string& name) {
  if (std::find(dims.begin(), dims.end(), 0) != dims.end()) return 0;
  uint64_t n = 1;
  for (const int64_t d : dims)
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n) || n > limit)
      fail("{}: tensor '{}': shape {} has more elements than the {}-byte payload can hold", source, name,
           shape_text(dims), limit);
  return n;
}

}  // namespace

void check_tensor(const Tensor& t, const std::string& where) {
  const std::string name = printable(t.name);
  if (t.name.empty()) fail("{}: a tensor has an empty name", where);
  if (t.name.size() > std::numeric_limits<uint16_t>::max())
    fail("{}: tensor '{}': name is {} bytes, longer than 65535", where, name, t.name.size());
  if (t.shape.size() > std::numeric_limits<uint8_t>::max())
    fail("{}: tensor '{}': {} dimensions, more than 255", where, name, t.shape.size());
  int64_t numel = 1;
  for (const int64_t d : t.shape) {
    if (d < 0 || d > std::numeric_limits<uint32_t>::max())
      fail("{}: tensor '{}': dimension {} of shape {} is outside [0, 2^32)", where, name, d, shape_text(t.shape));
    if (__builtin_mul_overflow(numel, d, &numel)) fail("{}: tensor '{}': shape {} overflows", where, name, shape_text(t.shape));
  }
  const auto expect_size = [&](const char* field, size_t have, int64_t want) {
    if (have != static_cast<uint64_t>(want))
      fail("{}: tensor '{}': {} has {} entries, shape {} needs {}", where, name, field, have, shape_text(t.shape), want);
  };
  if (t.kind == Tensor::Kind::Float16) {
    if (t.bits != 0) fail("{}: tensor '{}': float16 tensor has bits {}, expected 0", where, name, t.bits);
    expect_size("q", t.q.size(), 0);
    expect_size("scales", t.scales.size(), 0);
    expect_size("values", t.values.size(), numel);
    return;
  }
  if (t.kind == Tensor::Kind::Grouped) {
    if (t.bits < 2 || t.bits > 8) fail("{}: tensor '{}': bits {} is outside 2..8", where, name, t.bits);
    if (t.shape.empty()) fail("{}: tensor '{}': a grouped tensor needs at least one dimension", where, name);
    if (t.group < 1 || t.group > std::numeric_limits<uint32_t>::max() || numel % t.group != 0)
      fail("{}: tensor '{}': group {} does not divide its {} elements (shape {})", where, name, t.group, numel,
           shape_text(t.shape));
    expect_size("q", t.q.size(), numel);
    expect_size("scales", t.scales.size(), numel / t.group);
    expect_size("values", t.values.size(), 0);
    const int lo = -(1 << (t.bits - 1)), hi = (1 << (t.bits - 1)) - 1;
    for (size_t i = 0; i < t.q.size(); ++i)
      if (t.q[i] < lo || t.q[i] > hi)
        fail("{}: tensor '{}': code {} at element {} is outside [{}, {}] ({}-bit)", where, name, t.q[i], i, lo, hi, t.bits);
    for (size_t g = 0; g < t.scales.size(); ++g)
      if ((t.scales[g] & kHalfExponentMask) == kHalfExponentMask)
        fail("{}: tensor '{}': scale of group {} is not finite (fp16 bits 0x{:04x})", where, name, g, t.scales[g]);
    return;
  }
  if (t.group != 0) fail("{}: tensor '{}': group {} set on a tensor that is not grouped", where, name, t.group);
  if (t.kind != Tensor::Kind::Quantized) fail("{}: tensor '{}': unknown kind {}", where, name, static_cast<int>(t.kind));
  if (t.bits < 2 || t.bits > 8) fail("{}: tensor '{}': bits {} is outside 2..8", where, name, t.bits);
  if (t.shape.empty()) fail("{}: tensor '{}': a quantized tensor needs at least one dimension (its rows)", where, name);
  expect_size("q", t.q.size(), numel);
  expect_size("scales", t.scales.size(), rows_of(t));
  expect_size("values", t.values.size(), 0);
  const int qmax = qmax_of(t.bits);
  for (size_t i = 0; i < t.q.size(); ++i)
    if (t.q[i] < -qmax || t.q[i] > qmax)
      fail("{}: tensor '{}': code {} at element {} is outside ±{} ({}-bit)", where, name, t.q[i], i, qmax, t.bits);
  for (size_t r = 0; r < t.scales.size(); ++r)
    if ((t.scales[r] & kHalfExponentMask) == kHalfExponentMask)
      fail("{}: tensor '{}': scale of row {} is not finite (fp16 bits 0x{:04x})", where, name, r, t.scales[r]);
}

Compressor compressor_from_name(const std::string& name) {
  if (name == "brotli") return Compressor::Brotli;
  if (name == "pergroup") return Compressor::PerGroup;
  if (name == "golf") return Compressor::Golf;
  fail("COMPRESSOR={} is unknown (brotli, pergroup or golf)", printable(name));
}

std::string compressor_name(Compressor c) {
  switch (c) {
    case Compressor::Brotli: return "brotli";
    case Compressor::PerGroup: return "pergroup";
    case Compressor::Golf: return "golf";
  }
  return fmt::format("compressor {}", static_cast<int>(c));
}

std::vector<uint8_t> encode_payload(const Artifact& a, std::vector<CodeSpan>* code_spans) {
  const std::string where = "artifact to write";
  if (!valid_config(a.config_json)) fail("{}: config_json is not valid JSON", where);
  if (a.config_json.size() > kMaxPayloadBytes) fail("{}: config_json is too long", where);
  if (a.tensors.size() > std::numeric_limits<uint32_t>::max()) fail("{}: too many tensors", where);
  const auto order = sorted_tensors(a.tensors, where);
  for (const Tensor* t : order) check_tensor(*t, where);
  std::vector<uint8_t> out;
  put(out, static_cast<uint32_t>(a.config_json.size()));
  out.insert(out.end(), a.config_json.begin(), a.config_json.end());
  put(out, static_cast<uint32_t>(order.size()));
  for (const Tensor* t : order) {
    put(out, static_cast<uint16_t>(t->name.size()));
    out.insert(out.end(), t->name.begin(), t->name.end());
    put(out, static_cast<uint8_t>(t->kind));
    put(out, static_cast<uint8_t>(t->bits));
    put(out, static_cast<uint8_t>(t->shape.size()));
    for (const int64_t d : t->shape) put(out, static_cast<uint32_t>(d));
    if (t->kind == Tensor::Kind::Grouped) put(out, static_cast<uint32_t>(t->group));
  }
  if (code_spans) code_spans->clear();
  append_streams(out, order, code_spans);
  if (out.size() > kMaxPayloadBytes) fail("{}: payload of {} bytes exceeds the 1 GiB format limit", where, out.size());
  return out;
}

uint8_t required_version(const Artifact& a, const PackOptions& o) {
  if (o.compressor != Compressor::Brotli) return 2;
  for (const Tensor& t : a.tensors)
    if (t.kind == Tensor::Kind::Grouped) return 2;
  return 1;
}

Artifact decode_payload(std::span<const uint8_t> payload, const std::string& source, uint8_t version) {
  Cursor in(payload, source);
  Artifact a;
  const auto config_bytes = in.get<uint32_t>("the config length");
  const auto config = in.take(config_bytes, "the config JSON");
  a.config_json.assign(config.begin(), config.end());
  if (!valid_config(a.config_json)) fail("{}: the config ({} bytes) is not valid JSON", source, config_bytes);

  const auto count = in.get<uint32_t>("the tensor count");
  if (count > kMaxTensors) fail("{}: tensor count {} exceeds the format's limit of {}", source, count, kMaxTensors);
  if (count > in.left() / kMinTableEntryBytes)
    fail("{}: tensor count {} cannot fit in the {} payload bytes left", source, count, in.left());
  // Element totals per stream, each bounded by the payload size, so no sum can overflow.
  const uint64_t limit = payload.size();
  uint64_t q_total = 0, scale_total = 0, value_total = 0;
  std::vector<uint64_t> numels;
  for (uint32_t i = 0; i < count; ++i) {
    Tensor& t = a.tensors.emplace_back();
    const std::string entry = fmt::format("table entry {}", i);
    const auto name_bytes = in.get<uint16_t>(entry);
    if (name_bytes == 0) fail("{}: {} has an empty name", source, entry);
    const auto name = in.take(name_bytes, entry);
    t.name.assign(name.begin(), name.end());
    if (i > 0 && !(a.tensors[i - 1].name < t.name))
      fail("{}: tensor '{}' follows '{}': names must be unique and in ascending order", source, printable(t.name),
           printable(a.tensors[i - 1].name));
    const auto kind = in.get<uint8_t>(entry);
    if (kind == static_cast<uint8_t>(Tensor::Kind::Grouped) && version < 2)
      fail("{}: tensor '{}': kind 3 (grouped) needs format version 2, the file says version {}", source,
           printable(t.name), version);
    if (kind != static_cast<uint8_t>(Tensor::Kind::Quantized) && kind != static_cast<uint8_t>(Tensor::Kind::Float16) &&
        kind != static_cast<uint8_t>(Tensor::Kind::Grouped))
      fail("{}: tensor '{}': unknown kind {}", source, printable(t.name), kind);
    t.kind = static_cast<Tensor::Kind>(kind);
    t.bits = in.get<uint8_t>(entry);
    const auto ndim = in.get<uint8_t>(entry);
    const auto dims = in.take(size_t{ndim} * 4, entry);
    for (size_t d = 0; d < ndim; ++d) t.shape.push_back(load<uint32_t>(dims.data() + 4 * d));
    const uint64_t numel = bounded_count(t.shape, limit, source, printable(t.name));
    numels.push_back(numel);
    if (t.kind == Tensor::Kind::Quantized) {
      if (ndim == 0) fail("{}: tensor '{}': a quantized tensor needs at least one dimension (its rows)", source, printable(t.name));
      q_total += numel;
      scale_total += static_cast<uint64_t>(t.shape[0]) * 2;
    } else if (t.kind == Tensor::Kind::Grouped) {
      t.group = in.get<uint32_t>(entry);
      if (ndim == 0) fail("{}: tensor '{}': a grouped tensor needs at least one dimension", source, printable(t.name));
      if (t.group == 0 || numel % static_cast<uint64_t>(t.group) != 0)
        fail("{}: tensor '{}': group {} does not divide its {} elements", source, printable(t.name), t.group, numel);
      q_total += numel;
      scale_total += numel / static_cast<uint64_t>(t.group) * 2;
    } else {
      value_total += numel * 2;
    }
    if (q_total > limit || scale_total > limit || value_total > limit)
      fail("{}: tensor '{}': the tensors up to here need more data than the {}-byte payload holds", source,
           printable(t.name), limit);
  }

  in.skip_padding("the codes");
  const uint8_t* q_bytes = in.take(q_total, "the codes").data();
  in.skip_padding("the scales");
  const uint8_t* scale_bytes = in.take(scale_total, "the scales").data();
  in.skip_padding("the float16 values");
  const uint8_t* value_bytes = in.take(value_total, "the float16 values").data();
  if (in.left() != 0) fail("{}: {} bytes follow the float16 values at the end of the payload", source, in.left());

  for (size_t i = 0; i < a.tensors.size(); ++i) {
    Tensor& t = a.tensors[i];
    const size_t n = static_cast<size_t>(numels[i]);
    if (has_codes(t)) {
      t.q.resize(n);
      copy_bytes(t.q.data(), q_bytes, n);
      q_bytes += n;
      t.scales.resize(t.kind == Tensor::Kind::Grouped ? n / static_cast<size_t>(t.group) : static_cast<size_t>(t.shape[0]));
      copy_bytes(t.scales.data(), scale_bytes, t.scales.size() * 2);
      scale_bytes += t.scales.size() * 2;
    } else {
      t.values.resize(n);
      copy_bytes(t.values.data(), value_bytes, n * 2);
      value_bytes += n * 2;
    }
    check_tensor(t, source);
  }
  return a;
}

std::vector<uint8_t> serialize(const Artifact& a, const PackOptions& o, GroupedReport* report) {
  check_options(o);
  std::vector<CodeSpan> spans;
  const std::vector<uint8_t> payload = encode_payload(a, &spans);
  const std::vector<uint8_t> stream =
      o.compressor == Compressor::Brotli
          ? brotli_best(byte_shuffle(payload, o.shuffle_stride), o.brotli_quality, o.brotli_candidates).stream
          : grouped_encode(payload, spans, o, report);
  if (stream.size() > std::numeric_limits<uint32_t>::max()) fail("the stream of {} bytes is too long", stream.size());
  std::vector<uint8_t> file(kMagic.begin(), kMagic.end());
  put(file, required_version(a, o));
  put(file, static_cast<uint8_t>(o.shuffle_stride | (static_cast<int>(o.compressor) << 4)));
  put(file, static_cast<uint32_t>(payload.size()));
  put(file, static_cast<uint32_t>(stream.size()));
  put(file, uint64_t{0});  // CRC placeholder, filled below once the stream is in place
  file.insert(file.end(), stream.begin(), stream.end());
  const uint64_t crc = artifact_crc(file);
  std::memcpy(file.data() + kCrcOffset, &crc, sizeof crc);
  return file;
}

Header read_header(std::span<const uint8_t> bytes, const std::string& source) {
  if (bytes.size() < kMagic.size())
    fail("{}: {} bytes, too short for a golf artifact (the header alone is {} bytes)", source, bytes.size(), kHeaderBytes);
  if (!std::equal(kMagic.begin(), kMagic.end(), bytes.begin()))
    fail("{}: not a golf artifact: starts with {:02x}, expected the magic \"GPAK\"", source,
         fmt::join(bytes.first(kMagic.size()), " "));
  if (bytes.size() < kHeaderBytes)
    fail("{}: truncated: {} bytes, shorter than the {}-byte header", source, bytes.size(), kHeaderBytes);
  Header h;
  h.version = bytes[4];
  h.shuffle_stride = bytes[5] & 0x0F;
  const int compressor = bytes[5] >> 4;
  if (compressor > static_cast<int>(Compressor::Golf))
    fail("{}: compressor {} is unknown (this build reads 0 brotli, 1 pergroup, 2 golf)", source, compressor);
  h.compressor = static_cast<Compressor>(compressor);
  h.payload_bytes = load<uint32_t>(&bytes[6]);
  h.stream_bytes = load<uint32_t>(&bytes[10]);
  h.crc64 = load<uint64_t>(&bytes[kCrcOffset]);
  if (h.version < 1 || h.version > kFormatVersion)
    fail("{}: format version {} is not supported (this build reads versions 1 to {})", source, h.version, kFormatVersion);
  if (h.version < 2 && h.compressor != Compressor::Brotli)
    fail("{}: compressor {} needs format version 2, the file says version {}", source, compressor, h.version);
  if (!valid_stride(h.shuffle_stride)) fail("{}: shuffle stride {} is invalid (1, 2, 4 or 8)", source, h.shuffle_stride);
  if (h.payload_bytes > kMaxPayloadBytes)
    fail("{}: payload size {} exceeds the format's limit of {} bytes", source, h.payload_bytes, kMaxPayloadBytes);
  const size_t body = bytes.size() - kHeaderBytes;
  if (body < h.stream_bytes)
    fail("{}: truncated: the header announces a {}-byte Brotli stream, the file holds {} bytes after the header", source,
         h.stream_bytes, body);
  if (body > h.stream_bytes) fail("{}: {} trailing bytes after the {}-byte Brotli stream", source, body - h.stream_bytes, h.stream_bytes);
  return h;
}

Artifact deserialize(std::span<const uint8_t> bytes, const std::string& source) {
  const Header h = read_header(bytes, source);
  const uint64_t crc = artifact_crc(bytes);
  if (crc != h.crc64)
    fail("{}: checksum mismatch (stored CRC-64 {:016x}, computed {:016x}): the file is corrupted", source, h.crc64, crc);
  const auto stream = bytes.subspan(kHeaderBytes);
  if (h.compressor != Compressor::Brotli)
    return decode_payload(grouped_decode(stream, h.payload_bytes, h.compressor, h.shuffle_stride, source), source,
                          h.version);
  const auto shuffled = brotli_decompress(stream, h.payload_bytes, source);
  return decode_payload(byte_unshuffle(shuffled, h.shuffle_stride), source, h.version);
}

void write_artifact(const fs::path& path, std::span<const uint8_t> bytes) {
  AtomicFile file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

std::vector<uint8_t> read_file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path.string());
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("{}: read error", path.string());
  return bytes;
}

std::vector<uint8_t> byte_shuffle(std::span<const uint8_t> in, int stride) {
  if (stride < 1) fail("byte shuffle stride {} must be at least 1", stride);
  std::vector<uint8_t> out;
  out.reserve(in.size());
  for (size_t lane = 0; lane < static_cast<size_t>(stride); ++lane)
    for (size_t i = lane; i < in.size(); i += static_cast<size_t>(stride)) out.push_back(in[i]);
  return out;
}

std::vector<uint8_t> byte_unshuffle(std::span<const uint8_t> in, int stride) {
  if (stride < 1) fail("byte shuffle stride {} must be at least 1", stride);
  std::vector<uint8_t> out(in.size());
  size_t next = 0;
  for (size_t lane = 0; lane < static_cast<size_t>(stride); ++lane)
    for (size_t i = lane; i < out.size(); i += static_cast<size_t>(stride)) out[i] = in[next++];
  return out;
}

// ---- accounting -------------------------------------------------------------------------------

namespace {

constexpr std::array<std::string_view, 6> kGroups = {"embedding", "attention", "mlp", "other quantized",
                                                     "lqer factors", "fp16 passthrough"};

template <size_t N>
double entropy_bits(const std::array<int64_t, N>& histogram, int64_t total) {
  double h = 0;
  for (const int64_t c : histogram)
    if (c > 0) h -= static_cast<double>(c) / total * std::log2(static_cast<double>(c) / total);
  return h;
}

}  // namespace

std::string group_of(const std::string& name, Tensor::Kind kind) {
  if (kind == Tensor::Kind::Float16) return "fp16 passthrough";
  if (kind == Tensor::Kind::Grouped) return "lqer factors";
  if (name.starts_with("tok_emb.")) return "embedding";
  if (name.find(".attn.") != std::string::npos) return "attention";
  if (name.find(".mlp.") != std::string::npos) return "mlp";
  return "other quantized";
}

std::vector<GroupStats> group_stats(const Artifact& a, const PackOptions& o, bool compress) {
  check_options(o);
  const auto order = sorted_tensors(a.tensors, "artifact");
  std::vector<GroupStats> stats;
  for (const std::string_view group : kGroups) {
    std::vector<const Tensor*> members;
    for (const Tensor* t : order)
      if (group_of(t->name, t->kind) == group) members.push_back(t);
    if (members.empty()) continue;
    GroupStats g;
    g.group = std::string(group);
    g.tensors = static_cast<int64_t>(members.size());
    std::array<int64_t, 256> code_histogram{};
    auto value_histogram = std::make_unique<std::array<int64_t, 65536>>();
    for (const Tensor* t : members) {
      check_tensor(*t, "artifact");
      g.params += static_cast<int64_t>(t->q.size() + t->values.size());
      g.raw_bytes += static_cast<int64_t>(t->q.size() + 2 * t->scales.size() + 2 * t->values.size());
      for (const int8_t q : t->q) ++code_histogram[static_cast<uint8_t>(q)];
      for (const uint16_t v : t->values) ++(*value_histogram)[v];
    }
    if (compress) {
      std::vector<uint8_t> bytes;
      append_streams(bytes, members);
      g.compressed_bytes = static_cast<int64_t>(
          brotli_best(byte_shuffle(bytes, o.shuffle_stride), o.brotli_quality, o.brotli_candidates).stream.size());
    }
    if (g.params > 0) {
      g.bits_per_weight = static_cast<double>(g.compressed_bytes) * 8 / static_cast<double>(g.params);
      g.entropy_bits = group == "fp16 passthrough" ? entropy_bits(*value_histogram, g.params)
                                                   : entropy_bits(code_histogram, g.params);
    }
    stats.push_back(g);
  }
  return stats;
}

std::string describe(const Artifact& a, std::span<const uint8_t> file_bytes, const PackOptions& o,
                     bool compress_groups) {
  std::string out;
  auto line = [&out](std::string text) { out += text + "\n"; };
  if (!file_bytes.empty()) {
    const Header h = read_header(file_bytes);
    const auto stream = file_bytes.subspan(kHeaderBytes);
    line(fmt::format("artifact: {} bytes = {}-byte header + {}-byte {} stream{}", with_commas(file_bytes.size()),
                     kHeaderBytes, with_commas(h.stream_bytes), compressor_name(h.compressor),
                     h.compressor == Compressor::Brotli ? fmt::format(" (window {})", brotli_stream_window(stream)) : ""));
    line(fmt::format("  format version {}, shuffle stride {}, payload {} bytes (ratio {:.3f}), CRC-64 {:016x}", h.version,
                     h.shuffle_stride, with_commas(h.payload_bytes),
                     h.stream_bytes ? static_cast<double>(h.payload_bytes) / h.stream_bytes : 0.0, h.crc64));
  }
  line(fmt::format("config JSON: {} bytes", with_commas(a.config_json.size())));

  const auto order = sorted_tensors(a.tensors, "artifact");
  int64_t params = 0, quantized = 0;
  size_t name_width = 4;
  for (const Tensor* t : order) {
    params += static_cast<int64_t>(t->q.size() + t->values.size());
    quantized += has_codes(*t);
    name_width = std::max(name_width, t->name.size());
  }
  line(fmt::format("tensors: {} ({} quantized, {} float16), {} params", order.size(), quantized,
                   static_cast<int64_t>(order.size()) - quantized, with_commas(params)));
  line(fmt::format("  {:<{}}  {:<5}  {:>4}  {}", "name", name_width, "kind", "bits", "shape"));
  for (const Tensor* t : order)
    line(fmt::format("  {:<{}}  {:<5}  {:>4}  {}", t->name, name_width,
                     t->kind == Tensor::Kind::Quantized ? "quant" : t->kind == Tensor::Kind::Grouped ? "group" : "fp16",
                     t->bits, shape_text(t->shape)));

  const auto groups = group_stats(a, o, compress_groups);
  if (!compress_groups) {
    line("groups (order-0 entropy; golf-pack inspect --compress-groups adds each group through Brotli alone):");
    line(fmt::format("  {:<16} {:>7} {:>12} {:>12} {:>8} {:>14}", "group", "tensors", "params", "raw bytes", "entropy",
                     "entropy bytes"));
    for (const GroupStats& g : groups)
      line(fmt::format("  {:<16} {:>7} {:>12} {:>12} {:>8.3f} {:>14}", g.group, g.tensors, with_commas(g.params),
                       with_commas(g.raw_bytes), g.entropy_bits,
                       with_commas(std::llround(g.entropy_bits * static_cast<double>(g.params) / 8))));
    line("  (entropy: order-0 bits per weight over the codes, or the fp16 values; entropy bytes leave out the scales)");
    return out;
  }
  line("groups (each compressed alone with the same shuffle and Brotli settings):");
  line(fmt::format("  {:<16} {:>7} {:>12} {:>12} {:>12} {:>8} {:>8} {:>11}", "group", "tensors", "params", "raw bytes",
                   "compressed", "bits/w", "entropy", "vs entropy"));
  int64_t sum = 0;
  for (const GroupStats& g : groups) {
    sum += g.compressed_bytes;
    const std::string gap = g.entropy_bits > 0 ? fmt::format("{:+.1f}%", (g.bits_per_weight / g.entropy_bits - 1) * 100) : "-";
    line(fmt::format("  {:<16} {:>7} {:>12} {:>12} {:>12} {:>8.3f} {:>8.3f} {:>11}", g.group, g.tensors,
                     with_commas(g.params), with_commas(g.raw_bytes), with_commas(g.compressed_bytes), g.bits_per_weight,
                     g.entropy_bits, gap));
  }
  line(fmt::format("  groups compressed alone sum to {} bytes{}", with_commas(sum),
                   file_bytes.empty() ? "" : fmt::format(" (whole file: {})", with_commas(file_bytes.size()))));
  line("  (bits/w includes the fp16 row scales; entropy is order-0 over the codes, or the fp16 values)");
  return out;
}

}  // namespace golf::artifact
