// core/tensor_io.cpp — the ATen side of safetensors: ScalarType <-> dtype name, and the copy
// between at::Tensor storage and the row-major little-endian bytes of core/safetensors.
#include "core/tensor_io.h"

#include <ATen/ATen.h>

#include <array>
#include <cstring>
#include <optional>
#include <utility>

#include "core/error.h"
#include "core/safetensors.h"

namespace golf {
namespace {

constexpr std::array<std::pair<at::ScalarType, std::string_view>, 11> kDtypeNames = {{
    {at::kFloat, "F32"},
    {at::kHalf, "F16"},
    {at::kBFloat16, "BF16"},
    {at::kDouble, "F64"},
    {at::kChar, "I8"},
    {at::kByte, "U8"},
    {at::kShort, "I16"},
    {at::kUInt16, "U16"},
    {at::kInt, "I32"},
    {at::kLong, "I64"},
    {at::kBool, "BOOL"},
}};

std::optional<std::string_view> dtype_name(at::ScalarType type) {
  for (const auto& [t, name] : kDtypeNames)
    if (t == type) return name;
  return std::nullopt;
}

std::optional<at::ScalarType> scalar_type(std::string_view name) {
  for (const auto& [t, n] : kDtypeNames)
    if (n == name) return t;
  return std::nullopt;
}

}  // namespace

void save_tensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  safetensors::File file;
  file.metadata = metadata;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) fail("cannot write {}: tensor \"{}\" is undefined", path.string(), name);
    const auto dtype = dtype_name(tensor.scalar_type());
    if (!dtype)
      fail("cannot write {}: tensor \"{}\" has dtype {}, which golf checkpoints do not support", path.string(), name,
           c10::toString(tensor.scalar_type()));
    // resolve_neg first: a lazily negated view shares the un-negated bytes.
    const at::Tensor cpu = tensor.detach().resolve_neg().to(at::kCPU).contiguous();
    safetensors::Tensor& out = file.tensors[name];
    out.dtype = *dtype;
    out.shape.assign(cpu.sizes().begin(), cpu.sizes().end());
    out.data.resize(cpu.nbytes());
    if (cpu.nbytes()) std::memcpy(out.data.data(), cpu.data_ptr(), cpu.nbytes());
  }
  safetensors::write(path, file);
}

std::map<std::string, at::Tensor> load_tensors(const std::filesystem::path& path,
                                               std::map<std::string, std::string>* metadata) {
  safetensors::File file = safetensors::read(path);
  std::map<std::string, at::Tensor> tensors;
  for (auto& [name, stored] : file.tensors) {
    const auto type = scalar_type(stored.dtype);
    // safetensors::read only returns dtypes that are in the table above.
    if (!type) fail("{}: tensor \"{}\" has dtype {}, which has no ATen type here", path.string(), name, stored.dtype);
    at::Tensor tensor = at::empty(stored.shape, at::TensorOptions().dtype(*type));
    if (!stored.data.empty()) std::memcpy(tensor.data_ptr(), stored.data.data(), stored.data.size());
    tensors.emplace(name, std::move(tensor));
    std::vector<uint8_t>().swap(stored.data);  // free each tensor's bytes once copied
  }
  if (metadata) *metadata = std::move(file.metadata);
  return tensors;
}

}  // namespace golf
