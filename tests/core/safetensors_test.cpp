// Safetensors: the exact byte layout, round trips of every dtype, one clear error per kind of
// malformed file, and both directions against Hugging Face's own `safetensors` package
// (tests/reference/safetensors_check.py).
#include "core/safetensors.h"

#include <cstring>
#include <numbers>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tests/test_util.h"

namespace golf {
namespace {

namespace fs = std::filesystem;
namespace st = safetensors;
using nlohmann::json;
using test::quote;
using test::TempDir;

// The native (little-endian) bytes of `values`.
template <class T>
std::vector<uint8_t> bytes_of(std::initializer_list<T> values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(T));
  if (!bytes.empty()) std::memcpy(bytes.data(), std::data(values), bytes.size());
  return bytes;
}

std::string le64(uint64_t n) {
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  return bytes;
}

using test::error_of;

// ---- layout -------------------------------------------------------------------------------------

TEST(SafetensorsLayout, MatchesHandWrittenBytes) {
  TempDir dir;
  st::File file;
  file.metadata["format"] = "pt";
  file.tensors["x"] = {"U8", {2}, {7, 9}};
  st::write(dir / "x.safetensors", file);
  // 84 bytes of compact JSON + 4 spaces: 8 + 88 = 96 is a multiple of 8, so the data is aligned.
  const std::string json_text = R"({"__metadata__":{"format":"pt"},"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})";
  ASSERT_EQ(json_text.size(), 84u);
  const std::string expected = std::string("\x58\0\0\0\0\0\0\0", 8) + json_text + "    " + "\x07\x09";
  EXPECT_EQ(test::read_file(dir / "x.safetensors"), expected);
}

TEST(SafetensorsLayout, EmptyFileIsAPaddedEmptyObject) {
  TempDir dir;
  st::write(dir / "e.safetensors", {});
  EXPECT_EQ(test::read_file(dir / "e.safetensors"), le64(8) + "{}      ");
  EXPECT_EQ(st::read(dir / "e.safetensors"), st::File{});
}

TEST(SafetensorsLayout, TensorsLieInNameOrder) {
  TempDir dir;
  st::File file;
  file.tensors["b"] = {"F32", {1}, bytes_of<float>({2.0f})};
  file.tensors["a"] = {"U8", {3}, {1, 2, 3}};
  st::write(dir / "t.safetensors", file);
  const std::string bytes = test::read_file(dir / "t.safetensors");
  EXPECT_NE(bytes.find(R"("a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]})"), std::string::npos) << bytes;
  EXPECT_NE(bytes.find(R"("b":{"dtype":"F32","shape":[1],"data_offsets":[3,7]})"), std::string::npos) << bytes;
  EXPECT_EQ(bytes.substr(bytes.size() - 7), std::string("\x01\x02\x03\x00\x00\x00\x40", 7));  // 2.0f = 0x40000000
}

TEST(SafetensorsWrite, SameInputGivesIdenticalBytes) {
  TempDir dir;
  st::File forward, backward;
  const std::vector<std::string> names = {"w.2", "w.10", "w.1", "bias"};
  for (size_t i = 0; i < names.size(); ++i) {
    forward.tensors[names[i]] = {"I32", {1}, bytes_of<int32_t>({int32_t(i)})};
    backward.tensors[names[names.size() - 1 - i]] = {"I32", {1}, bytes_of<int32_t>({int32_t(names.size() - 1 - i)})};
  }
  forward.metadata = {{"step", "3"}, {"arch", "gpt"}};
  backward.metadata = {{"arch", "gpt"}, {"step", "3"}};
  st::write(dir / "a.safetensors", forward);
  st::write(dir / "b.safetensors", backward);
  st::write(dir / "c.safetensors", forward);
  EXPECT_EQ(test::read_file(dir / "a.safetensors"), test::read_file(dir / "b.safetensors"));
  EXPECT_EQ(test::read_file(dir / "a.safetensors"), test::read_file(dir / "c.safetensors"));
}

// ---- dtypes ---------------------------------------------------------------------------------------

