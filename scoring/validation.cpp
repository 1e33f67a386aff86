#include "scoring/validation.h"

#include <ATen/ATen.h>

#include "core/dist/comm.h"
#include "core/error.h"
#include "core/tokenizer.h"
#include "scoring/protocols.h"

namespace golf::scoring {

Validation::Validation(const Config& cfg)
    : cfg_(cfg), val_(load_val(cfg, cfg.train_seq_len, "TRAIN_SEQ_LEN")) {
  table_ = ByteTable::build(Tokenizer::load(cfg.tokenizer_path), static_cast<int>(cfg.vocab_size));
}

int64_t Validation::rows_per_forward(const Config& cfg, int64_t world) {
  // The records split VAL_BATCH_SIZE over world size × gradient-accumulation steps (8 / world by
  // default, so 65,536 tokens per forward at the defaults on any number of GPUs).
  const int64_t accum = cfg.grad_accum_steps > 0 ? cfg.grad_accum_steps : std::max<int64_t>(1, 8 / world);
  return std::max<int64_t>(1, cfg.val_batch_tokens / (world * accum * cfg.train_seq_len));
}

ValidationResult Validation::evaluate(const Model& model, bool looping, dist::Comm* comm) const {
  // golf-eval's plain protocol with the training settings: rows of TRAIN_SEQ_LEN, cut there too,
  // rows_per_forward of them packed per forward.
  EvalConfig settings = cfg_;
  settings.eval_seq_len = cfg_.train_seq_len;
  settings.eval_batch_seqs = rows_per_forward(cfg_, comm ? comm->world_size() : 1);
  ModelLM lm(model, settings, looping);  // read-only: plain only runs forwards
  Stream stream;
  stream.tokens = val_.tokens;
  stream.predictions = val_.predictions;
  stream.table = &table_;
  stream.sidecar = val_.sidecar;
  Ranks ranks;
  if (comm && comm->distributed()) {
    ranks.rank = comm->rank();
    ranks.world = comm->world_size();
    // The float64 totals are a CPU tensor: all-reduced as the other float64 sums of a run are.
    ranks.sum = [comm](at::Tensor& t) {
      if (!t.is_cpu() || t.scalar_type() != at::kDouble || !t.is_contiguous())
        fail("internal: validation all-reduces only contiguous float64 CPU totals, not {}", t.toString());
      std::vector<double> v(t.const_data_ptr<double>(), t.const_data_ptr<double>() + t.numel());
      comm->all_reduce_sum(v);
      std::copy(v.begin(), v.end(), t.data_ptr<double>());
    };
  }
  Hooks hooks;
  hooks.read_each_batch = !model.fast_paths().no_sync;
  const Totals t = plain(lm, stream, settings, ranks, hooks);
  ValidationResult r;
  r.predictions = t.predictions;
  r.bytes = t.bytes;
  r.loss = t.loss();
  r.bpb = t.bpb();
  r.seconds = t.seconds;
  return r;
}

}  // namespace golf::scoring
