// golf-data tokenizer: SentencePiece BPE training fed straight from the document reader.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <thread>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/text_input.h"
#include "data/golf_data.h"

namespace golf::data {

namespace {

// The trainer pulls documents one by one. Like the challenge's exporter, training text is the
// document with NUL turned into a space and surrounding whitespace stripped.
class DocumentIterator : public sentencepiece::SentenceIterator {
 public:
  DocumentIterator(DocumentReader& reader, int64_t max_docs, TokenizerReport& report)
      : reader_(reader), max_docs_(max_docs), report_(report) {
    Next();
  }
  bool done() const override { return done_; }
  const std::string& value() const override { return text_; }
  sentencepiece::util::Status status() const override { return status_; }
  void Next() override {
    if (max_docs_ >= 0 && report_.documents >= max_docs_) {
      done_ = true;
      return;
    }
    try {
      Document doc;
      if (!reader_.next(doc)) {
        done_ = true;
        return;
      }
      for (char& c : doc.text)
        if (c == '\0') c = ' ';
      const auto first = doc.text.find_first_not_of(" \t\n\r\f\v");
      const auto last = doc.text.find_last_not_of(" \t\n\r\f\v");
      text_ = first == std::string::npos ? std::string() : doc.text.substr(first, last - first + 1);
      report_.documents += 1;
      report_.text_bytes += static_cast<int64_t>(text_.size());
    } catch (const Error& e) {
      // Surface reader errors through the trainer's status, then rethrow them ourselves.
      error_ = e.what();
      status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal, error_);
      done_ = true;
    }
  }
  const std::string& error() const { return error_; }

 private:
  DocumentReader& reader_;
  int64_t max_docs_;
  TokenizerReport& report_;
  std::string text_, error_;
  bool done_ = false;
  sentencepiece::util::Status status_;
};

}  // namespace

TokenizerReport train_tokenizer(const TokenizerOptions& o) {
  if (o.vocab_size < 260 || o.vocab_size > 65536)
    fail("--vocab {} must be in [260, 65536]: 4 special + 256 byte pieces, ids stored as uint16", o.vocab_size);
  if (o.out.extension() != ".model") fail("--out {}: expected a path ending in .model", o.out.string());
  if (o.out.has_parent_path()) std::filesystem::create_directories(o.out.parent_path());
  const auto start = std::chrono::steady_clock::now();

  DocumentReader reader(o.inputs);
  TokenizerReport report;
  DocumentIterator docs(reader, o.max_docs, report);
  if (docs.done() && docs.error().empty()) fail("no documents in the inputs");
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::unordered_map<std::string, std::string> args = {
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
      {"model_prefix", "unused"},  // the model comes back in memory and is written atomically
  };
  std::string model_proto;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &docs, &model_proto);
  if (!docs.error().empty()) fail("{}", docs.error());
  if (!status.ok()) fail("tokenizer training failed: {}", status.ToString());
  if (report.documents == 0) fail("no documents in the inputs");

  // Load what we trained, so the .vocab lists exactly the model's pieces and scores.
  sentencepiece::SentencePieceProcessor sp;
  if (const auto st = sp.LoadFromSerializedProto(model_proto); !st.ok())
    fail("trained model does not load: {}", st.ToString());
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
