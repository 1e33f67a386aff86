// at::Tensor checkpoints: every supported ScalarType round trips bit for bit (0-d, empty and
// non-contiguous tensors included), unsupported dtypes are refused by name, and files pass both
// ways through Python's safetensors.torch (tests/reference/safetensors_check.py).
#include "core/tensor_io.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/safetensors.h"
#include "tests/test_util.h"

namespace golf {
namespace {

using nlohmann::json;
using test::quote;
using test::TempDir;

// Exact equality of dtype, shape and every bit (at::equal says 0.0 == -0.0 and NaN != NaN).
void expect_identical(const at::Tensor& got, const at::Tensor& want, const std::string& name) {
  EXPECT_EQ(got.scalar_type(), want.scalar_type()) << name;
  EXPECT_EQ(got.sizes(), want.sizes()) << name;
  EXPECT_TRUE(got.device().is_cpu()) << name;
  if (got.scalar_type() != want.scalar_type() || got.sizes() != want.sizes()) return;
  const at::Tensor a = got.contiguous(), b = want.cpu().contiguous();
  EXPECT_EQ(std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()), 0) << name << ": got " << a << " want " << b;
}

// One tensor of every supported dtype, from values that dtype holds exactly.
std::map<std::string, at::Tensor> every_dtype() {
  at::manual_seed(7);
  const at::Tensor r = at::randn({3, 5}, at::kDouble);
  return {
      {"bf16", r.to(at::kBFloat16)},
      {"f16", r.to(at::kHalf)},
      {"f32", r.to(at::kFloat)},
      {"f64", r},
      {"f32.with_nan_inf_negzero", at::tensor({NAN, INFINITY, -INFINITY, -0.0f})},
      {"i8", at::tensor({-128, 0, 127}, at::kChar)},
      {"u8", at::tensor({0, 200, 255}, at::kByte)},
      {"i16", at::tensor({-32768, 32767}, at::kShort)},
      {"u16", at::tensor({0, 40000, 65535}, at::kInt).to(at::kUInt16)},
      {"i32", at::tensor({-2147483647 - 1, 2147483647}, at::kInt)},
      {"i64", at::tensor({int64_t{1} << 62, -(int64_t{1} << 53) - 1}, at::kLong)},
      {"bool", at::tensor({1, 0, 1, 1}, at::kInt).to(at::kBool)},
      {"scalar", at::scalar_tensor(2.5, at::kFloat)},
      {"empty", at::empty({0, 4}, at::kBFloat16)},
  };
}

TEST(TensorIo, RoundTripsEveryDtypeBitForBit) {
  TempDir dir;
  const auto tensors = every_dtype();
  save_tensors(dir / "m.safetensors", tensors, {{"step", "100"}});
  std::map<std::string, std::string> metadata;
  const auto back = load_tensors(dir / "m.safetensors", &metadata);
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto& [name, want] : tensors) {
    ASSERT_TRUE(back.count(name)) << name;
    expect_identical(back.at(name), want, name);
  }
  EXPECT_EQ(back.at("scalar").dim(), 0);
  EXPECT_EQ(metadata, (std::map<std::string, std::string>{{"step", "100"}}));
}

TEST(TensorIo, StoresDtypeNamesPythonUses) {
  TempDir dir;
  save_tensors(dir / "m.safetensors", every_dtype());
  const auto file = safetensors::read(dir / "m.safetensors");
  const std::map<std::string, std::string> expected = {
      {"bf16", "BF16"}, {"f16", "F16"},  {"f32", "F32"}, {"f64", "F64"},   {"f32.with_nan_inf_negzero", "F32"},
      {"i8", "I8"},     {"u8", "U8"},    {"i16", "I16"}, {"u16", "U16"},   {"i32", "I32"},
      {"i64", "I64"},   {"bool", "BOOL"}, {"scalar", "F32"}, {"empty", "BF16"}};
  for (const auto& [name, dtype] : expected) EXPECT_EQ(file.tensors.at(name).dtype, dtype) << name;
}

