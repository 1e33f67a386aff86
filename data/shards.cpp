// golf-data shards: documents → [BOS] + encode(text) per document → fineweb_<split>_NNNNNN.bin;
// with a CaseOps tokenizer, [BOS] + encode(caseops(text)), and for val the byte sidecar
// fineweb_val_bytes_NNNNNN.bin from the pieces' surface spans (core/caseops.h).
//
// A reader thread parses the next batch of documents while all cores encode the current one;
// batches are appended in input order, so the output bytes depend only on the input.
#include <sentencepiece_processor.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <thread>

#include "core/byte_table.h"
#include "core/caseops.h"
#include "data/caseops_encode.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/shard.h"
#include "data/text_input.h"
#include "core/tokenizer.h"
#include "data/golf_data.h"

namespace golf::data {

namespace {

constexpr int64_t kBatchTextBytes = 8 << 20;  // ~1-2 s of encoding on one core

struct Batch {
  std::vector<Document> docs;
  int64_t text_bytes = 0;
  int64_t consumed_after = 0;  // input bytes read once this batch was complete (for progress)
};

Batch read_batch(DocumentReader& reader, int64_t docs_left) {
  Batch batch;
  Document doc;
  while (batch.text_bytes < kBatchTextBytes && docs_left != 0 && reader.next(doc)) {
    batch.text_bytes += static_cast<int64_t>(doc.text.size());
    batch.docs.push_back(std::move(doc));
    if (docs_left > 0) --docs_left;
  }
  batch.consumed_after = reader.bytes_consumed();
  return batch;
}

// One document, ready to append: [BOS] + ids, and for CaseOps val data its byte sidecar
// [0] + original bytes per token.
struct Encoded {
  std::vector<uint16_t> tokens, sidecar;
  bool round_trip = true;       // CaseOps with verify: decode(encode(text)) == text
  int64_t edge_whitespace = 0;  // CaseOps: bytes of leading + trailing ASCII whitespace (in no piece)
};

struct EncodeMode {
  bool caseops = false, sidecar = false, verify = false;
};

int64_t edge_whitespace_bytes(std::string_view text) {
  constexpr std::string_view ws = " \t\n\r\f\v";
  const auto first = text.find_first_not_of(ws);
  if (first == std::string_view::npos) return static_cast<int64_t>(text.size());
  return static_cast<int64_t>(first + (text.size() - 1 - text.find_last_not_of(ws)));
}

// The ids of `text` and each piece's byte span [begin, end) in it (SentencePiece surface offsets:
// the original bytes a piece covers before normalization; a byte-fallback or NFKC-expanded
// character is covered by its last piece, the earlier ones get empty spans).
void encode_with_spans(const Tokenizer& tokenizer, std::string_view text, std::vector<int>& ids,
                       std::vector<caseops::Span>& spans) {
  const auto spt = tokenizer.processor().EncodeAsImmutableProto(text);
  ids.reserve(spt.pieces_size());
  spans.reserve(spt.pieces_size());
  for (size_t i = 0; i < spt.pieces_size(); ++i) {
    const auto p = spt.pieces(static_cast<int>(i));
    ids.push_back(static_cast<int>(p.id()));
    spans.push_back({p.begin(), p.end()});
  }
}

Encoded encode_document(const Tokenizer& tokenizer, const Document& doc, EncodeMode mode) {
  Encoded e;
  std::vector<int> ids;
  std::vector<int64_t> counts;
  if (!mode.caseops) {
    ids = tokenizer.encode(doc.text);
  } else {
    std::vector<uint8_t> original_bytes;
    const std::string transformed = caseops::encode(doc.text, mode.sidecar ? &original_bytes : nullptr);
    if (mode.verify) e.round_trip = caseops::decode(transformed) == doc.text;
    e.edge_whitespace = edge_whitespace_bytes(doc.text);
    if (mode.sidecar) {
      std::vector<caseops::Span> spans;
      encode_with_spans(tokenizer, transformed, ids, spans);
      counts = caseops::token_byte_counts(spans, original_bytes);
    } else {
      ids = tokenizer.encode(transformed);
    }
  }
  e.tokens.reserve(ids.size() + 1);
  e.tokens.push_back(shard::kBos);
  for (const int id : ids) e.tokens.push_back(static_cast<uint16_t>(id));
  if (mode.sidecar) {
    e.sidecar.reserve(counts.size() + 1);
    e.sidecar.push_back(0);  // BOS stands for no byte of the document
    for (size_t i = 0; i < counts.size(); ++i) {
      if (counts[i] > 65535)
        fail("{}: token {} stands for {} original bytes, more than a uint16 sidecar entry holds", doc.where, i, counts[i]);
      e.sidecar.push_back(static_cast<uint16_t>(counts[i]));
    }
  }
  return e;
}

// Encodes every document of the batch on `threads` threads, in input order.
std::vector<Encoded> encode_batch(const Tokenizer& tokenizer, const Batch& batch, int threads, EncodeMode mode) {
  std::vector<Encoded> out(batch.docs.size());
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    try {
      for (size_t i; (i = next.fetch_add(1)) < batch.docs.size();) out[i] = encode_document(tokenizer, batch.docs[i], mode);
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
  return out;
}

// Fails before any work if the output directory cannot take our files, and never replaces a
// user's existing shards unless asked to.
void prepare_output(const ShardOptions& o) {
  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);
  if (ec) fail("--out {}: cannot create directory: {}", o.out_dir.string(), ec.message());
  if (::access(o.out_dir.c_str(), W_OK) != 0) fail("--out {}: directory is not writable", o.out_dir.string());
  for (const std::string& split : {o.split, o.split + "_bytes"}) {
    const auto existing = shard::list(o.out_dir, split);
    if (!existing.empty() && !o.overwrite)
      fail("--out {}: already holds {} {} file(s) (e.g. {}); pass --overwrite to replace them", o.out_dir.string(),
           existing.size(), split, existing.front().filename().string());
  }
}

// With --overwrite, files of an earlier run (more shards, or CaseOps sidecars that the new data does
// not have) would otherwise remain beside ours.
void remove_stale(const fs::path& dir, const std::string& split, const std::vector<fs::path>& keep) {
  for (const auto& old : shard::list(dir, split))
    if (std::find(keep.begin(), keep.end(), old) == keep.end()) fs::remove(old);
}

}  // namespace

ShardReport write_shards(const ShardOptions& o) {
  if (o.split != "train" && o.split != "val") fail("--split {}: expected train or val", o.split);
  const Tokenizer tokenizer = Tokenizer::load(o.tokenizer);
  if (tokenizer.vocab_size() > 65536)
    fail("tokenizer {}: vocab {} does not fit uint16 shard tokens", o.tokenizer.string(), tokenizer.vocab_size());
  if (tokenizer.bos_id() != shard::kBos)
    fail("tokenizer {}: BOS id is {}, the shard format needs {}", o.tokenizer.string(), tokenizer.bos_id(), shard::kBos);
  if (o.caseops && !tokenizer.is_caseops())
    fail("--caseops: tokenizer {} is not a CaseOps tokenizer (it lacks the operator pieces U+E001..U+E004); "
         "train one with golf-data tokenizer --caseops",
         tokenizer.describe());
  const EncodeMode mode{tokenizer.is_caseops(), tokenizer.is_caseops() && o.split == "val", o.verify_bytes};
  const ByteTable table = ByteTable::build(tokenizer);
  DocumentReader reader(o.inputs);
  prepare_output(o);

  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  shard::Writer writer(o.out_dir, o.split, o.shard_tokens);
  std::optional<shard::Writer> sidecar_writer;  // same cut points: appended in step with `writer`
  ShardReport report;
  report.tokenizer_kind = tokenizer.kind();
  if (mode.sidecar) sidecar_writer.emplace(o.out_dir, o.split + "_bytes", o.shard_tokens), report.sidecar_bytes = 0;
  if (o.verify_bytes) report.decoded_bytes = 0;
  if (o.verify_bytes && mode.caseops) report.round_trip_ok = 0;
  if (o.verify_bytes && mode.sidecar) report.sidecar_equal_docs = 0;
  Progress progress(fmt::format("shards {}", o.split), reader.bytes_total());

  auto docs_left = [&] { return o.max_docs < 0 ? int64_t{-1} : o.max_docs - report.documents; };
  auto next = std::async(std::launch::async, read_batch, std::ref(reader), docs_left());
  for (;;) {
    Batch batch = next.get();
    if (batch.docs.empty()) break;
    const int64_t left_after = o.max_docs < 0 ? -1 : docs_left() - static_cast<int64_t>(batch.docs.size());
    next = std::async(std::launch::async, read_batch, std::ref(reader), left_after);

    const auto encoded = encode_batch(tokenizer, batch, threads, mode);
    for (size_t i = 0; i < encoded.size(); ++i) {
      const auto& tokens = encoded[i].tokens;
      const Document& doc = batch.docs[i];
      if (mode.caseops) {
        report.edge_whitespace_docs += encoded[i].edge_whitespace > 0;
        if (report.round_trip_ok) {
          if (!encoded[i].round_trip) fail("{}: CaseOps round trip failed: decode(encode(text)) differs from the text", doc.where);
          *report.round_trip_ok += 1;
        }
      }
      if (mode.sidecar) {
        int64_t sum = 0;
        for (const uint16_t b : encoded[i].sidecar) sum += b;
        *report.sidecar_bytes += sum;
        if (report.sidecar_equal_docs) {
          const int64_t expected = static_cast<int64_t>(doc.text.size()) - encoded[i].edge_whitespace;
          if (sum != expected)
            fail("{}: the byte sidecar counts {} bytes but the document has {} (of {}, less {} bytes of edge whitespace)",
                 doc.where, sum, expected, doc.text.size(), encoded[i].edge_whitespace);
          *report.sidecar_equal_docs += 1;
        }
        sidecar_writer->append(encoded[i].sidecar);
      }
      const int64_t doc_bytes = table.count(std::span(tokens).subspan(1), shard::kBos);
      if (report.decoded_bytes) {
        const std::vector<int> ids(tokens.begin() + 1, tokens.end());
        const auto decoded = static_cast<int64_t>(tokenizer.decode(ids).size());
        if (decoded != doc_bytes)
          fail("{}: the byte table counts {} bytes but the decoded text has {}", doc.where, doc_bytes, decoded);
        *report.decoded_bytes += decoded;
      }
      // The stream's byte total is the sum over documents: a BOS target costs 0 bytes.
      report.table_bytes += doc_bytes;
      writer.append(tokens);
    }
    report.documents += static_cast<int64_t>(batch.docs.size());
    report.text_bytes += batch.text_bytes;
    const double secs = progress.elapsed_seconds();
    progress.update(batch.consumed_after, fmt::format("{} docs, {:.1f}M tokens, {:.2f} MB/s text", report.documents,
                                                      static_cast<double>(writer.tokens_written()) / 1e6,
                                                      static_cast<double>(report.text_bytes) / 1e6 / std::max(secs, 1e-9)));
  }
  if (report.documents == 0) fail("no documents in the inputs");
  report.tokens = writer.tokens_written();
  report.shards = writer.finish();
  if (sidecar_writer) report.sidecars = sidecar_writer->finish();
  remove_stale(o.out_dir, o.split, report.shards);
  remove_stale(o.out_dir, o.split + "_bytes", report.sidecars);
  report.seconds = progress.elapsed_seconds();
  progress.finish(fmt::format("{} docs, {} tokens in {} shard(s)", report.documents, report.tokens, report.shards.size()));
  return report;
}

}  // namespace golf::data
