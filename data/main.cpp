// golf-data — tokenizer training, challenge-format token shards, shard inspection.
//
//   golf-data tokenizer --input F... --vocab 8192 --out X.model [--caseops]
//   golf-data shards    --input F... --tokenizer X.model --out DIR --split train|val [--caseops] [--verify-bytes]
//   golf-data inspect   FILE|DIR [--tokenizer X.model] [--json]
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "core/error.h"
#include "core/main_error.h"
#include "core/progress.h"
#include "data/golf_data.h"

namespace gd = golf::data;

static nlohmann::json shard_json(const gd::ShardOptions& o, const gd::ShardReport& r) {
  nlohmann::json j = {{"split", o.split}, {"tokenizer", o.tokenizer.string()}, {"documents", r.documents},
                      {"tokens", r.tokens}, {"text_bytes", r.text_bytes}, {"table_bytes", r.table_bytes},
                      {"bytes_per_token", r.tokens ? double(r.table_bytes) / double(r.tokens) : 0.0},
                      {"seconds", r.seconds}, {"text_mb_per_s", double(r.text_bytes) / 1e6 / std::max(r.seconds, 1e-9)}};
  j["decoded_bytes"] = r.decoded_bytes ? nlohmann::json(*r.decoded_bytes) : nlohmann::json(nullptr);
  for (const auto& p : r.shards) j["shards"].push_back(p.string());
  j["tokenizer_kind"] = r.tokenizer_kind;
  auto opt = [](const std::optional<int64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  j["sidecar_bytes"] = opt(r.sidecar_bytes);
  j["round_trip_ok"] = opt(r.round_trip_ok);
  j["sidecar_equal_docs"] = opt(r.sidecar_equal_docs);
  j["edge_whitespace_docs"] = r.edge_whitespace_docs;
  j["sidecars"] = nlohmann::json::array();
  for (const auto& p : r.sidecars) j["sidecars"].push_back(p.string());
  return j;
}

int main(int argc, char** argv) {
  CLI::App app{"golf-data: tokenizer training, challenge-format token shards, shard inspection"};
  app.require_subcommand(1);
  bool json = false;

  gd::TokenizerOptions tok;
  auto* tok_cmd = app.add_subcommand("tokenizer", "train a SentencePiece BPE with the challenge's settings");
  tok_cmd->add_option("--input", tok.inputs, "documents: .jsonl[.xz] (field \"text\") or .txt[.xz]")->required()->check(CLI::ExistingFile);
  tok_cmd->add_option("--vocab", tok.vocab_size, "vocabulary size")->capture_default_str();
  tok_cmd->add_option("--out", tok.out, "output X.model (X.vocab is written beside it)")->required();
  tok_cmd->add_option("--max-docs", tok.max_docs, "read at most this many documents (-1: all)")->capture_default_str();
  tok_cmd->add_option("--input-sentence-size", tok.input_sentence_size, "documents sampled for training (0: all)")->capture_default_str();
  tok_cmd->add_option("--max-sentence-length", tok.max_sentence_length, "longer documents are fed in chunks of whole lines (bytes)")->capture_default_str();
  tok_cmd->add_option("--threads", tok.threads, "worker threads (0: all cores)")->capture_default_str();
  tok_cmd->add_flag("--caseops", tok.caseops, "CaseOps: train on case-transformed text, operators reserved as pieces 4..7");
  tok_cmd->add_flag("--json", json, "print the result as JSON");

  gd::ShardOptions sh;
  auto* sh_cmd = app.add_subcommand("shards", "tokenize documents into fineweb_<split>_NNNNNN.bin shards");
  sh_cmd->add_option("--input", sh.inputs, "documents: .jsonl[.xz] (field \"text\") or .txt[.xz]")->required()->check(CLI::ExistingFile);
  sh_cmd->add_option("--tokenizer", sh.tokenizer, "SentencePiece .model")->required();
  sh_cmd->add_option("--out", sh.out_dir, "output directory")->required();
  sh_cmd->add_option("--split", sh.split, "train or val")->required()->check(CLI::IsMember({"train", "val"}));
  sh_cmd->add_option("--shard-tokens", sh.shard_tokens, "tokens per shard")->capture_default_str();
  sh_cmd->add_option("--max-docs", sh.max_docs, "tokenize at most this many documents (-1: all)")->capture_default_str();
  sh_cmd->add_option("--threads", sh.threads, "encoder threads (0: all cores)")->capture_default_str();
  sh_cmd->add_flag("--overwrite", sh.overwrite, "replace existing shards of this split in --out");
  sh_cmd->add_flag("--verify-bytes", sh.verify_bytes,
                   "decode every document and check the bpb byte table against it; CaseOps: also the round trip "
                   "and Σ sidecar = the document's byte length");
  sh_cmd->add_flag("--caseops", sh.caseops,
                   "require a CaseOps tokenizer (the tokenizer's kind selects the CaseOps transform either way)");
  sh_cmd->add_flag("--json", json, "print the result as JSON");

  std::filesystem::path target;
  std::optional<std::filesystem::path> inspect_tokenizer;
  auto* in_cmd = app.add_subcommand("inspect", "validate shards and count tokens, documents and bpb bytes");
  in_cmd->add_option("target", target, "a shard file or a directory of shards")->required();
  in_cmd->add_option("--tokenizer", inspect_tokenizer, "SentencePiece .model: validate ids, count bytes");
  in_cmd->add_flag("--json", json, "print the result as JSON");

  CLI11_PARSE(app, argc, argv);
  try {
    if (*tok_cmd) {
      const auto r = gd::train_tokenizer(tok);
      if (json) {
        std::puts(nlohmann::json({{"model", tok.out.string()}, {"vocab_size", r.vocab_size}, {"documents", r.documents},
                                  {"text_bytes", r.text_bytes}, {"seconds", r.seconds}})
                      .dump(2)
                      .c_str());
      } else {
        fmt::print("tokenizer {}: vocab {}, trained on {} documents ({}) in {}\n", tok.out.string(), r.vocab_size,
                   r.documents, golf::human_bytes(double(r.text_bytes)), golf::human_seconds(r.seconds));
      }
    } else if (*sh_cmd) {
      const auto r = gd::write_shards(sh);
      const auto j = shard_json(sh, r);
      if (json) {
        std::puts(j.dump(2).c_str());
      } else {
        fmt::print("{:<22} {}\n", "shards", r.shards.size());
        for (const auto& p : r.shards) fmt::print("{:<22} {}\n", "", p.string());
        fmt::print("{:<22} {}\n{:<22} {}\n{:<22} {}\n{:<22} {}\n{:<22} {:.4f}\n", "documents", r.documents, "tokens",
                   r.tokens, "text bytes (raw)", r.text_bytes, "bytes (bpb table)", r.table_bytes, "bytes/token",
                   j["bytes_per_token"].get<double>());
        if (r.decoded_bytes) fmt::print("{:<22} {} (equal to the table: checked per document)\n", "bytes (decoded)", *r.decoded_bytes);
        fmt::print("{:<22} {}\n", "tokenizer kind", r.tokenizer_kind);
        if (r.round_trip_ok)
          fmt::print("{:<22} lossless on {}/{} documents\n", "CaseOps round trip", *r.round_trip_ok, r.documents);
        if (r.sidecar_bytes) {
          fmt::print("{:<22} {} (the bpb denominator; {} file(s))\n", "bytes (sidecar)", *r.sidecar_bytes, r.sidecars.size());
          if (r.sidecar_equal_docs)
            fmt::print("{:<22} Σ sidecar = original byte length on {}/{} documents ({} vs {} raw bytes{})\n", "sidecar check",
                       *r.sidecar_equal_docs, r.documents, *r.sidecar_bytes, r.text_bytes,
                       r.edge_whitespace_docs ? fmt::format("; {} documents have edge whitespace, which no piece covers", r.edge_whitespace_docs) : "");
        }
        fmt::print("{:<22} {} ({:.2f} MB/s of text)\n", "time", golf::human_seconds(r.seconds), j["text_mb_per_s"].get<double>());
      }
    } else if (*in_cmd) {
      const auto r = gd::inspect(target, inspect_tokenizer);
      if (json) std::puts(gd::to_json(r).dump(2).c_str());
      else std::fputs(gd::to_table(r).c_str(), stdout);
    }
  } catch (...) {
    return golf::main_error("golf-data");  // core/main_error.h
  }
  return 0;
}
