// LoRA TTT (rules notes §5.2, §5.4) and phased TTT (§5.3): document-batched, score-first test-time
// LoRA, and global SGD on the base weights over already-scored documents between phases.
//
// Deliberate differences from the records, each for determinism:
//   * Batches go to ranks round-robin in queue order (the records: a race on a file counter).
//     Phase k starts once every batch up to the one holding the b_k-th document in queue order is
//     scored, on every rank (a barrier), so which documents are scored before each phase is fixed
//     by the queue alone: the same for 1 or N processes and on every rerun. Among those documents
//     phase k trains on the b_k shortest (the records' sort by ascending-length batch index and
//     position, applied to a deterministic scored set).
//   * A "re-drawn" A is drawn from a generator seeded by (SEED, phase) for each LoRA slot, so the
//     reset is the same draw every time; a document's result depends only on its own tokens, its
//     slot in the batch and the base weights (bit-identical across world sizes).
//   * With TTT_WARM_START_A=1, A carries across the batches one rank processes: results then
//     depend on the world size (as in the records; not document-independent).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <numeric>

#include "core/error.h"
#include "model/model.h"
#include "core/progress.h"
#include "scoring/protocols.h"
#include "scoring/protocols_internal.h"

namespace golf::scoring {

using namespace detail;

// ---- documents and the queue -----------------------------------------------------------------
std::vector<Document> documents(const Stream& s, int64_t bos) {
  std::vector<Document> docs;
  const int64_t M = s.predictions;
  int64_t start = 0;
  for (int64_t j = 1; j <= M; ++j) {  // prediction j − 1 predicts token j; a BOS at j starts a document
    if (j == M || s.tokens[static_cast<size_t>(j)] == bos) {
      if (j > start) docs.push_back({start, j});
      start = j;
    }
  }
  return docs;
}

std::vector<std::vector<int64_t>> lora_queue(const std::vector<Document>& docs, int64_t batch_size) {
  std::vector<int64_t> order(docs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return docs[static_cast<size_t>(a)].predictions() < docs[static_cast<size_t>(b)].predictions(); });
  std::vector<std::vector<int64_t>> batches;
  for (size_t i = 0; i < order.size(); i += static_cast<size_t>(batch_size))
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(i),
                         order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), i + static_cast<size_t>(batch_size))));
  std::stable_sort(batches.begin(), batches.end(), [&](const auto& a, const auto& b) {
    return docs[static_cast<size_t>(a.back())].predictions() > docs[static_cast<size_t>(b.back())].predictions();
  });
  return batches;
}

LoraOptions LoraOptions::from(const EvalConfig& cfg, int64_t seed) {
  LoraOptions o;
  o.rank = cfg.ttt_lora_rank;
  o.alpha = cfg.ttt_lora_alpha;
  o.lr = cfg.ttt_lora_lr;
  o.chunk = cfg.ttt_chunk_size;
  o.seq_len = cfg.ttt_eval_seq_len;
  o.batch_size = cfg.ttt_batch_size;
  o.grad_steps = cfg.ttt_grad_steps;
  o.weight_decay = cfg.ttt_weight_decay;
  o.beta1 = cfg.ttt_beta1;
  o.beta2 = cfg.ttt_beta2;
  o.k = cfg.ttt_k_lora != 0;
  o.o = cfg.ttt_o_lora != 0;
  o.mlp = cfg.ttt_mlp_lora != 0;
  o.warm_start_a = cfg.ttt_warm_start_a != 0;
  o.seed = static_cast<uint64_t>(seed);
  o.phased = cfg.ttt_mode == "phased";
  o.prefix_docs = cfg.phased_ttt_prefix_docs;
  o.num_phases = cfg.phased_ttt_num_phases;
  o.global_lr = cfg.global_ttt_lr;
  o.global_momentum = cfg.global_ttt_momentum;
  o.global_chunk_tokens = cfg.global_ttt_chunk_tokens;
  o.global_epochs = cfg.global_ttt_epochs;
  o.global_batch_seqs = cfg.ttt_batch_seqs;
  o.global_grad_clip = cfg.ttt_grad_clip;
  return o;
}

