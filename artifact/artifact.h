// artifact/artifact.h — the golf artifact: quantized weights + model config in one compact,
// deterministic, checksummed file. Torch-free; what counts toward the 16,000,000-byte limit.
//
// FILE (format version 2; every integer little-endian; version 1 is version 2 without kind 3)
//
//   offset size  field
//   0      4     magic "GPAK" (0x47 0x50 0x41 0x4B)
//   4      1     format version: 1, or 2 when the artifact needs it (a tensor of kind 3, or a
//                compressor other than brotli). The writer uses the lowest version that holds the
//                artifact, so plain artifacts keep their version-1 bytes; a version-1 reader
//                refuses a version-2 file, naming the version.
//   5      1     encoding: low 4 bits the shuffle stride s ∈ {1, 2, 4, 8} (1 = no shuffle), high
//                4 bits the compressor c (COMPRESSOR): 0 brotli, 1 pergroup, 2 golf (c ≠ 0 only
//                in version 2). Files written before compressors existed hold c = 0.
//   6      4     payload size P, u32: bytes of the payload after decompression (≤ 1 GiB)
//   10     4     stream size B, u32: bytes of the stream; the file is exactly 22 + B bytes
//   14     8     CRC-64 (ECMA-182, liblzma's lzma_crc64) of bytes [0, 14) followed by the stream:
//                the header fields are covered too, so one flipped bit anywhere in the file is
//                caught (the CRC field itself then no longer matches)
//   22     B     the stream, by compressor:
//                c = 0: one Brotli stream of byte_shuffle(payload, s), quality 11, the window and
//                       mode chosen per artifact as the smallest of PackOptions::brotli_candidates
//                       (the window is in the Brotli stream's own header; the decoder needs no
//                       other setting)
//                c = 1, 2: the grouped stream of artifact/grouped.h (codes by tensor role, each group
//                       compressed on its own; the rest of the payload through Brotli as above)
//
// PAYLOAD (P bytes once unshuffled)
//
//   u32  config JSON length C, then C bytes: empty or one JSON value (the model configuration)
//   u32  tensor count T (≤ 65536), then T table entries in strictly ascending byte order of name:
//          u16 name length L (≥ 1), L bytes name
//          u8  kind: 1 = quantized, 2 = float16, 3 = grouped (version 2)
//          u8  bits: 2..8 for quantized and grouped, 0 for float16
//          u8  ndim D, then D × u32 dims (D = 0: a scalar; quantized and grouped need D ≥ 1)
//          kind 3 only: u32 group G ≥ 1 dividing the element count
//   zero bytes up to a multiple of 8
//   Q stream: the int8 codes of every quantized and grouped tensor in table order, one code per
//             byte, row-major (rows = dims[0], cols = product of the other dims)
//   zero bytes up to a multiple of 8
//   S stream: the fp16 scales of every quantized and grouped tensor in table order: rows × u16
//             (quantized: one per row), numel / G × u16 (grouped: one per G consecutive codes)
//   zero bytes up to a multiple of 8
//   V stream: the fp16 values of every float16 tensor in table order, u16 each, row-major
//   (end of payload: nothing may follow)
//
// Why this shape: the codes of all matrices sit together (one symbol distribution for the
// entropy coder), fp16 scales and passthrough values follow, and the 8-byte alignment puts every
// fp16 value at an even payload offset, so the stride-2 shuffle sends all low bytes (noisy
// mantissa) to one lane and all high bytes (sign, exponent: repetitive) to the other. Codes are
// never bit-packed: byte alignment is what the entropy coder exploits. A code q of a b-bit tensor
// lies in [-(2^(b-1)-1), 2^(b-1)-1] (symmetric, the most negative value unused); the weight is
// q × scale[row]. A grouped (kind 3) b-bit code uses the full two's-complement range
// [-2^(b-1), 2^(b-1)-1] (LQER's lopsided int2/int4 factors, quant/lqer.h) and its weight is
// q × scale[element / G]. Scales must be finite fp16 values; float16 values are kept bit-exact,
// whatever they hold.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "artifact/coders.h"
#include "core/progress.h"  // with_commas, which the reports below use

namespace golf::artifact {

// COMPRESSOR: how the payload becomes the stream (the header's high encoding nibble).
enum class Compressor : uint8_t { Brotli = 0, PerGroup = 1, Golf = 2 };
// "brotli" | "pergroup" | "golf"; anything else is one golf::Error listing the valid names.
Compressor compressor_from_name(const std::string& name);
std::string compressor_name(Compressor c);

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;  // rows = shape[0], cols = product of the rest (1 for 1-D)
  enum class Kind : uint8_t { Quantized = 1, Float16 = 2, Grouped = 3 } kind = Kind::Float16;
  int bits = 0;                  // Quantized: 2..8 (values in [-(2^(bits-1)-1), 2^(bits-1)-1]); Float16: 0
                                 // Grouped: 2..8 (values in [-2^(bits-1), 2^(bits-1)-1])
  std::vector<int8_t> q;         // Quantized, Grouped: one value per element, row-major
  std::vector<uint16_t> scales;  // Quantized: one fp16 bit pattern per row; Grouped: one per `group` elements
  std::vector<uint16_t> values;  // Float16: one fp16 bit pattern per element
  int64_t group = 0;             // Grouped: elements per scale (≥ 1, divides the element count); else 0
  friend bool operator==(const Tensor&, const Tensor&) = default;
};

// config_json: everything needed to rebuild the model the tensors belong to.
struct Artifact {
  std::string config_json;
  std::vector<Tensor> tensors;
  friend bool operator==(const Artifact&, const Artifact&) = default;
};

