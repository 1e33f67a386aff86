// artifact/golf_coder.h — golf's coder for quantized weight codes (COMPRESSOR=golf, issue 16 §1): a
// binary adaptive arithmetic coder with context modelling fitted to GPTQ/SDClip codes.
//
// No Debian or PyPI package offers an entropy-coding primitive as a C/C++ library (Debian has
// zpaq and lrzip as programs only; zstd's FSE/Huffman are internal to libzstd; constriction is
// Rust/Python), so the range coder is our own: 32-bit range, 64-bit low with carry propagation,
// 16-bit probabilities — small, integer-only and therefore deterministic on every machine.
//
// MODEL (one fresh model per group of matrices; the matrices are coded row-major in order)
//   Matrix order: first one decision (at a fixed probability of 1/4096) says whether the matrix
//   is reordered. A reordered matrix's rows are coded in a stored order (each row's index among
//   the rows not yet placed, uniform: log2(rows!) bits in all) and every row after the first has
//   a reference, its distance back (r − j − 1) an Elias-gamma code whose length and first bit are
//   adaptive. The encoder reorders by the records' greedy nearest-neighbour chain, referencing
//   each row's nearest earlier row in the chain, on the matrices where the margin test below finds
//   any reference (in practice only tok_emb), and keeps the smaller of the two whole streams.
//   Row references (matrices in natural order): before each row (from the second on) one
//   decision says whether the row has a reference, an earlier row of the same matrix; if so, the
//   distance back (r − j − 1, in bit_width(r − 1) bits of probability ½) follows. The encoder
//   picks, per row, the earlier row nearest in L1 and keeps it when the estimated saving exceeds
//   the distance's cost by a margin (golf_coder.cpp, choose_references). Embedding rows nearly
//   repeat one another (tokens that were rarely seen share the output head's update) and lie in
//   clusters: this is where the records' nearest-neighbour row order wins (issue 16 §1), and
//   matrices without such rows pay ~nothing (the decision is adaptive).
//   A referenced row's codes go through their own model (statistics as below, on the codes) with
//   four more context models: C = the reference's code at this column × the row's running mean
//   |q − ref| (4 buckets), D = the reference's code × the code above (the column's previous value
//   coded by this model), E = the codes of the chain ref, ref-of-ref, its ref (each ±5 or none) ×
//   the residual bucket, F = the matrix's column (counters afresh per matrix); for the magnitude
//   decisions C–F also see the code's sign; the mixer's weights are chosen by decision node × that
//   residual bucket.
//   A value x (a code) becomes
//   binary decisions: x = 0?; then the sign; then |x| in unary (|x| > k? for k = 1..19); |x| ≥ 20
//   continues with an Elias-gamma code of |x| − 19 (length in unary, then the bits, most
//   significant first).
//   Plain rows and referenced rows have separate models and statistics; in both, two context
//   models (A, B) predict every decision; a logistic mixer (weights learned online, one set
//   per decision node) combines them:
//     model A: decision node × bucket of the column's running mean |x| (over the previous rows
//              of this matrix coded the same way, rate 1/n falling to 1/128; the input
//              features differ in scale) × min(|left neighbour|, 2)
//     model B: decision node × bucket of the local running mean |x| (the last ~16 values)
//              × min(|value above|, 2) (the column's last value coded the same way)
//   The sign decision uses other contexts: model A the column's running mean of x (signed, 11
//   buckets: a column that leans one way, as the embedding's mean direction does) × the left
//   neighbour's sign; model B the local mean × the sign of the value above.
//   Counters adapt fast while young (rate 1/2, 1/3, … down to 1/1024; a second one to 1/16).
//
// STREAM: byte 0 is the format (3: reordered matrices and model F; 2 had neither, 1 coded
// referenced rows as differences from the reference, 0 had no references: all are refused with a
// message saying so), then the range coder's bytes after its first (always 0);
// the decoder must consume exactly all of them, so truncation or trailing bytes are errors; a
// decoded code outside [-127, 127] or a reference past the matrix's first row is an error.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace golf::artifact {

// codes: the matrices of `shapes` (rows, cols) concatenated, each row-major.
std::vector<uint8_t> golf_encode_codes(std::span<const int8_t> codes, const std::vector<std::pair<uint32_t, uint32_t>>& shapes);
// Throws golf::Error "<source>: ..." on a stream that does not decode to exactly these shapes.
std::vector<int8_t> golf_decode_codes(std::span<const uint8_t> stream, const std::vector<std::pair<uint32_t, uint32_t>>& shapes,
                                      const std::string& source);

// The fp16 words of the payload's tail (the scales of every quantized tensor, then the passthrough
// values): each word is 16 binary decisions, most significant bit first, through the same range
// coder. The high byte (sign, exponent, top mantissa bits) is predicted from its bits so far and
// from the previous word's high byte (neighbouring rows have similar scales); the low byte from
// its own high byte and, when the high byte repeats, from the previous word's low byte. Two
// models, mixed as for the codes. Byte 0 of the stream is its format (1), as for the codes.
std::vector<uint8_t> golf_encode_words(std::span<const uint16_t> words);
// Throws golf::Error "<source>: ..." on a stream that does not decode to exactly `count` words.
std::vector<uint16_t> golf_decode_words(std::span<const uint8_t> stream, size_t count, const std::string& source);

}  // namespace golf::artifact