TEST(SafetensorsDtype, SizesOfEveryDtype) {
  const std::map<std::string, size_t> sizes = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
                                               {"I16", 2}, {"I8", 1},  {"U16", 2}, {"U8", 1},   {"BOOL", 1}};
  for (const auto& [dtype, size] : sizes) EXPECT_EQ(st::dtype_size(dtype), size) << dtype;
  EXPECT_NE(error_of([] { st::dtype_size("f32"); }).find("unknown safetensors dtype \"f32\""), std::string::npos);
}

TEST(SafetensorsDtype, ElementCount) {
  EXPECT_EQ(st::element_count({}), 1) << "a 0-d tensor holds one element";
  EXPECT_EQ(st::element_count({2, 0, 3}), 0);
  EXPECT_EQ(st::element_count({2, 3, 4}), 24);
  EXPECT_NE(error_of([] { st::element_count({2, -1}); }).find("[2, -1]"), std::string::npos);
  EXPECT_NE(error_of([] { st::element_count({int64_t{1} << 40, int64_t{1} << 40}); }).find("2^63"), std::string::npos);
}

// Every dtype once, its bytes written out by hand beside the values Python must read from them.
// Includes a 0-d tensor, an empty one, an int64 past 2^53 (no trip through double), and
// odd-sized tensors early in name order, so later tensors are not aligned in the buffer.
struct Sample {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  json values;  // row-major
};
std::map<std::string, Sample> every_dtype() {
  constexpr int64_t kBig = (int64_t{1} << 62) + 1;
  return {
      {"a.mask", {"BOOL", {3}, {1, 0, 1}, {true, false, true}}},
      // bf16 = the top half of a float32: 0.5 0x3F00, -1.25 0xBFA0, 3.0 0x4040, -2^-7 0xBC00.
      {"b.embed", {"BF16", {2, 2}, bytes_of<uint16_t>({0x3F00, 0xBFA0, 0x4040, 0xBC00}), {0.5, -1.25, 3.0, -0.0078125}}},
      // IEEE half: 1.0 0x3C00, -2.0 0xC000, 0.5 0x3800, the largest finite 65504 0x7BFF.
      {"c.half", {"F16", {4}, bytes_of<uint16_t>({0x3C00, 0xC000, 0x3800, 0x7BFF}), {1.0, -2.0, 0.5, 65504.0}}},
      {"d.scale", {"F32", {3}, bytes_of<float>({0.1f, -3.5f, 1e30f}), {double(0.1f), -3.5, double(1e30f)}}},
      {"e.step", {"I64", {}, bytes_of<int64_t>({kBig}), {kBig}}},
      {"f.unused", {"F32", {0, 3}, {}, json::array()}},
      {"g.ids", {"I32", {2}, bytes_of<int32_t>({-7, 2147483647}), {-7, 2147483647}}},
      {"h.short", {"I16", {2}, bytes_of<int16_t>({-32768, 12345}), {-32768, 12345}}},
      {"i.tiny", {"I8", {3}, bytes_of<int8_t>({-128, 0, 127}), {-128, 0, 127}}},
      {"j.bytes", {"U8", {2, 1}, {0, 255}, {0, 255}}},
      {"k.tokens", {"U16", {2}, bytes_of<uint16_t>({1, 65535}), {1, 65535}}},
      {"l.precise", {"F64", {2}, bytes_of<double>({std::numbers::pi, -1e-300}), {std::numbers::pi, -1e-300}}},
  };
}
const std::map<std::string, std::string> kMetadata = {{"format", "pt"}, {"note", "caf\xC3\xA9 \"quoted\""}};

st::File as_file(const std::map<std::string, Sample>& samples) {
  st::File file;
  for (const auto& [name, s] : samples) file.tensors[name] = {s.dtype, s.shape, s.bytes};
  file.metadata = kMetadata;
  return file;
}

// The spec format of safetensors_check.py.
json as_spec(const std::map<std::string, Sample>& samples) {
  json spec = {{"tensors", json::object()}, {"metadata", kMetadata}};
  for (const auto& [name, s] : samples) spec["tensors"][name] = {{"dtype", s.dtype}, {"shape", s.shape}, {"values", s.values}};
  return spec;
}

TEST(SafetensorsFile, RoundTripsEveryDtypeWithMetadata) {
  TempDir dir;
  const st::File file = as_file(every_dtype());
  st::write(dir / "m.safetensors", file);
  const st::File back = st::read(dir / "m.safetensors");
  EXPECT_EQ(back, file);
  EXPECT_TRUE(back.tensors.at("e.step").shape.empty());
  EXPECT_EQ(back.tensors.at("f.unused").shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"m.safetensors"}) << "no temporary left behind";
}