namespace {

struct Site {
  const char* name;
  int64_t in, out;
};

// The LoRA'd projections of one layer visit, in LoraVisit order.
std::vector<Site> visit_sites(const ModelConfig& cfg, const LoraOptions& o) {
  const int64_t d = cfg.model_dim, kv = cfg.num_kv_heads * (d / cfg.num_heads);
  std::vector<Site> s = {{"q", d, d}};
  if (o.k) s.push_back({"k", d, kv});
  s.push_back({"v", d, kv});
  if (o.o) s.push_back({"o", d, d});
  if (o.mlp) s.push_back({"mlp", d, d});
  return s;
}

}  // namespace

void validate_lora(const ModelConfig& cfg, const LoraOptions& o) {
  if (cfg.moa_enabled) fail("TTT_MODE={}: test-time LoRA is not available with MOA_ENABLED=1", o.phased ? "phased" : "lora");
  for (const Site& s : visit_sites(cfg, o))
    if (o.rank > std::min(s.in, s.out))
      fail("TTT_LORA_RANK={} exceeds the {} projection's size {}x{} (MODEL_DIM={}, NUM_KV_HEADS={}): the rank must be "
           "at most {}",
           o.rank, s.name == std::string("v") || s.name == std::string("k") ? "K/V" : s.name, s.out, s.in, cfg.model_dim,
           cfg.num_kv_heads, std::min(s.in, s.out));
  if (o.rank > std::min(cfg.model_dim, cfg.vocab_size))
    fail("TTT_LORA_RANK={} exceeds the head's size {}x{}", o.rank, cfg.vocab_size, cfg.model_dim);
}

namespace {

// The batched LoRA of one rank: `slots` documents, each its own slice of every A and B.
class LoraState {
 public:
  LoraState(const Model& model, const LoraOptions& o, int64_t slots, at::Device device) : o_(o), slots_(slots) {
    const ModelConfig& cfg = model.config();
    const auto [enc, dec] = model.visit_order(cfg.num_loops > 0);
    visits_ = static_cast<int64_t>(enc.size() + dec.size());
    sites_ = visit_sites(cfg, o);
    for (int64_t v = 0; v < visits_; ++v)
      for (const Site& s : sites_) add(slots, s.in, s.out, device);
    add(slots, cfg.model_dim, cfg.vocab_size, device);  // the head
  }

  // A new LoRA: B = 0, optimizer state zeroed, and A ~ U(±1/√in) drawn per slot from a generator
  // seeded by (SEED, generation, slot) — a slot's draw does not depend on the number of slots.
  void build(uint64_t generation) {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> a0(pairs_.size());
    for (size_t i = 0; i < pairs_.size(); ++i) a0[i] = at::empty(pairs_[i].a.sizes(), at::kFloat);
    for (int64_t slot = 0; slot < slots_; ++slot) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>((o_.seed * 1000003ULL + generation) * 1000003ULL + static_cast<uint64_t>(slot));
      for (size_t i = 0; i < pairs_.size(); ++i) {
        const double bound = 1.0 / std::sqrt(static_cast<double>(a0[i].size(2)));
        a0[i][slot].uniform_(-bound, bound, gen);
      }
    }
    for (size_t i = 0; i < pairs_.size(); ++i) pairs_[i].a0 = a0[i].to(pairs_[i].a.device());
    reset(/*keep_a=*/false);
  }
  // Per-batch reset: B = 0, optimizer zeroed; A back to its draw unless warm-started.
  void reset(bool keep_a) {
    at::NoGradGuard no_grad;
    for (auto& p : pairs_) {
      if (!keep_a) p.a.copy_(p.a0);
      p.b.zero_();
      for (auto* t : {&p.ma, &p.va, &p.mb, &p.vb}) t->zero_();
    }
    step_ = 0;
  }

  // The deltas for the active slots `idx` (rows of the forward, in order).
  LoraDelta delta(const at::Tensor& idx) const {
    const double scale = o_.alpha / static_cast<double>(o_.rank);
    auto pick = [&](const Pair& p) { return LoraPair{p.a.index_select(0, idx), p.b.index_select(0, idx), scale}; };
    LoraDelta d;
    size_t n = 0;
    for (int64_t v = 0; v < visits_; ++v) {
      LoraVisit lv;
      for (const Site& s : sites_) {
        const LoraPair lp = pick(pairs_[n++]);
        const std::string name = s.name;
        (name == "q" ? lv.q : name == "k" ? lv.k : name == "v" ? lv.v : name == "o" ? lv.o : lv.mlp) = lp;
      }
      d.visits.push_back(lv);
    }
    d.head = pick(pairs_[n]);
    return d;
  }

