// artifact/grouped.h — the grouped stream behind COMPRESSOR=pergroup and COMPRESSOR=golf: the codes
// of the quantized tensors, cut out of the payload and grouped by role, each group compressed on
// its own; the rest of the payload (table, scales, passthrough values) through Brotli.
//
// STREAM (the artifact's stream when its compressor is 1 or 2; every integer little-endian)
//
//   u32  span count N (≤ 65536), then N spans, not overlapping, in the order each group's members
//        are concatenated below (a reader takes the order as written; golf-pack lists each group's
//        members by layer index, the records' order: tensors sit in the payload by name, blocks.10
//        before blocks.2; writers before session 9 listed them by payload offset):
//          u32 offset, u32 rows, u32 cols (rows·cols > 0): where one tensor's codes sit in the
//          payload (row-major, one int8 per byte)
//          u8  group: 0 tok_emb, 1 attn.c_k, 2 attn.c_q, 3 attn.c_v, 4 attn.proj, 5 mlp.fc,
//              6 mlp.proj (each by its "<role>.weight" name suffix), 7 any other quantized tensor
//   u32  R, then R bytes: Brotli (the artifact's best setting) of byte_shuffle(rest, stride),
//        rest = the payload with the N spans cut out (P − Σ rows·cols bytes); for golf, also
//        without the fp16 tail
//   golf only: u32 W, then W bytes: the fp16 tail through golf's word coder (golf_coder.h): the
//        payload from the end of the last span rounded up to 8 bytes (the S and V streams) to its
//        end, as u16 words; empty when there is no span or the tail is not whole words
//   for each group g = 0..7 with at least one span, in that order:
//     u8   method: 1 Brotli, 2 xz, 3 golf's context-modelling coder (artifact/golf_coder.h)
//     u8   layout: 0 row-major; 1 column-major (each matrix transposed); 2 column-major with the
//          rows of each matrix first reordered (greedy L1 nearest-neighbour chain from row 0)
//     layout 2 only: u32 K, then K bytes: Brotli of every member's row order as u16 (member by
//          member; entry i = the original index of stored row i), which must be a permutation
//     u32  L, then L bytes: the group's data, compressed: its members' codes concatenated in span
//          order, each laid out as `layout` says (golf: always row-major)
//   (end of stream: nothing may follow)
//
// pergroup (issue 14; the records' R0427L scheme with the libraries Debian has: lrzip and ZPAQ are
// Debian programs without a library, so xz -9e and Brotli-11 stand in): every group tries Brotli
// and xz on the row-major layout and on the records' layout (column-major, rows reordered for the
// hot roles tok_emb, attn.c_q, mlp.fc; the order stored), and keeps the smallest.
// golf (issue 16): every group through golf's coder, row-major.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "artifact/artifact.h"

namespace golf::artifact {

inline constexpr int kCodeGroups = 8;
// The group index of a quantized tensor's codes (see STREAM above).
int code_group_of(const std::string& tensor_name);
// "blocks.<N>.…" → N; -1 for any other name (those come first in their group, by payload order).
int layer_index_of(const std::string& tensor_name);
std::string code_group_name(int group);

// What one group became (for reports and the benchmark).
struct GroupChoice {
  int group = 0;
  int64_t codes = 0;       // symbols in the group
  int method = 0, layout = 0;
  int64_t bytes = 0;       // compressed data + its row orders, with their length fields
};
struct GroupedReport {
  int64_t rest_raw = 0, rest_bytes = 0;  // the payload minus the codes, raw and compressed
  std::vector<GroupChoice> groups;
  int64_t words_raw = 0, words_bytes = 0;  // golf: the fp16 tail (part of rest_*), raw and coded
};

// `spans` as encode_payload reports them. o.compressor is PerGroup or Golf.
Bytes grouped_encode(std::span<const uint8_t> payload, const std::vector<CodeSpan>& spans, const PackOptions& o,
                     GroupedReport* report = nullptr);
// The payload (exactly payload_bytes) the stream stands for; any inconsistency is one golf::Error.
Bytes grouped_decode(std::span<const uint8_t> stream, size_t payload_bytes, Compressor c, int shuffle_stride,
                     const std::string& source);

// The greedy nearest-neighbour chain: start at row 0, then repeatedly the unused row with the
// smallest L1 distance (ties: lowest index). Returns order[i] = the original row stored i-th.
std::vector<uint32_t> nearest_neighbour_order(std::span<const int8_t> codes, size_t rows, size_t cols);

}  // namespace golf::artifact