TEST(TensorIo, NonContiguousTensorsAreStoredRowMajor) {
  TempDir dir;
  const at::Tensor m = at::arange(6, at::kInt).reshape({2, 3});
  save_tensors(dir / "t.safetensors", {{"t", m.t()}, {"col", m.select(1, 1)}});  // [[0,3],[1,4],[2,5]] and [1,4]
  const auto file = safetensors::read(dir / "t.safetensors");
  const auto ints = [](const std::vector<uint8_t>& bytes) {
    std::vector<int32_t> v(bytes.size() / 4);
    std::memcpy(v.data(), bytes.data(), bytes.size());
    return v;
  };
  EXPECT_EQ(file.tensors.at("t").shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(ints(file.tensors.at("t").data), (std::vector<int32_t>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(ints(file.tensors.at("col").data), (std::vector<int32_t>{1, 4}));
}

TEST(TensorIo, RefusesUnsupportedDtypeNamingTheTensor) {
  TempDir dir;
  std::string msg;
  try {
    save_tensors(dir / "c.safetensors", {{"ok", at::ones({2})}, {"phase", at::ones({2}, at::kComplexFloat)}});
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("c.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tensor \"phase\" has dtype ComplexFloat"), std::string::npos) << msg;
  EXPECT_TRUE(dir.entries().empty()) << "nothing written";
}

TEST(TensorIo, LoadErrorsComeFromTheValidatingReader) {
  TempDir dir;
  test::write_file(dir / "short.safetensors", "abc");
  try {
    load_tensors(dir / "short.safetensors");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("short.safetensors: 3 bytes"), std::string::npos) << e.what();
  }
}

TEST(TensorIo, SavesGpuTensorsFromTheDevice) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  TempDir dir;
  const at::Tensor cpu = at::randn({4, 3}).to(at::kBFloat16);
  save_tensors(dir / "g.safetensors", {{"w", cpu.cuda().t()}});
  expect_identical(load_tensors(dir / "g.safetensors").at("w"), cpu.t(), "w");
}

// ---- against Python's safetensors.torch -------------------------------------------------------

// The spec format of safetensors_check.py: dtype by its safetensors name, values in row-major
// order as exact JSON numbers.
json spec_of(const std::map<std::string, at::Tensor>& tensors, const std::map<std::string, std::string>& metadata) {
  const std::map<at::ScalarType, std::string> names = {
      {at::kBFloat16, "BF16"}, {at::kHalf, "F16"}, {at::kFloat, "F32"}, {at::kLong, "I64"}, {at::kBool, "BOOL"}};
  json spec = {{"tensors", json::object()}, {"metadata", metadata}};
  for (const auto& [name, t] : tensors) {
    json values = json::array();
    const at::Tensor flat = t.flatten();
    for (int64_t i = 0; i < flat.numel(); ++i) {
      if (t.scalar_type() == at::kBool)
        values.push_back(flat[i].item<bool>());
      else if (at::isFloatingType(t.scalar_type()))
        values.push_back(flat[i].item<double>());
      else
        values.push_back(flat[i].item<int64_t>());
    }
    spec["tensors"][name] = {{"dtype", names.at(t.scalar_type())}, {"shape", t.sizes().vec()}, {"values", values}};
  }
  return spec;
}

// bf16, f16, f32, i64 (past 2^53), bool, a 0-d and an empty tensor: values JSON carries exactly.
std::map<std::string, at::Tensor> python_sample() {
  at::manual_seed(11);
  return {
      {"embed.weight", at::randn({4, 3}).to(at::kBFloat16)},
      {"norm.scale", at::randn({5}, at::kFloat)},
      {"step", at::scalar_tensor(int64_t{123456789012345}, at::kLong)},
      {"token_ids", at::tensor({(int64_t{1} << 62) + 1, int64_t{-3}, int64_t{0}})},
      {"mask", at::tensor({1, 0}, at::kInt).to(at::kBool)},
      {"half", at::randn({2, 2}).to(at::kHalf)},
      {"empty", at::empty({0}, at::kFloat)},
  };
}

TEST(TensorIo, PythonLoadsWhatCppSaved) {
  TempDir dir;
  const auto tensors = python_sample();
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"model", "golf"}};
  save_tensors(dir / "cpp.safetensors", tensors, metadata);
  test::write_file(dir / "spec.json", spec_of(tensors, metadata).dump());
  const auto ref = test::run_reference("safetensors_check.py",
                                       "check " + quote(dir / "cpp.safetensors") + " " + quote(dir / "spec.json"));
  EXPECT_EQ(ref.exit_code, 0) << ref.output;
  EXPECT_EQ(ref.output, "ok\n");
}

TEST(TensorIo, LoadsWhatPythonSaved) {
  TempDir dir;
  const auto expected = python_sample();
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  test::write_file(dir / "spec.json", spec_of(expected, metadata).dump());
  const auto ref = test::run_reference("safetensors_check.py",
                                       "save " + quote(dir / "spec.json") + " " + quote(dir / "py.safetensors"));
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  std::map<std::string, std::string> loaded_metadata;
  const auto loaded = load_tensors(dir / "py.safetensors", &loaded_metadata);
  EXPECT_EQ(loaded_metadata, metadata);
  ASSERT_EQ(loaded.size(), expected.size());
  for (const auto& [name, want] : expected) {
    ASSERT_TRUE(loaded.count(name)) << name;
    expect_identical(loaded.at(name), want, name);
  }
}

}  // namespace
}  // namespace golf