  // One AdamW step (torch.optim.AdamW: decoupled decay, bias-corrected moments) on every A and B.
  void step() {
    at::NoGradGuard no_grad;
    ++step_;
    const double bc1 = 1 - std::pow(o_.beta1, static_cast<double>(step_));
    const double bc2 = 1 - std::pow(o_.beta2, static_cast<double>(step_));
    auto adamw = [&](at::Tensor& p, at::Tensor& m, at::Tensor& v) {
      at::Tensor g = p.mutable_grad();
      if (!g.defined()) g = at::zeros_like(p);
      p.mul_(1 - o_.lr * o_.weight_decay);
      m.mul_(o_.beta1).add_(g, 1 - o_.beta1);
      v.mul_(o_.beta2).addcmul_(g, g, 1 - o_.beta2);
      p.addcdiv_(m, (v / bc2).sqrt_().add_(o_.eps), -o_.lr / bc1);
      if (p.mutable_grad().defined()) p.mutable_grad().zero_();
    };
    for (auto& p : pairs_) {
      adamw(p.a, p.ma, p.va);
      adamw(p.b, p.mb, p.vb);
    }
  }

 private:
  struct Pair {
    at::Tensor a, b, a0, ma, va, mb, vb;  // A (S, r, in), B (S, out, r); a0: A's draw
  };
  void add(int64_t slots, int64_t in, int64_t out, at::Device device) {
    const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
    Pair p;
    p.a = at::zeros({slots, o_.rank, in}, f32).requires_grad_(true);
    p.b = at::zeros({slots, out, o_.rank}, f32).requires_grad_(true);
    p.ma = at::zeros_like(p.a.detach());
    p.va = at::zeros_like(p.a.detach());
    p.mb = at::zeros_like(p.b.detach());
    p.vb = at::zeros_like(p.b.detach());
    pairs_.push_back(std::move(p));
  }

  LoraOptions o_;
  int64_t slots_ = 0, visits_ = 0;
  std::vector<Site> sites_;
  std::vector<Pair> pairs_;
  int64_t step_ = 0;
};

// The batches of each segment: segment k ends with the batch holding the b_k-th document of the
// queue (phase k runs after it); the last segment runs to the end of the queue.
struct Plan {
  std::vector<std::vector<int64_t>> queue;  // batches of document indices
  std::vector<int64_t> segment_end;         // per phase k: batches [.., segment_end[k]) scored before it
  std::vector<int64_t> phase_docs;          // b_k
};

Plan make_plan(const std::vector<Document>& docs, const LoraOptions& o) {
  Plan p;
  p.queue = lora_queue(docs, o.batch_size);
  if (!o.phased) return p;
  const int64_t prefix = std::min<int64_t>(o.prefix_docs, static_cast<int64_t>(docs.size()));
  for (int64_t k = 1; k <= o.num_phases; ++k) {
    const int64_t b = prefix * k / o.num_phases;
    if (b == 0) continue;
    int64_t seen = 0, end = 0;  // batches until the b-th document of the queue
    while (seen < b) seen += static_cast<int64_t>(p.queue[static_cast<size_t>(end++)].size());
    p.segment_end.push_back(end);
    p.phase_docs.push_back(b);
  }
  return p;
}