// ---- the writer refuses what it cannot write, and leaves nothing behind ---------------------------

TEST(SafetensorsWrite, RejectsDataThatDoesNotMatchTheShape) {
  TempDir dir;
  st::File file;
  file.tensors["w"] = {"F32", {2, 3}, std::vector<uint8_t>(20)};
  const auto msg = error_of([&] { st::write(dir / "w.safetensors", file); });
  EXPECT_NE(msg.find("w.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tensor \"w\" has 20 data bytes, but shape [2, 3] of F32 needs 24"), std::string::npos) << msg;
  EXPECT_TRUE(dir.entries().empty());
}

TEST(SafetensorsWrite, RejectsUnknownDtypeNegativeDimAndTheReservedName) {
  TempDir dir;
  st::File unknown, negative, reserved;
  unknown.tensors["q"] = {"Q4", {1}, {0}};
  negative.tensors["n"] = {"U8", {-1}, {}};
  reserved.tensors["__metadata__"] = {"U8", {1}, {0}};
  EXPECT_NE(error_of([&] { st::write(dir / "x.safetensors", unknown); }).find("tensor \"q\" has unknown dtype \"Q4\""),
            std::string::npos);
  EXPECT_NE(error_of([&] { st::write(dir / "x.safetensors", negative); }).find("shape [-1] has a negative dimension"),
            std::string::npos);
  EXPECT_NE(error_of([&] { st::write(dir / "x.safetensors", reserved); }).find("reserved for metadata"),
            std::string::npos);
  EXPECT_TRUE(dir.entries().empty());
}

// ---- the reader: one clear message per kind of malformed file -------------------------------------

// A file whose length field is honest: le64(size of header) + header + `buffer_bytes` zeros.
std::string with_header(const std::string& header, size_t buffer_bytes = 0) {
  return le64(header.size()) + header + std::string(buffer_bytes, '\0');
}

struct Malformed {
  std::string name;      // test name suffix
  std::string bytes;     // the whole file
  std::string expected;  // part of the error message
};

class SafetensorsMalformed : public ::testing::TestWithParam<Malformed> {};

