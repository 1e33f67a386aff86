// golf-data — tokenizer training, challenge-format token shards, shard inspection.
//
//   golf-data tokenizer --input F... --vocab 8192 --out X.model
//   golf-data shards    --input F... --tokenizer X.model --out DIR --split train|val
//   golf-data inspect   FILE|DIR [--tokenizer X.model] [--json]
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "core/error.h"
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
  sh_cmd->add_flag("--verify-bytes", sh.verify_bytes, "decode every document and check the bpb byte table against it");
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
        fmt::print("{:<22} {} ({:.2f} MB/s of text)\n", "time", golf::human_seconds(r.seconds), j["text_mb_per_s"].get<double>());
      }
    } else if (*in_cmd) {
      const auto r = gd::inspect(target, inspect_tokenizer);
      if (json) std::puts(gd::to_json(r).dump(2).c_str());
      else std::fputs(gd::to_table(r).c_str(), stdout);
    }
  } catch (const golf::Error& e) {
    std::fprintf(stderr, "golf-data: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "golf-data: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
