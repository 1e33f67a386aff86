// core/safetensors.cpp — the safetensors writer and its validating reader (format: safetensors.h).
// The reader accepts exactly what Python's `safetensors` accepts for these dtypes and says, in one
// message, which file and which entry is wrong when it does not.
#include "core/safetensors.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <bit>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <tuple>

#include "core/atomic_file.h"
#include "core/error.h"

namespace golf::safetensors {
namespace fs = std::filesystem;
using json = nlohmann::json;
static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so must the host be");

namespace {

constexpr std::string_view kMetadataKey = "__metadata__";
constexpr size_t kLengthFieldBytes = 8;
constexpr size_t kDataAlignment = 8;  // the header is padded so the data starts at a multiple of this

struct Dtype {
  std::string_view name;
  size_t size;
};
constexpr std::array<Dtype, 11> kDtypes = {{{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
                                            {"I16", 2}, {"I8", 1}, {"U16", 2}, {"U8", 1}, {"BOOL", 1}}};

std::optional<size_t> find_dtype_size(std::string_view name) {
  for (const Dtype& d : kDtypes)
    if (d.name == name) return d.size;
  return std::nullopt;
}

std::string known_dtypes() {
  std::vector<std::string_view> names;
  for (const Dtype& d : kDtypes) names.push_back(d.name);
  return fmt::format("{}", fmt::join(names, " "));
}

std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// prod(shape) * element_size, or nullopt if a dimension is negative or the product overflows.
std::optional<uint64_t> byte_count(const std::vector<int64_t>& shape, size_t element_size) {
  uint64_t bytes = element_size;
  for (const int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) return std::nullopt;
  }
  if (bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return bytes;
}

// ---- reading ----------------------------------------------------------------------------------

// Parses the header text, refusing repeated keys in any object: nlohmann would silently keep the
// last one, while the format says names are unique.
json parse_header(const std::string& file, const std::string& text) {
  std::vector<std::set<std::string>> keys_of_open_objects;
  const auto on_event = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) keys_of_open_objects.emplace_back();
    if (event == json::parse_event_t::object_end) keys_of_open_objects.pop_back();
    if (event == json::parse_event_t::key) {
      const auto key = parsed.get<std::string>();
      const bool top_level = keys_of_open_objects.size() == 1;
      if (!keys_of_open_objects.back().insert(key).second) {
        if (top_level) fail("{}: duplicate tensor name \"{}\" in the header", file, key);
        fail("{}: duplicate key \"{}\" inside a header entry", file, key);
      }
    }
    return true;
  };
  // nlohmann stops at a NUL byte as if the input ended there; JSON allows none anywhere.
  if (const size_t nul = text.find('\0'); nul != std::string::npos)
    fail("{}: header is not valid JSON: NUL byte at offset {}", file, nul);
  json header;
  try {
    header = json::parse(text, on_event);
  } catch (const json::parse_error& e) {
    fail("{}: header is not valid JSON: {}", file, e.what());
  }
  if (!header.is_object()) fail("{}: header is a JSON {}, not an object", file, header.type_name());
  if (text.front() != '{') fail("{}: header must start with '{{' but starts with byte {:#04x}", file,
                                  static_cast<unsigned char>(text.front()));
  return header;
}

// A non-negative integer that fits int64 (JSON numbers may be floats, negative or huge). The
// parser stores every integer written without a minus sign as unsigned.
std::optional<int64_t> as_count(const json& value) {
  if (value.is_number_unsigned() && value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return static_cast<int64_t>(value.get<uint64_t>());
  return std::nullopt;
}

std::map<std::string, std::string> read_metadata(const std::string& file, const json& entry) {
  if (!entry.is_object()) fail("{}: __metadata__ is {}, expected an object of strings", file, entry.dump());
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : entry.items()) {
    if (!value.is_string()) fail("{}: __metadata__ value for \"{}\" is {}, expected a string", file, key, value.dump());
    metadata[key] = value.get<std::string>();
  }
  return metadata;
}

// Where a tensor's bytes lie in the data buffer.
struct Placement {
  std::string_view name;
  uint64_t begin, end;
  Tensor* tensor;
};

// Checks one tensor entry against its dtype and shape and the buffer size; fills dtype and shape.
Placement read_entry(const std::string& file, const std::string& name, const json& entry, uint64_t buffer_bytes,
                     Tensor& tensor) {
  const std::string where = fmt::format("{}: tensor \"{}\"", file, name);
  if (!entry.is_object()) fail("{} entry is {}, expected an object", where, entry.dump());
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(field)) fail("{} has no \"{}\"", where, field);

  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) fail("{} dtype is {}, expected a string", where, dtype.dump());
  tensor.dtype = dtype.get<std::string>();
  const auto element_size = find_dtype_size(tensor.dtype);
  if (!element_size) fail("{} has unknown dtype \"{}\" (known: {})", where, tensor.dtype, known_dtypes());

  const json& shape = entry["shape"];
  if (!shape.is_array()) fail("{} shape is {}, expected a list of dimensions", where, shape.dump());
  for (const json& dim : shape) {
    const bool negative = dim.is_number_integer() && !dim.is_number_unsigned() && dim.get<int64_t>() < 0;
    if (negative) fail("{} shape {} has a negative dimension", where, shape.dump());
    const auto d = as_count(dim);
    if (!d) fail("{} shape {} has a dimension that is not an integer in [0, 2^63)", where, shape.dump());
    tensor.shape.push_back(*d);
  }
  const auto needed = byte_count(tensor.shape, *element_size);
  if (!needed) fail("{} shape {} is too large", where, shape.dump());

  const json& offsets = entry["data_offsets"];
  std::optional<int64_t> begin, end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = as_count(offsets[0]);
    end = as_count(offsets[1]);
  }
  if (!begin || !end || *begin > *end)
    fail("{} data_offsets {} must be two integers [begin, end] with 0 <= begin <= end", where, offsets.dump());
  if (static_cast<uint64_t>(*end - *begin) != *needed)
    fail("{} data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}", where, *begin, *end, *end - *begin,
         shape_text(tensor.shape), tensor.dtype, *needed);
  if (static_cast<uint64_t>(*end) > buffer_bytes)
    fail("{} data_offsets [{}, {}] run past the end of the {}-byte data buffer", where, *begin, *end, buffer_bytes);
  return {name, static_cast<uint64_t>(*begin), static_cast<uint64_t>(*end), &tensor};
}

