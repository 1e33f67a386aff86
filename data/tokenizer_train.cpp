// golf-data tokenizer: SentencePiece BPE training fed straight from the document reader.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <chrono>
#include <fstream>
#include <thread>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/caseops.h"
#include "data/caseops_encode.h"
#include "core/error.h"
#include "data/text_input.h"
#include "data/golf_data.h"

namespace golf::data {

namespace {

// The trainer pulls documents one by one. Like the challenge's exporter, training text is the
// document with NUL turned into a space and surrounding whitespace stripped. The trainer skips
// "sentences" longer than max_sentence_length, so a longer document (a whole book in one .txt)
// is fed as consecutive chunks of whole lines; pieces never span whitespace, so cutting at a
// newline loses no merge.
class DocumentIterator : public sentencepiece::SentenceIterator {
 public:
  DocumentIterator(DocumentReader& reader, int64_t max_docs, size_t max_chunk, bool caseops, TokenizerReport& report)
      : reader_(reader), max_docs_(max_docs), max_chunk_(max_chunk), caseops_(caseops), report_(report) {
    Next();
  }
  bool done() const override { return done_; }
  const std::string& value() const override { return chunk_; }
  sentencepiece::util::Status status() const override { return status_; }
  void Next() override {
    if (pos_ >= doc_.size() && !next_document()) {
      done_ = true;
      return;
    }
    // The rest of the document if it fits, else as many whole lines as fit (at least one line).
    size_t end = doc_.size();
    if (end - pos_ > max_chunk_) {
      const size_t cut = doc_.rfind('\n', pos_ + max_chunk_);
      end = (cut != std::string::npos && cut > pos_) ? cut : doc_.find('\n', pos_ + max_chunk_);
      if (end == std::string::npos) end = doc_.size();
    }
    chunk_.assign(doc_, pos_, end - pos_);
    pos_ = end + 1;
  }
  const std::string& error() const { return error_; }

 private:
  bool next_document() {
    for (;;) {
      if (max_docs_ >= 0 && report_.documents >= max_docs_) return false;
      Document doc;
      try {
        if (!reader_.next(doc)) return false;
      } catch (const Error& e) {
        // Stop the trainer through its status; train_tokenizer() rethrows the message.
        error_ = e.what();
        status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal, error_);
        return false;
      }
      for (char& c : doc.text)
        if (c == '\0') c = ' ';
      const auto first = doc.text.find_first_not_of(" \t\n\r\f\v");
      const auto last = doc.text.find_last_not_of(" \t\n\r\f\v");
      doc_ = first == std::string::npos ? std::string() : doc.text.substr(first, last - first + 1);
      pos_ = 0;
      report_.documents += 1;
      report_.text_bytes += static_cast<int64_t>(doc_.size());
      if (caseops_) doc_ = caseops::encode(doc_);  // the text the shards will encode
      if (!doc_.empty()) return true;
    }
  }

  DocumentReader& reader_;
  int64_t max_docs_;
  size_t max_chunk_;
  bool caseops_;
  TokenizerReport& report_;
  std::string doc_, chunk_, error_;
  size_t pos_ = 0;
  bool done_ = false;
  sentencepiece::util::Status status_;
};

}  // namespace

TokenizerReport train_tokenizer(const TokenizerOptions& o) {
  const int min_vocab = o.caseops ? 264 : 260;
  if (o.vocab_size < min_vocab || o.vocab_size > 65536)
    fail("--vocab {} must be in [{}, 65536]: 4 special{} + 256 byte pieces, ids stored as uint16", o.vocab_size,
         min_vocab, o.caseops ? " + 4 CaseOps operator" : "");
  if (o.out.extension() != ".model") fail("--out {}: expected a path ending in .model", o.out.string());
  if (o.out.has_parent_path()) std::filesystem::create_directories(o.out.parent_path());
  const auto start = std::chrono::steady_clock::now();

  DocumentReader reader(o.inputs);
  TokenizerReport report;
  DocumentIterator docs(reader, o.max_docs, static_cast<size_t>(o.max_sentence_length), o.caseops, report);
  if (!docs.error().empty()) fail("{}", docs.error());
  if (docs.done()) fail("no documents in the inputs");
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"character_coverage", "0.999"},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"normalization_rule_name", "nmt_nfkc"},
      {"add_dummy_prefix", "false"},
      {"pad_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"unk_id", "3"},
      {"hard_vocab_limit", "false"},
      {"input_sentence_size", std::to_string(o.input_sentence_size)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", std::to_string(o.max_sentence_length)},
      {"num_threads", std::to_string(threads)},
      // no model_prefix: the model comes back in memory and is written atomically below
  };
  // CaseOps: the operators become USER_DEFINED pieces right after UNK (ids 4..7), always one piece each.
  if (o.caseops)
    args["user_defined_symbols"] = fmt::format("{},{},{},{}", caseops::kTitle, caseops::kAllCaps, caseops::kCapNext, caseops::kEsc);
  std::string model_proto;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &docs, &model_proto);
  if (!docs.error().empty()) fail("{}", docs.error());
  if (!status.ok()) fail("tokenizer training failed: {}", status.ToString());
  if (report.documents == 0) fail("no documents in the inputs");

  // Load what we trained, so the .vocab lists exactly the model's pieces and scores.
  sentencepiece::SentencePieceProcessor sp;
  if (const auto st = sp.LoadFromSerializedProto(model_proto); !st.ok())
    fail("trained model does not load: {}", st.ToString());
  for (size_t k = 0; o.caseops && k < 4; ++k)
    if (sp.PieceToId(caseops::kOperators[k]) != static_cast<int>(4 + k))
      fail("trained CaseOps model puts operator U+E00{} at id {}, not {}", k + 1, sp.PieceToId(caseops::kOperators[k]), 4 + k);
  std::string vocab;
  for (int id = 0; id < sp.GetPieceSize(); ++id) vocab += fmt::format("{}\t{}\n", sp.IdToPiece(id), sp.GetScore(id));
  auto vocab_path = o.out;
  vocab_path.replace_extension(".vocab");
  AtomicFile model_file(o.out), vocab_file(vocab_path);
  model_file.write(model_proto);
  vocab_file.write(vocab);
  model_file.commit();
  vocab_file.commit();

  report.vocab_size = sp.GetPieceSize();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace golf::data
