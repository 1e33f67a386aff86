// tests/scoring/eval_fixture.h — a tiny golf model with every path live (weights perturbed off their
// identity init) over a token stream of short documents, for the golf-eval library tests.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/byte_table.h"
#include "core/config.h"
#include "model/model.h"
#include "scoring/protocols.h"

namespace golf::test {

struct EvalFixture {
  Config cfg;
  std::vector<uint16_t> tokens;
  ByteTable table;
  int64_t predictions = 0;
  std::map<std::string, at::Tensor> weights;

  EvalFixture() {
    cfg.vocab_size = 64;
    cfg.num_layers = 3;
    cfg.model_dim = 32;
    cfg.num_heads = 4;
    cfg.num_kv_heads = 2;
    cfg.rope_dims = 4;
    cfg.gate_width = 8;
    cfg.xsa_last_n = 3;
    cfg.parallel_start_layer = 2;
    cfg.num_loops = 1;
    cfg.loop_start = 1;
    cfg.loop_end = 1;
    cfg.train_seq_len = 32;
    cfg.eval_seq_len = 32;
    cfg.eval_stride = 8;
    cfg.eval_batch_seqs = 4;
    cfg.ttt_chunk_tokens = 64;
    cfg.ttt_epochs = 2;
    cfg.device = "cpu";

    // Documents of 5..40 tokens, each starting with BOS (1); ids 4.. are text.
    std::mt19937 rng(99);
    while (tokens.size() < 385) {
      tokens.push_back(static_cast<uint16_t>(cfg.bos_token_id));
      const int len = 5 + static_cast<int>(rng() % 36);
      for (int i = 0; i < len; ++i) tokens.push_back(static_cast<uint16_t>(4 + rng() % 60));
    }
    tokens.resize(385);
    predictions = 384 / cfg.eval_seq_len * cfg.eval_seq_len;

    // Bytes: 1–3 per text id, a leading space on every third; control ids 0–3 are boundaries.
    table.base_bytes.assign(64, 0);
    table.leading_space.assign(64, 0);
    table.is_boundary.assign(64, 0);
    for (int id = 0; id < 64; ++id) {
      if (id < 4) {
        table.is_boundary[static_cast<size_t>(id)] = 1;
        continue;
      }
      table.base_bytes[static_cast<size_t>(id)] = static_cast<int16_t>(1 + id % 3);
      table.leading_space[static_cast<size_t>(id)] = id % 3 == 0;
    }

    at::manual_seed(5);
    Model model(cfg, at::kCPU);
    at::NoGradGuard no_grad;
    for (const auto& [name, p] : model.state()) weights[name] = p.detach() + 0.1 * at::randn_like(p);
  }

  std::unique_ptr<scoring::LanguageModel> make_lm() const {
    auto model = std::make_shared<Model>(cfg, at::kCPU);
    model->load_state(weights);
    return std::make_unique<scoring::ModelLM>(model, cfg);
  }
  scoring::Stream stream() const { return {tokens, predictions, &table, {}, {}}; }
};

}  // namespace golf::test
