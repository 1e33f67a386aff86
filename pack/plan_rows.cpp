// golf-plan-rows — the embedding's GPTQ codes of one artifact, row by row, against how often each
// token occurred in the run's training prefix (issue 16 §2: what predicts the embedding's bytes).
//
//   golf-plan-rows F.golf COUNTS.txt [--tensor tok_emb.weight] [--edges 0,1,2,4,16,64]
//
// COUNTS.txt: one integer per line, the training-prefix count of token (row) i (written by
// scripts/bench/plan_embedding_rows.py, which reproduces the packing loader's order). Rows are put in
// count buckets [e_i, e_{i+1}) (the last one open). Prints one JSON object:
//   matrix: the whole tensor coded alone by golf's coder (golf_encode_codes, its real encoder)
//   buckets[]: rows, codes, golf bytes of that bucket's rows coded alone (in their original order,
//              so row references reach only rows of the same bucket), bits per code, the same for
//              COMPRESSOR=brotli's path (the codes byte-shuffled with stride 2, Brotli-11, the
//              smaller of windows 22 and 24, as the artifact's default candidates), the order-0
//              entropy of its codes (bits per code), and the share of rows whose nearest earlier row
//              of the whole matrix (L1) is at most a quarter of the row's own L1 norm ("near repeats",
//              the rows golf's reference decision would code from an earlier row; the decision
//              itself is golf_coder.cpp's choose_references, not reproduced here).
// A bench tool, not counted code (as golf-coder-bench).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "artifact/artifact.h"
#include "artifact/coders.h"
#include "artifact/golf_coder.h"
#include "artifact/row_distance.h"

using namespace golf;
using namespace golf::artifact;

namespace {

double order0_bits(const std::vector<int8_t>& codes) {
  std::map<int, int64_t> n;
  for (const int8_t c : codes) ++n[c];
  double bits = 0;
  for (const auto& [v, k] : n) {
    const double p = static_cast<double>(k) / static_cast<double>(codes.size());
    bits -= p * std::log2(p);
  }
  return bits;
}

int run(int argc, char** argv) {
  if (argc < 3) fail("usage: golf-plan-rows F.golf COUNTS.txt [--tensor NAME] [--edges 0,1,2,...]");
  const std::string artifact_path = argv[1], counts_path = argv[2];
  std::string tensor_name = "tok_emb.weight";
  std::vector<int64_t> edges = {0, 1, 2, 4, 16, 64};
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--tensor") {
      tensor_name = value;
    } else if (flag == "--edges") {
      edges.clear();
      size_t at = 0;
      while (at <= value.size()) {
        const size_t comma = value.find(',', at);
        edges.push_back(std::stoll(value.substr(at, comma - at)));
        if (comma == std::string::npos) break;
        at = comma + 1;
      }
    } else {
      fail("golf-plan-rows: unknown option {}", flag);
    }
  }
  const Artifact a = deserialize(read_file_bytes(artifact_path), artifact_path);
  const Tensor* t = nullptr;
  for (const Tensor& x : a.tensors)
    if (x.name == tensor_name) t = &x;
  if (!t || t->kind != Tensor::Kind::Quantized) fail("{}: no quantized tensor {}", artifact_path, tensor_name);
  const size_t rows = static_cast<size_t>(t->shape.at(0)), cols = t->q.size() / rows;

  std::vector<int64_t> counts;
  {
    std::ifstream in(counts_path);
    if (!in) fail("{}: cannot open", counts_path);
    int64_t c = 0;
    while (in >> c) counts.push_back(c);
  }
  if (counts.size() != rows) fail("{}: {} counts for {} rows of {}", counts_path, counts.size(), rows, tensor_name);

  // Near repeats: nearest earlier row (L1) within a quarter of the row's own L1 norm.
  std::vector<uint8_t> u(t->q.size());
  for (size_t i = 0; i < u.size(); ++i) u[i] = static_cast<uint8_t>(t->q[i] + 128);
  const std::vector<uint8_t> zero(cols, 128);
  std::vector<uint8_t> near(rows, 0);
  for (size_t r = 1; r < rows; ++r) {
    const uint8_t* row = u.data() + r * cols;
    const uint32_t own = l1_distance(row, zero.data(), cols);
    uint32_t best = std::numeric_limits<uint32_t>::max();
    for (size_t j = 0; j < r; ++j) best = std::min(best, l1_distance(row, u.data() + j * cols, cols));
    near[r] = 4 * static_cast<uint64_t>(best) <= own;
  }

  const auto golf_bytes = [&](const std::vector<int8_t>& codes, size_t n) {
    return static_cast<int64_t>(golf_encode_codes(codes, {{static_cast<uint32_t>(n), static_cast<uint32_t>(cols)}}).size());
  };
  const auto brotli_bytes = [&](const std::vector<int8_t>& codes) {
    const std::span<const uint8_t> raw(reinterpret_cast<const uint8_t*>(codes.data()), codes.size());
    return static_cast<int64_t>(brotli_best(byte_shuffle(raw, 2), 11, default_brotli_candidates()).stream.size());
  };
  nlohmann::json out = {{"artifact", artifact_path},
                        {"tensor", tensor_name},
                        {"rows", rows},
                        {"cols", cols},
                        {"bits", t->bits},
                        {"matrix_golf_bytes", golf_bytes(t->q, rows)},
                        {"matrix_brotli_bytes", brotli_bytes(t->q)},
                        {"matrix_order0_bits", order0_bits(t->q)}};
  out["buckets"] = nlohmann::json::array();
  for (size_t b = 0; b < edges.size(); ++b) {
    const int64_t lo = edges[b], hi = b + 1 < edges.size() ? edges[b + 1] : std::numeric_limits<int64_t>::max();
    std::vector<int8_t> codes;
    size_t n = 0, n_near = 0;
    for (size_t r = 0; r < rows; ++r) {
      if (counts[r] < lo || counts[r] >= hi) continue;
      codes.insert(codes.end(), t->q.begin() + static_cast<ptrdiff_t>(r * cols),
                   t->q.begin() + static_cast<ptrdiff_t>((r + 1) * cols));
      ++n;
      n_near += near[r];
    }
    nlohmann::json j = {{"lo", lo}, {"hi", hi == std::numeric_limits<int64_t>::max() ? -1 : hi}, {"rows", n}};
    if (n) {
      const int64_t bytes = golf_bytes(codes, n);
      j.update({{"codes", codes.size()},
                {"golf_bytes", bytes},
                {"golf_bits_per_code", 8.0 * static_cast<double>(bytes - 1) / static_cast<double>(codes.size())},
                {"brotli_bits_per_code", 8.0 * static_cast<double>(brotli_bytes(codes)) / static_cast<double>(codes.size())},
                {"order0_bits_per_code", order0_bits(codes)},
                {"near_repeat_share", static_cast<double>(n_near) / static_cast<double>(n)}});
    }
    out["buckets"].push_back(j);
  }
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "golf-plan-rows: %s\n", e.what());
    return 1;
  }
}