struct PackOptions {
  int shuffle_stride = 2;   // 1, 2, 4 or 8
  int brotli_quality = 11;  // 0..11
  // Brotli settings tried on every Brotli stream; the smallest output is kept (each costs one
  // more quality-11 pass; they run in parallel). Windows 22 (the records' Python default) and 24
  // (golf's old fixed choice, 16,962 bytes worse than 22 on one full-size artifact), GENERIC mode.
  std::vector<BrotliSetting> brotli_candidates = default_brotli_candidates();
  Compressor compressor = Compressor::Brotli;
};

inline constexpr size_t kHeaderBytes = 22;
inline constexpr uint8_t kFormatVersion = 2;  // the newest version this build reads and writes
// The version serialize() writes for `a` with `o`: 2 when a tensor is Grouped or the compressor is
// not brotli, else 1.
uint8_t required_version(const Artifact& a, const PackOptions& o);
inline constexpr uint32_t kMaxPayloadBytes = uint32_t{1} << 30;
inline constexpr uint32_t kMaxTensors = 65536;  // caps the table's memory on hostile input

// The file bytes of `a`. Deterministic: the same tensors in any order give identical bytes
// (tensors are written sorted by name). Throws golf::Error naming the tensor and field when `a`
// is not representable (see check_tensor) or an option is out of range.
// report: for COMPRESSOR=pergroup/golf, what each code group became (artifact/grouped.h).
struct GroupedReport;
std::vector<uint8_t> serialize(const Artifact& a, const PackOptions& o = {}, GroupedReport* report = nullptr);

// Validates everything (header, checksum, stream, table, every code and scale) and returns the
// artifact with tensors in name order. Any problem is one golf::Error "<source>: <what>". Never
// allocates more than the input can describe.
Artifact deserialize(std::span<const uint8_t> bytes, const std::string& source = "artifact");

// The header fields of an artifact file (checks magic, version, stride and sizes, not the CRC).
struct Header {
  uint8_t version = 0, shuffle_stride = 0;
  Compressor compressor = Compressor::Brotli;
  uint32_t payload_bytes = 0, stream_bytes = 0;
  uint64_t crc64 = 0;
};
Header read_header(std::span<const uint8_t> bytes, const std::string& source = "artifact");

// The payload layer alone (no header, shuffle or compression); deserialize() and serialize() use
// these, the fuzzer drives decode_payload directly.
// Where encode_payload put one quantized tensor's codes: rows × cols bytes from `offset`.
struct CodeSpan {
  size_t offset = 0;
  uint32_t rows = 0, cols = 0;
  std::string name;
};
std::vector<uint8_t> encode_payload(const Artifact& a, std::vector<CodeSpan>* code_spans = nullptr);
// `version`: the file's format version (kind 3 is refused in a version-1 payload).
Artifact decode_payload(std::span<const uint8_t> payload, const std::string& source = "artifact",
                        uint8_t version = kFormatVersion);

// Throws golf::Error "<where>: tensor '<name>': <what>" unless `t` is representable: non-empty
// name of ≤ 65535 bytes, dims in [0, 2^32), kind known, bits in range, data sizes matching the
// shape, codes within ±qmax, finite scales.
void check_tensor(const Tensor& t, const std::string& where);

void write_artifact(const std::filesystem::path& path, std::span<const uint8_t> bytes);  // atomic
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path);

// Stride-way split: all bytes at offsets ≡ 0 (mod stride), then ≡ 1, …; lane p holds
// floor(n/stride) + (p < n mod stride) bytes. stride ≥ 1 (1 is the identity).
std::vector<uint8_t> byte_shuffle(std::span<const uint8_t> in, int stride);
std::vector<uint8_t> byte_unshuffle(std::span<const uint8_t> in, int stride);

// ---- accounting -------------------------------------------------------------------------------

// Size breakdown of one group of tensors. params: weights (codes or fp16 values; scales are not
// params); raw_bytes: codes + scales + values as stored; compressed_bytes: the group's bytes alone
// through the same shuffle + Brotli (so groups do not add up exactly to the joint stream);
// bits_per_weight = compressed_bytes × 8 / params; entropy_bits: empirical order-0 entropy per
// weight of the group's codes (for the fp16 group: of its 16-bit values).
struct GroupStats {
  std::string group;
  int64_t tensors = 0, params = 0, raw_bytes = 0, compressed_bytes = 0;
  double bits_per_weight = 0, entropy_bits = 0;
};

// "embedding" (tok_emb.*), "attention" (*.attn.*), "mlp" (*.mlp.*), "other quantized" for
// quantized tensors; every grouped tensor is "lqer factors" and every float16 tensor "fp16
// passthrough", whatever its name. Scales belong
// to their matrix's group.
std::string group_of(const std::string& tensor_name, Tensor::Kind kind = Tensor::Kind::Quantized);

// One entry per non-empty group, in the order embedding, attention, mlp, other quantized, lqer
// factors, fp16 passthrough. compress = false leaves compressed_bytes and bits_per_weight 0: each
// group through Brotli-11 costs as long as packing the artifact with brotli (minutes at full size).
std::vector<GroupStats> group_stats(const Artifact& a, const PackOptions& o = {}, bool compress = true);

// Human-readable report: header fields of `file_bytes` (skipped when empty), the tensor table and
// the per-group table with the order-0 entropy; with compress_groups, also each group through
// Brotli alone and how far that is from the entropy (slow: see group_stats).
std::string describe(const Artifact& a, std::span<const uint8_t> file_bytes, const PackOptions& o = {},
                     bool compress_groups = true);

}  // namespace golf::artifact