TEST_P(SafetensorsMalformed, FailsNamingTheFileAndTheProblem) {
  TempDir dir;
  const fs::path path = dir / "bad.safetensors";
  test::write_file(path, GetParam().bytes);
  const auto msg = error_of([&] { st::read(path); });
  EXPECT_NE(msg.find(path.string() + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find(GetParam().expected), std::string::npos) << msg;
}

const std::string kU8x8 = R"({"dtype":"U8","shape":[8],"data_offsets":)";  // completed with "[b,e]}"

INSTANTIATE_TEST_SUITE_P(
    Safetensors, SafetensorsMalformed,
    ::testing::Values(
        Malformed{"ShorterThanTheLengthField", std::string("\x05\x00\x00", 3), "3 bytes, shorter than the 8-byte header length field"},
        Malformed{"HeaderLongerThanTheFile", le64(1000) + "{}",
                  "header length 1000 is larger than the file (2 bytes after the length field)"},
        Malformed{"EmptyHeader", le64(0), "header length is 0"},
        Malformed{"HeaderNotJson", with_header(R"({"x": {"dtype": "F32",)"), "header is not valid JSON"},
        Malformed{"HeaderPaddedWithNul", with_header(std::string("{}\0\0\0\0\0\0", 8)),
                  "header is not valid JSON: NUL byte at offset 2"},
        Malformed{"HeaderNotAnObject", with_header("[1, 2]"), "header is a JSON array, not an object"},
        Malformed{"HeaderWithLeadingSpace", with_header(" {}"), "header must start with '{' but starts with byte 0x20"},
        Malformed{"DuplicateTensorName",
                  with_header(R"({"x":)" + kU8x8 + R"([0,8]},"x":)" + kU8x8 + "[8,16]}}", 16),
                  "duplicate tensor name \"x\""},
        Malformed{"DuplicateKeyInEntry", with_header(R"({"x":{"dtype":"U8","dtype":"I8","shape":[],"data_offsets":[0,1]}})", 1),
                  "duplicate key \"dtype\""},
        Malformed{"EntryNotAnObject", with_header(R"({"x":3})"), "tensor \"x\" entry is 3, expected an object"},
        Malformed{"MissingDtype", with_header(R"({"x":{"shape":[1],"data_offsets":[0,1]}})", 1), "tensor \"x\" has no \"dtype\""},
        Malformed{"MissingShape", with_header(R"({"x":{"dtype":"U8","data_offsets":[0,1]}})", 1), "tensor \"x\" has no \"shape\""},
        Malformed{"MissingDataOffsets", with_header(R"({"x":{"dtype":"U8","shape":[1]}})", 1),
                  "tensor \"x\" has no \"data_offsets\""},
        Malformed{"DtypeNotAString", with_header(R"({"x":{"dtype":4,"shape":[1],"data_offsets":[0,1]}})", 1),
                  "tensor \"x\" dtype is 4, expected a string"},
        Malformed{"UnknownDtype", with_header(R"({"x":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", 8),
                  "tensor \"x\" has unknown dtype \"C64\""},
        Malformed{"NegativeDimension", with_header(R"({"x":{"dtype":"U8","shape":[2,-3],"data_offsets":[0,0]}})"),
                  "tensor \"x\" shape [2,-3] has a negative dimension"},
        Malformed{"FractionalDimension", with_header(R"({"x":{"dtype":"U8","shape":[2.5],"data_offsets":[0,2]}})", 2),
                  "tensor \"x\" shape [2.5] has a dimension that is not an integer"},
        Malformed{"DimensionPastInt64", with_header(R"({"x":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,1]}})", 1),
                  "tensor \"x\" shape [18446744073709551615] has a dimension that is not an integer in [0, 2^63)"},
        Malformed{"ShapeTooLarge", with_header(R"({"x":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,1]}})", 1),
                  "tensor \"x\" shape [4294967296,4294967296] is too large"},
        Malformed{"OffsetsNotAPair", with_header(R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", 1),
                  "tensor \"x\" data_offsets [0] must be two integers"},
        Malformed{"OffsetsBackwards", with_header(R"({"x":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", 8),
                  "tensor \"x\" data_offsets [8,0] must be two integers [begin, end] with 0 <= begin <= end"},
        Malformed{"OffsetsDisagreeWithShape", with_header(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20),
                  "tensor \"x\" data_offsets [0, 20] hold 20 bytes, but shape [2, 3] of F32 needs 24"},
        Malformed{"OffsetsPastTheBuffer", with_header(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
                  "tensor \"x\" data_offsets [0, 16] run past the end of the 8-byte data buffer"},
        Malformed{"OverlappingTensors",
                  with_header(R"({"a":)" + kU8x8 + R"([0,8]},"b":)" + kU8x8 + "[4,12]}}", 12),
                  "tensors \"a\" [0, 8] and \"b\" [4, 12] overlap"},
        Malformed{"HoleBetweenTensors",
                  with_header(R"({"a":)" + kU8x8 + R"([0,8]},"b":)" + kU8x8 + "[16,24]}}", 24),
                  "hole in the data buffer: bytes [8, 16) before tensor \"b\" belong to no tensor"},
        Malformed{"BufferNotFullyCovered", with_header(R"({"a":)" + kU8x8 + "[0,8]}}", 16),
                  "data buffer not fully covered: bytes [8, 16) after the last tensor"},
        Malformed{"MetadataNotAnObject", with_header(R"({"__metadata__":["a"]})"),
                  "__metadata__ is [\"a\"], expected an object of strings"},
        Malformed{"MetadataValueNotAString", with_header(R"({"__metadata__":{"step":3}})"),
                  "__metadata__ value for \"step\" is 3, expected a string"}),
    [](const ::testing::TestParamInfo<Malformed>& info) { return info.param.name; });

TEST(SafetensorsRead, MissingFileSaysSo) {
  TempDir dir;
  const auto msg = error_of([&] { st::read(dir / "absent.safetensors"); });
  EXPECT_NE(msg.find("absent.safetensors: cannot open"), std::string::npos) << msg;
}

TEST(SafetensorsRead, AcceptsTensorsInAnyOrderAndAnyPadding) {
  // Python orders by alignment, not name; old writers pad with nothing.
  TempDir dir;
  const std::string header = R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                             R"("a":{"dtype":"I16","shape":[],"data_offsets":[1,3]}})";
  test::write_file(dir / "o.safetensors", with_header(header) + std::string("\x05\x34\x12", 3));
  const st::File file = st::read(dir / "o.safetensors");
  EXPECT_EQ(file.tensors.at("a"), (st::Tensor{"I16", {}, bytes_of<int16_t>({0x1234})}));
  EXPECT_EQ(file.tensors.at("b"), (st::Tensor{"U8", {1}, {5}}));
}

// ---- against Python's safetensors -----------------------------------------------------------------

TEST(SafetensorsPython, ReadsWhatCppWrote) {
  TempDir dir;
  const auto samples = every_dtype();
  st::write(dir / "cpp.safetensors", as_file(samples));
  test::write_file(dir / "spec.json", as_spec(samples).dump());
  const auto ref = test::run_reference("safetensors_check.py",
                                       "check " + quote(dir / "cpp.safetensors") + " " + quote(dir / "spec.json"));
  EXPECT_EQ(ref.exit_code, 0) << ref.output;
  EXPECT_EQ(ref.output, "ok\n");
}

TEST(SafetensorsPython, CheckerNoticesAWrongValue) {
  // The check above can fail: the same file against a spec with one bf16 value changed.
  TempDir dir;
  auto samples = every_dtype();
  st::write(dir / "cpp.safetensors", as_file(samples));
  samples["b.embed"].values[1] = -1.5;
  test::write_file(dir / "spec.json", as_spec(samples).dump());
  const auto ref = test::run_reference("safetensors_check.py",
                                       "check " + quote(dir / "cpp.safetensors") + " " + quote(dir / "spec.json"));
  EXPECT_EQ(ref.exit_code, 1) << ref.output;
  EXPECT_NE(ref.output.find("b.embed: values"), std::string::npos) << ref.output;
}

TEST(SafetensorsPython, CppReadsWhatPythonWrote) {
  TempDir dir;
  const auto samples = every_dtype();
  test::write_file(dir / "spec.json", as_spec(samples).dump());
  const auto ref = test::run_reference("safetensors_check.py",
                                       "save " + quote(dir / "spec.json") + " " + quote(dir / "py.safetensors"));
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  const st::File file = st::read(dir / "py.safetensors");
  const st::File expected = as_file(samples);
  EXPECT_EQ(file.metadata, expected.metadata);
  ASSERT_EQ(file.tensors.size(), expected.tensors.size());
  for (const auto& [name, want] : expected.tensors) {
    ASSERT_TRUE(file.tensors.count(name)) << name;
    const st::Tensor& got = file.tensors.at(name);
    EXPECT_EQ(got.dtype, want.dtype) << name;
    EXPECT_EQ(got.shape, want.shape) << name;
    EXPECT_EQ(got.data, want.data) << name;
  }
}

TEST(SafetensorsPython, SameBytesAsPythonWhenNameOrderIsAlignmentOrder) {
  // Python lays tensors out by alignment (largest first), then name; with names already in that
  // order and one metadata key (Python keeps metadata in a hash map) the two files are identical.
  TempDir dir;
  std::map<std::string, Sample> samples = {
      {"a", {"F64", {2}, bytes_of<double>({1.5, -2.0}), {1.5, -2.0}}},
      {"b", {"F32", {2, 2}, bytes_of<float>({0.25f, 1.0f, -8.0f, 3.0f}), {0.25, 1.0, -8.0, 3.0}}},
      {"c", {"BF16", {}, bytes_of<uint16_t>({0x3F80}), {1.0}}},
      {"d", {"U8", {3}, {1, 2, 3}, {1, 2, 3}}},
  };
  st::File file = as_file(samples);
  file.metadata = {{"format", "pt"}};
  json spec = as_spec(samples);
  spec["metadata"] = file.metadata;
  st::write(dir / "cpp.safetensors", file);
  test::write_file(dir / "spec.json", spec.dump());
  const auto ref = test::run_reference("safetensors_check.py",
                                       "save " + quote(dir / "spec.json") + " " + quote(dir / "py.safetensors"));
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  EXPECT_EQ(test::read_file(dir / "cpp.safetensors"), test::read_file(dir / "py.safetensors"));
}

}  // namespace
}  // namespace golf
