// core/byte_sidecar.h — checking a CaseOps byte sidecar against its token stream (golf-data inspect,
// golf-eval's byte-recount compliance check, golf-train's validation).
//
// What can be proven from the tokens alone, exactly:
//   * the sidecar is 0 at every BOS and at every case operator acting as an operator (an escaped
//     literal operator character counts its 3 bytes) — a misaligned, shifted or operator-inflated
//     sidecar (the records' "old CaseOps byte inflation issue") breaks this;
//   * every complete document decodes to valid CaseOps text, whose inverse transform is the
//     document's original text as SentencePiece normalized it.
// What cannot: the sidecar counts the ORIGINAL bytes (before SentencePiece's NFKC and whitespace
// folding), which the tokens no longer hold. So Σ sidecar and Σ bytes of the decoded original text
// are both reported, with the documents where they differ; equality of Σ sidecar with the original
// text's byte length is proven where the original text is at hand (golf-data shards --verify-bytes).
#pragma once
#include <cstdint>
#include <span>
#include <string>

namespace golf {

class Tokenizer;

struct SidecarAudit {
  int64_t predictions = 0;          // targets counted
  int64_t documents = 0;            // documents (complete or cut) among them
  int64_t sidecar_bytes = 0;        // Σ sidecar over the targets
  int64_t decoded_bytes = 0;        // Σ UTF-8 bytes of the decoded original text of the same targets
  int64_t documents_differing = 0;  // documents whose two sums differ (SentencePiece normalization)
  std::string violation;            // the first broken exact rule, "" when none
  bool ok() const { return violation.empty(); }
};

// Audits targets tokens[1..predictions] (prediction j has target j + 1, as the scorers count) against
// sidecar (same length as tokens) with a CaseOps tokenizer. A document is the run of targets after a
// BOS; the run before the first BOS (a stream that starts mid-document) and a run cut by the end are
// counted without the inverse transform (bytes = decoded bytes − 3 per operator).
SidecarAudit audit_sidecar(std::span<const uint16_t> tokens, std::span<const uint16_t> sidecar, int64_t predictions,
                           const Tokenizer& tokenizer);

// The tokenizer fits data of VOCAB_SIZE ids, with (has_sidecar) or without a byte sidecar: its
// vocabulary size equals vocab_size, and it is a CaseOps tokenizer exactly when the validation data
// has sidecars (a plain tokenizer would score CaseOps tokens through the wrong byte table; a CaseOps
// tokenizer without sidecars would charge every operator 3 bytes). Throws golf::Error naming both.
void check_tokenizer_for_data(const Tokenizer& tokenizer, int64_t vocab_size, bool has_sidecar,
                              const std::string& data_path);

}  // namespace golf