// Global SGD on the base weights over the documents `train` (concatenated in this order): chunks of
// GLOBAL_TTT_CHUNK_TOKENS predictions, cosine lr over chunks, the last chunk skipped, rows of
// TTT_EVAL_SEQ_LEN split over ranks, TTT_BATCH_SEQS rows per rank per step, grads averaged over the
// step's rows, clip, SGD with momentum (fresh each phase). Returns the number of steps.
int64_t global_sgd(ModelLM& lm, const Stream& s, const std::vector<Document>& docs, const std::vector<int64_t>& train,
                   const LoraOptions& o, const Ranks& ranks, Ledger* ledger, int64_t phase) {
  // Concatenated predictions: inputs tokens[j], targets tokens[j + 1], j over each document's own predictions.
  std::vector<int64_t> pred;          // global prediction index per concatenated position
  std::vector<uint8_t> starts_doc;    // 1 where a document starts
  for (const int64_t d : train) {
    const Document& doc = docs[static_cast<size_t>(d)];
    for (int64_t j = doc.begin; j < doc.end; ++j) {
      pred.push_back(j);
      starts_doc.push_back(j == doc.begin);
    }
  }
  const int64_t N = static_cast<int64_t>(pred.size()), G = o.global_chunk_tokens, L = o.seq_len;
  const int64_t K = (N + G - 1) / G;
  at::Tensor times;  // score time of each concatenated prediction, merged over ranks
  if (ledger) {
    times = at::zeros({std::max<int64_t>(N, 1)}, at::kInt);
    int32_t* t = times.data_ptr<int32_t>();
    for (int64_t i = 0; i < N; ++i) t[i] = ledger->score_times()[static_cast<size_t>(pred[static_cast<size_t>(i)])];
    all_sum(times, ranks);
  }
  if (ranks.rank == 0)
    fmt::print("ttpp: phase:{} gd:{} tokens:{} chunks:{}\n", phase + 1, train.size(), N, std::max<int64_t>(K - 1, 0));
  Sgd sgd(lm.trainable(), o.sgd);
  std::vector<at::Tensor>& params = sgd.params;
  std::vector<int64_t> in, tg;
  int64_t steps_taken = 0;
  for (int64_t c = 0; c + 1 < K; ++c) {  // the last chunk is never trained on
    const double lr = K > 2 ? o.global_lr * 0.5 * (1 + std::cos(std::numbers::pi * static_cast<double>(c) / static_cast<double>(K - 1))) : o.global_lr;
    const int64_t begin = c * G;
    const RowBatches rb{std::min(G, N - begin) / L, o.global_batch_seqs};
    for (int64_t epoch = 0; epoch < o.global_epochs; ++epoch)
      for (int64_t k = 0; k < rb.steps(ranks); ++k) {
        if (ledger) ledger->tick();
        at::AutoGradMode grad_on(true);
        for (auto& p : params)
          if (p.mutable_grad().defined()) p.mutable_grad().zero_();
        const auto [r0, r1] = rb.rows_of(k, ranks.rank, ranks.world);
        const int64_t n = r1 - r0;
        if (n > 0) {
          in.resize(static_cast<size_t>(n * L));
          tg.resize(static_cast<size_t>(n * L));
          for (int64_t r = 0; r < n; ++r)
            for (int64_t t = 0; t < L; ++t) {
              const int64_t j = pred[static_cast<size_t>(begin + (r0 + r) * L + t)];
              in[static_cast<size_t>(r * L + t)] = s.tokens[static_cast<size_t>(j)];
              tg[static_cast<size_t>(r * L + t)] = s.tokens[static_cast<size_t>(j + 1)];
            }
          const at::Tensor host_inputs = at::from_blob(in.data(), {n, L}, at::kLong);
          const at::Tensor inputs = to_device_async(host_inputs, lm.device());
          const at::Tensor targets = to_device_async(at::from_blob(tg.data(), {n, L}, at::kLong), lm.device());
          // Rows join documents; attention restarts at each BOS (a document start) as in training.
          const at::Tensor loss = lm.loss_cut(inputs, targets, L, host_inputs) *
                                  (static_cast<double>(n) / static_cast<double>(rb.rows_in_step(k, ranks.world)));
          loss.backward();
        }
        lm.after_backward();
        const std::vector<at::Tensor> grads = summed_grads(params, ranks);
        sgd.step(grads, lr, o.global_momentum, o.global_grad_clip);
        ++steps_taken;
        if (ledger && ranks.rank == 0) {  // rank 0 records every rank's rows, as one update
          bool counted = false;
          for (int r = 0; r < ranks.world; ++r) {
            const auto [a, b] = rb.rows_of(k, r, ranks.world);
            if (a == b) continue;
            // Rows [a, b): concatenated positions [begin + a·L, begin + b·L); the first input token
            // is the previous position's target unless it is a document's (constant) BOS.
            int64_t t0 = begin + a * L;
            if (t0 > 0 && !starts_doc[static_cast<size_t>(t0)]) --t0;
            const int64_t t1 = begin + b * L;
            for (int64_t x = t0; x < t1;) {  // runs of consecutive global predictions
              int64_t y = x + 1;
              while (y < t1 && pred[static_cast<size_t>(y)] == pred[static_cast<size_t>(y - 1)] + 1) ++y;
              ledger->used(pred[static_cast<size_t>(x)], pred[static_cast<size_t>(y - 1)] + 1,
                           std::span<const int32_t>(times.data_ptr<int32_t>() + x, static_cast<size_t>(y - x)), !counted);
              counted = true;
              x = y;
            }
          }
        }
      }
  }
  return steps_taken;
}

}  // namespace

