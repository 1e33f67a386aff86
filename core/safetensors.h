// core/safetensors.h — checkpoints in the safetensors format, the one Python's `safetensors`
// package reads and writes. Torch-free: tensors are a dtype name, a shape and raw bytes
// (core/tensor_io.h converts to and from at::Tensor).
//
//   bytes [0, 8)          N, little-endian uint64: the length of the header
//   bytes [8, 8+N)        UTF-8 JSON object, padded with trailing spaces so that 8+N is a
//                         multiple of 8 (the data then starts 8-byte aligned):
//                           {"__metadata__": {"key": "value", ...},                  (optional)
//                            "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
//                            ...}
//   bytes [8+N, end)      the data buffer; tensor `name` is bytes [begin, end) of it,
//                         row-major, little-endian
//
// Dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U16 U8 BOOL. Names are unique; every byte of the buffer
// belongs to exactly one tensor (no holes, no overlaps); 0-d (shape []) and empty tensors are
// allowed. write() lays tensors out in name order, so identical input gives identical bytes.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace golf::safetensors {

struct Tensor {
  std::string dtype;            // "F32", "BF16", ... (see dtype_size)
  std::vector<int64_t> shape;   // empty for a 0-d tensor
  std::vector<uint8_t> data;    // prod(shape) * dtype_size(dtype) bytes, row-major little-endian
  friend bool operator==(const Tensor&, const Tensor&) = default;
};

struct File {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // the optional "__metadata__" entry
  friend bool operator==(const File&, const File&) = default;
};

// Bytes per element of a safetensors dtype name; throws golf::Error for an unknown one.
size_t dtype_size(std::string_view dtype);

// Number of elements of `shape` (1 for a 0-d tensor); throws golf::Error for a negative
// dimension or a product that does not fit int64.
int64_t element_count(const std::vector<int64_t>& shape);

// Writes `file` atomically (golf::AtomicFile). Throws golf::Error naming the path and tensor when
// a tensor's data size does not match its dtype and shape, its dtype is unknown, or its name is
// the reserved "__metadata__".
void write(const std::filesystem::path& path, const File& file);

// Reads and validates a whole file: length field, JSON header, every tensor entry, metadata
// values, and that the tensors tile the data buffer exactly. Any problem is one golf::Error that
// names the file and what is wrong.
File read(const std::filesystem::path& path);

}  // namespace golf::safetensors
