// golf-data shards: documents → [BOS] + encode(text) per document → fineweb_<split>_NNNNNN.bin.
//
// A reader thread parses the next batch of documents while all cores encode the current one;
// batches are appended in input order, so the output bytes depend only on the input.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <thread>

#include "core/byte_table.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/shard.h"
#include "core/text_input.h"
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

// Encodes every document of the batch on `threads` threads; result[i] = [BOS] + ids(doc i).
std::vector<std::vector<uint16_t>> encode_batch(const Tokenizer& tokenizer, const Batch& batch, int threads) {
  std::vector<std::vector<uint16_t>> out(batch.docs.size());
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    try {
      for (size_t i; (i = next.fetch_add(1)) < batch.docs.size();) {
        const std::vector<int> ids = tokenizer.encode(batch.docs[i].text);
        auto& tokens = out[i];
        tokens.reserve(ids.size() + 1);
        tokens.push_back(shard::kBos);
        for (const int id : ids) tokens.push_back(static_cast<uint16_t>(id));
      }
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
  const auto existing = shard::list(o.out_dir, o.split);
  if (!existing.empty() && !o.overwrite)
    fail("--out {}: already holds {} {} shard(s) (e.g. {}); pass --overwrite to replace them", o.out_dir.string(),
         existing.size(), o.split, existing.front().filename().string());
}

}  // namespace

ShardReport write_shards(const ShardOptions& o) {
  if (o.split != "train" && o.split != "val") fail("--split {}: expected train or val", o.split);
  const Tokenizer tokenizer = Tokenizer::load(o.tokenizer);
  if (tokenizer.vocab_size() > 65536)
    fail("tokenizer {}: vocab {} does not fit uint16 shard tokens", o.tokenizer.string(), tokenizer.vocab_size());
  if (tokenizer.bos_id() != shard::kBos)
    fail("tokenizer {}: BOS id is {}, the shard format needs {}", o.tokenizer.string(), tokenizer.bos_id(), shard::kBos);
  const ByteTable table = ByteTable::build(tokenizer);
  DocumentReader reader(o.inputs);
  prepare_output(o);

  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  shard::Writer writer(o.out_dir, o.split, o.shard_tokens);
  ShardReport report;
  if (o.verify_bytes) report.decoded_bytes = 0;
  Progress progress(fmt::format("shards {}", o.split), reader.bytes_total());

  auto docs_left = [&] { return o.max_docs < 0 ? int64_t{-1} : o.max_docs - report.documents; };
  auto next = std::async(std::launch::async, read_batch, std::ref(reader), docs_left());
  for (;;) {
    Batch batch = next.get();
    if (batch.docs.empty()) break;
    const int64_t left_after = o.max_docs < 0 ? -1 : docs_left() - static_cast<int64_t>(batch.docs.size());
    next = std::async(std::launch::async, read_batch, std::ref(reader), left_after);

    const auto encoded = encode_batch(tokenizer, batch, threads);
    for (size_t i = 0; i < encoded.size(); ++i) {
      const auto& tokens = encoded[i];
      const int64_t doc_bytes = table.count(std::span(tokens).subspan(1), shard::kBos);
      if (report.decoded_bytes) {
        const std::vector<int> ids(tokens.begin() + 1, tokens.end());
        const auto decoded = static_cast<int64_t>(tokenizer.decode(ids).size());
        if (decoded != doc_bytes)
          fail("{}: the byte table counts {} bytes but the decoded text has {}", batch.docs[i].where, doc_bytes, decoded);
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
  // With --overwrite, shards of an earlier, longer run would otherwise remain past our last one.
  for (const auto& old : shard::list(o.out_dir, o.split))
    if (std::find(report.shards.begin(), report.shards.end(), old) == report.shards.end()) std::filesystem::remove(old);
  report.seconds = progress.elapsed_seconds();
  progress.finish(fmt::format("{} docs, {} tokens in {} shard(s)", report.documents, report.tokens, report.shards.size()));
  return report;
}

}  // namespace golf::data