// The tensors must tile [0, buffer_bytes) exactly. Sorts `placements` by position.
void check_tiling(const std::string& file, std::vector<Placement>& placements, uint64_t buffer_bytes) {
  std::sort(placements.begin(), placements.end(), [](const Placement& a, const Placement& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t covered = 0;  // bytes [0, covered) belong to the tensors seen so far
  const Placement* previous = nullptr;
  for (const Placement& p : placements) {
    if (p.begin < covered)
      fail("{}: tensors \"{}\" [{}, {}] and \"{}\" [{}, {}] overlap in the data buffer", file, previous->name,
           previous->begin, previous->end, p.name, p.begin, p.end);
    if (p.begin > covered)
      fail("{}: hole in the data buffer: bytes [{}, {}) before tensor \"{}\" belong to no tensor", file, covered,
           p.begin, p.name);
    covered = p.end;
    previous = &p;
  }
  if (covered != buffer_bytes)
    fail("{}: data buffer not fully covered: bytes [{}, {}) after the last tensor belong to no tensor", file, covered,
         buffer_bytes);
}

}  // namespace

size_t dtype_size(std::string_view dtype) {
  const auto size = find_dtype_size(dtype);
  if (!size) fail("unknown safetensors dtype \"{}\" (known: {})", dtype, known_dtypes());
  return *size;
}

int64_t element_count(const std::vector<int64_t>& shape) {
  const auto count = byte_count(shape, 1);
  if (!count) fail("shape {} has a negative dimension or more than 2^63 elements", shape_text(shape));
  return static_cast<int64_t>(*count);
}

File read(const fs::path& path) {
  const std::string file = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open safetensors file", file);
  std::error_code ec;
  const uint64_t file_bytes = fs::file_size(path, ec);
  if (ec) fail("{}: cannot read size: {}", file, ec.message());
  if (file_bytes < kLengthFieldBytes)
    fail("{}: {} bytes, shorter than the {}-byte header length field", file, file_bytes, kLengthFieldBytes);

  uint64_t header_bytes = 0;
  in.read(reinterpret_cast<char*>(&header_bytes), kLengthFieldBytes);
  if (header_bytes > file_bytes - kLengthFieldBytes)
    fail("{}: header length {} is larger than the file ({} bytes after the length field)", file, header_bytes,
         file_bytes - kLengthFieldBytes);
  if (header_bytes == 0) fail("{}: header length is 0; the header must be a JSON object", file);
  std::string text(header_bytes, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_bytes));
  if (!in) fail("{}: short read of the {}-byte header", file, header_bytes);
  const json header = parse_header(file, text);
  const uint64_t buffer_bytes = file_bytes - kLengthFieldBytes - header_bytes;

  File result;
  std::vector<Placement> placements;
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      result.metadata = read_metadata(file, entry);
    } else {
      auto& [stored_name, tensor] = *result.tensors.try_emplace(name).first;
      placements.push_back(read_entry(file, stored_name, entry, buffer_bytes, tensor));
    }
  }
  check_tiling(file, placements, buffer_bytes);

  // Tiling holds, so reading the placements in order walks the buffer front to back.
  for (const Placement& p : placements) {
    p.tensor->data.resize(p.end - p.begin);
    in.read(reinterpret_cast<char*>(p.tensor->data.data()), static_cast<std::streamsize>(p.end - p.begin));
    if (!in) fail("{}: short read of tensor \"{}\"", file, p.name);
  }
  return result;
}

