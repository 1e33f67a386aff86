// core/tensor_io.h — at::Tensor checkpoints as safetensors files (format: core/safetensors.h), so
// Python reads them with `safetensors.torch.load_file` and writes them with `save_file`.
//
// dtypes: Float F32, Half F16, BFloat16 BF16, Double F64, Char I8, Byte U8, Short I16,
// UInt16 U16, Int I32, Long I64, Bool BOOL. Anything else is a golf::Error naming the tensor.
// The API keeps ATen out of this header: callers that build the map include ATen themselves.
#pragma once
#include <filesystem>
#include <map>
#include <string>

namespace at {
class Tensor;
}

namespace golf {

// Writes `tensors` (any device, any strides; copied to CPU and row-major) and `metadata`
// atomically. Tensors are laid out in name order, so equal input gives equal bytes.
void save_tensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata = {});

// Reads and validates `path`; returns CPU tensors with the stored dtypes and shapes. If
// `metadata` is given it receives the file's "__metadata__" entries.
std::map<std::string, at::Tensor> load_tensors(const std::filesystem::path& path,
                                               std::map<std::string, std::string>* metadata = nullptr);

}  // namespace golf