QueuePlace lora_queue_places(const Stream& s, const Config& cfg, const LoraOptions& o) {
  const auto docs = documents(s, cfg.bos_token_id);
  const Plan plan = make_plan(docs, o);
  QueuePlace q;
  q.doc_of.assign(static_cast<size_t>(s.predictions), -1);
  q.batch_of_doc.assign(docs.size(), -1);
  q.segment_of_doc.assign(docs.size(), 0);
  for (size_t d = 0; d < docs.size(); ++d)
    for (int64_t j = docs[d].begin; j < docs[d].end; ++j) q.doc_of[static_cast<size_t>(j)] = static_cast<int64_t>(d);
  for (size_t b = 0; b < plan.queue.size(); ++b) {
    int64_t seg = 0;
    while (seg < static_cast<int64_t>(plan.segment_end.size()) && static_cast<int64_t>(b) >= plan.segment_end[static_cast<size_t>(seg)]) ++seg;
    for (const int64_t d : plan.queue[b]) {
      q.batch_of_doc[static_cast<size_t>(d)] = static_cast<int64_t>(b);
      q.segment_of_doc[static_cast<size_t>(d)] = seg;
    }
  }
  return q;
}

Totals lora_ttt(LanguageModel& base_lm, const Stream& s, const Config& cfg, const LoraOptions& o, const Ranks& ranks,
                Hooks hooks) {
  const auto t0 = std::chrono::steady_clock::now();
  auto* lm_ptr = dynamic_cast<ModelLM*>(&base_lm);
  if (!lm_ptr) fail("LoRA TTT needs the golf model (ModelLM)");
  ModelLM& lm = *lm_ptr;
  validate_lora(cfg, o);
  const std::vector<Document> docs = documents(s, cfg.bos_token_id);
  const Plan plan = make_plan(docs, o);
  const int64_t nb = static_cast<int64_t>(plan.queue.size());
  const std::span<const uint16_t> score_targets = s.score_targets.empty() ? s.tokens : s.score_targets;
  const bool probe = !s.score_targets.empty();  // causality probe: score the original targets, train on the stream
  Ledger* ledger = hooks.ledger;

  // Each document's rank in the ascending-length order: phases train on the shortest scored ones.
  std::vector<int64_t> length_rank(docs.size());
  {
    int64_t r = 0;
    std::vector<std::vector<int64_t>> by_len = lora_queue(docs, std::max<int64_t>(1, static_cast<int64_t>(docs.size())));
    for (const auto& b : by_len)
      for (const int64_t d : b) length_rank[static_cast<size_t>(d)] = r++;
  }

  if (ranks.rank == 0 && hooks.progress) {
    fmt::print("ttt_lora:docs:{} rank:{} lr:{} chunk:{} batches:{} alpha:{} warm_start_a:{}{}\n", docs.size(), o.rank, o.lr,
               o.chunk, nb, o.alpha, o.warm_start_a ? 1 : 0,
               o.phased ? fmt::format(" phases:{} prefix_docs:{} global_lr:{}", plan.phase_docs.size(), o.prefix_docs, o.global_lr)
                        : std::string());
    std::fflush(stdout);
  }
  // The base weights take no gradients while the LoRA trains (global SGD turns them on per phase).
  struct BaseGrads {
    std::vector<at::Tensor> params;
    void set(bool on) { for (auto& p : params) p.requires_grad_(on); }
    ~BaseGrads() { set(true); }
  } base{lm.trainable()};
  base.set(false);
  LoraState lora(lm.model(), o, o.batch_size, lm.device());
  uint64_t generation = 0;
  lora.build(generation);
  bool fresh = true;  // no batch since the LoRA was built

  Totals acc;
  std::unique_ptr<Progress> progress;
  if (hooks.progress) progress = std::make_unique<Progress>(o.phased ? "phased ttt" : "lora ttt", nb, "batches");
  int64_t done_batches = 0, my_batches = 0;
  std::vector<int64_t> in, tg, sc;
  TttObserver* observer = hooks.observer;

  auto run_batch = [&](const std::vector<int64_t>& batch) {
    if (!fresh) lora.reset(o.warm_start_a);
    fresh = false;
    const int64_t n = static_cast<int64_t>(batch.size());
    std::vector<int64_t> chunks(static_cast<size_t>(n));
    int64_t max_chunks = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t P = docs[static_cast<size_t>(batch[static_cast<size_t>(i)])].predictions();
      chunks[static_cast<size_t>(i)] = (P + o.chunk - 1) / o.chunk;
      max_chunks = std::max(max_chunks, chunks[static_cast<size_t>(i)]);
    }
    for (int64_t c = 0; c < max_chunks; ++c) {
      // Active documents: their chunk c, in a window of the last ≤ TTT_EVAL_SEQ_LEN predictions.
      std::vector<int64_t> slots, ws, cs, ce;
      int64_t T = 0;
      bool any_train = false;
      for (int64_t i = 0; i < n; ++i) {
        if (c >= chunks[static_cast<size_t>(i)]) continue;
        const Document& d = docs[static_cast<size_t>(batch[static_cast<size_t>(i)])];
        const int64_t a = d.begin + c * o.chunk, e = std::min(a + o.chunk, d.end), w = std::max(d.begin, e - o.seq_len);
        slots.push_back(i);
        ws.push_back(w);
        cs.push_back(a);
        ce.push_back(e);
        T = std::max(T, e - w);
        any_train = any_train || c < chunks[static_cast<size_t>(i)] - 1;
      }
      const int64_t R = static_cast<int64_t>(slots.size());
      in.assign(static_cast<size_t>(R * T), 0);  // padding after each row: causal, never scored or trained on
      tg.assign(static_cast<size_t>(R * T), 0);
      sc.assign(static_cast<size_t>(R * T), 0);
      at::Tensor mask = at::zeros({R, T}, at::kFloat);  // the chunk positions of documents that train
      float* mk = mask.data_ptr<float>();
      for (int64_t r = 0; r < R; ++r) {
        for (int64_t t = 0; t < ce[r] - ws[r]; ++t) {
          const auto j = static_cast<size_t>(ws[r] + t);
          in[static_cast<size_t>(r * T + t)] = s.tokens[j];
          tg[static_cast<size_t>(r * T + t)] = s.tokens[j + 1];
          sc[static_cast<size_t>(r * T + t)] = score_targets[j + 1];
        }
        if (c < chunks[static_cast<size_t>(slots[static_cast<size_t>(r)])] - 1)
          for (int64_t j = cs[r]; j < ce[r]; ++j) mk[r * T + (j - ws[r])] = 1.0f / static_cast<float>(ce[r] - cs[r]);
      }
      const at::Tensor host_inputs = at::from_blob(in.data(), {R, T}, at::kLong);
      const at::Tensor inputs = to_device_async(host_inputs, lm.device());
      const at::Tensor targets = to_device_async(at::from_blob(tg.data(), {R, T}, at::kLong), lm.device());
      const at::Tensor scored_targets = to_device_async(at::from_blob(sc.data(), {R, T}, at::kLong), lm.device());
      const at::Tensor weights = to_device_async(mask, lm.device());
      const at::Tensor idx = to_device_async(at::tensor(slots, at::kLong), lm.device());

      // One AdamW step on the chunk: Σ over training documents of the mean nll of their chunk.
      auto train_step = [&](const at::Tensor* nll_with_grad) {
        at::AutoGradMode grad_on(true);
        at::Tensor nll = nll_with_grad ? *nll_with_grad : lm.lora_nll(inputs, targets, lora.delta(idx), o.seq_len, host_inputs);
        (nll * weights).sum().backward();
        if (ledger) ledger->tick();
        lora.step();
        if (ledger) {
          bool counted = false;
          for (int64_t r = 0; r < R; ++r) {
            if (c >= chunks[static_cast<size_t>(slots[static_cast<size_t>(r)])] - 1) continue;
            const Document& d = docs[static_cast<size_t>(batch[static_cast<size_t>(slots[static_cast<size_t>(r)])])];
            // Inputs [ws, ce) and targets [cs, ce] of this document: predictions [ws − 1, ce), the
            // document's leading BOS (a constant) aside.
            ledger->used_local(std::max(d.begin, ws[r] - 1), ce[r], !counted);
            counted = true;
          }
        }
      };
      const bool train = any_train && o.grad_steps > 0;
      if (observer) observer->before_score(train ? [&] { train_step(nullptr); } : std::function<void()>());

      if (ledger) ledger->tick();
      at::Tensor nll;
      {
        at::AutoGradMode grad_mode(train && !probe);
        nll = lm.lora_nll(inputs, targets, lora.delta(idx), o.seq_len, host_inputs);  // (R, T)
      }
      at::Tensor score_nll = nll;
      if (probe) {
        at::NoGradGuard no_grad;
        score_nll = lm.lora_nll(inputs, scored_targets, lora.delta(idx), o.seq_len, host_inputs);
      }
      const at::Tensor v = score_nll.detach().to(at::kDouble).cpu().contiguous();
      const double* pv = v.data_ptr<double>();
      for (int64_t r = 0; r < R; ++r)
        for (int64_t j = cs[r]; j < ce[r]; ++j) {
          const double x = pv[r * T + (j - ws[r])];
          acc.nll += x;
          acc.bytes += s.bytes(j, score_targets);  // the table, or the CaseOps sidecar
          ++acc.predictions;
          if (ledger) ledger->scored(j);
          if (hooks.nll) (*hooks.nll)[static_cast<size_t>(j)] = x;
        }
      acc.windows += R;

      if (train) {
        train_step(nll.requires_grad() ? &nll : nullptr);
        for (int64_t g = 1; g < o.grad_steps; ++g) train_step(nullptr);
      }
    }
    ++my_batches;
  };

  int64_t seg_begin = 0;
  const int64_t segments = static_cast<int64_t>(plan.segment_end.size()) + 1;
  for (int64_t seg = 0; seg < segments; ++seg) {
    const int64_t seg_end = seg < segments - 1 ? plan.segment_end[static_cast<size_t>(seg)] : nb;
    for (int64_t b = seg_begin; b < seg_end; ++b) {
      if ((b - seg_begin) % ranks.world == ranks.rank) run_batch(plan.queue[static_cast<size_t>(b)]);
      ++done_batches;
      if (progress)
        progress->update(done_batches, acc.bytes ? fmt::format("rank-local bpb {:.4f}", acc.nll / (std::numbers::ln2 * static_cast<double>(acc.bytes))) : "");
    }
    seg_begin = std::max(seg_begin, seg_end);
    if (seg == segments - 1) break;
    // Phase seg: every rank has scored batches [0, seg_end); agree on the clock, then global SGD.
    if (ledger) ledger->set_now(static_cast<int32_t>(all_max(ledger->now(), ranks)));
    const int64_t b_k = plan.phase_docs[static_cast<size_t>(seg)];
    std::vector<int64_t> scored;
    for (int64_t b = 0; b < seg_end; ++b)
      for (const int64_t d : plan.queue[static_cast<size_t>(b)]) scored.push_back(d);
    std::sort(scored.begin(), scored.end(),
              [&](int64_t a, int64_t b) { return length_rank[static_cast<size_t>(a)] < length_rank[static_cast<size_t>(b)]; });
    scored.resize(static_cast<size_t>(std::min<int64_t>(b_k, static_cast<int64_t>(scored.size()))));
    if (observer) {
      std::span<const int64_t> next;  // the first batch not scored yet
      if (seg_end < nb) next = plan.queue[static_cast<size_t>(seg_end)];
      observer->before_phase(scored, next);
    }
    base.set(true);
    acc.global_steps += global_sgd(lm, s, docs, scored, o, ranks, ledger, seg);
    base.set(false);
    ++acc.phases;
    lora.build(++generation);  // a new LoRA and optimizer after each phase
    fresh = true;
  }
  if (progress) progress->finish();
  if (ranks.rank == 0 && hooks.progress) fmt::print("ttt_total_batches: {}/{}\n", done_batches, nb);
  merge_totals(acc, ranks);
  acc.documents = static_cast<int64_t>(docs.size());
  acc.batches = nb;
  acc.chunks = 0;
  acc.seconds = seconds_since(t0);
  (void)my_batches;
  return acc;
}

}  // namespace golf::scoring