void write(const fs::path& path, const File& file) {
  // Same key order as Python's writer: metadata first, then each entry as dtype, shape, offsets.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) header[std::string(kMetadataKey)] = file.metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : file.tensors) {
    const std::string where = fmt::format("cannot write {}: tensor \"{}\"", path.string(), name);
    if (name == kMetadataKey) fail("{}: the name is reserved for metadata", where);
    const auto element_size = find_dtype_size(tensor.dtype);
    if (!element_size) fail("{} has unknown dtype \"{}\" (known: {})", where, tensor.dtype, known_dtypes());
    const auto needed = byte_count(tensor.shape, *element_size);
    if (!needed) fail("{} shape {} has a negative dimension or is too large", where, shape_text(tensor.shape));
    if (tensor.data.size() != *needed)
      fail("{} has {} data bytes, but shape {} of {} needs {}", where, tensor.data.size(), shape_text(tensor.shape),
           tensor.dtype, *needed);
    nlohmann::ordered_json& entry = header[name];
    entry["dtype"] = tensor.dtype;
    entry["shape"] = tensor.shape;
    entry["data_offsets"] = {offset, offset + *needed};
    offset += *needed;
  }

  std::string text;
  try {
    text = header.dump();  // compact; throws on names or metadata that are not valid UTF-8
  } catch (const nlohmann::ordered_json::exception& e) {
    fail("cannot write {}: header is not valid UTF-8: {}", path.string(), e.what());
  }
  text.append((kDataAlignment - (kLengthFieldBytes + text.size()) % kDataAlignment) % kDataAlignment, ' ');
  const uint64_t header_bytes = text.size();

  AtomicFile out(path);
  out.write(&header_bytes, kLengthFieldBytes);
  out.write(text);
  for (const auto& [name, tensor] : file.tensors) out.write(tensor.data.data(), tensor.data.size());
  out.commit();
}

}  // namespace golf::safetensors
