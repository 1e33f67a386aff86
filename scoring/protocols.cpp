#include "scoring/protocols.h"

#include "scoring/protocols_internal.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <cmath>
#include <limits>
#include <numbers>

#include "core/device.h"
#include "core/error.h"
#include "model/model.h"
#include "core/progress.h"
#include "model/varlen.h"

namespace golf::scoring {

namespace detail {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::pair<int64_t, int64_t> share(int64_t n, int rank, int world) { return {n * rank / world, n * (rank + 1) / world}; }

std::vector<at::Tensor> summed_grads(std::vector<at::Tensor>& params, const Ranks& ranks) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (auto& p : params) {
    if (!p.mutable_grad().defined()) p.mutable_grad() = at::zeros_like(p);
    grads.push_back(p.mutable_grad());
  }
  if (ranks.world > 1) {
    std::vector<at::Tensor> v;
    for (auto& g : grads) v.push_back(g.reshape({-1}).to(at::kFloat));
    at::Tensor flat = at::cat(v);
    all_sum(flat, ranks);
    int64_t off = 0;
    for (auto& g : grads) {
      g.copy_(flat.narrow(0, off, g.numel()).view(g.sizes()));
      off += g.numel();
    }
  }
  return grads;
}

// core/device.h; a tensor already there is used as is (a CPU→CPU `to` would read as a host read).
at::Tensor to_device_async(const at::Tensor& host, at::Device device) {
  return host.device() == device ? host : to_device(host, device);
}

void all_sum(at::Tensor& t, const Ranks& ranks) {
  if (ranks.world > 1) {
    if (!ranks.sum) fail("{} ranks but no collective to merge their results", ranks.world);
    ranks.sum(t);
  }
}

int64_t all_max(int64_t v, const Ranks& ranks) {
  if (ranks.world == 1) return v;
  at::Tensor t = at::zeros({ranks.world}, at::kDouble);
  t[ranks.rank] = static_cast<double>(v);
  all_sum(t, ranks);
  return static_cast<int64_t>(std::llround(t.max().item<double>()));
}

void score_range(LanguageModel& lm, const Stream& s, std::span<const Window> windows, int64_t lo, int64_t hi,
                 int64_t batch, Totals& acc, Hooks& hooks, Progress* progress, int64_t progress_base, bool pack) {
  at::NoGradGuard no_grad;
  const std::span<const uint16_t> targets = s.score_targets.empty() ? s.tokens : s.score_targets;
  // The scored values stay on the device, batch after batch, and are read back once per range (per
  // chunk in TTT) or every kFlushValues values: no device→host sync per forward. The flush then adds
  // them up in the order the windows score them, exactly as a per-batch read would (same doubles,
  // same order: bit-identical totals).
  constexpr int64_t kFlushValues = int64_t{1} << 18;
  std::vector<at::Tensor> pending;  // per batch: (scored predictions,) float64 on the device
  int64_t pending_values = 0, pending_from = lo, pending_to = lo;
  auto flush = [&] {
    if (pending.empty()) return;
    const at::Tensor values = at::cat(pending).to(at::kCPU).contiguous();
    const double* v = values.const_data_ptr<double>();
    for (int64_t i = pending_from; i < pending_to; ++i) {
      const Window& w = windows[i];
      for (int64_t j = w.score_from; j < w.end; ++j) {
        const double x = *v++;
        acc.nll += x;
        acc.bytes += s.bytes(j, targets);
        ++acc.predictions;
        if (hooks.ledger) hooks.ledger->scored(j);
        if (hooks.nll) (*hooks.nll)[static_cast<size_t>(j)] = x;
      }
    }
    acc.windows += pending_to - pending_from;
    pending.clear();
    pending_values = 0;
    pending_from = pending_to;
    if (progress)
      progress->update(progress_base + pending_to - lo,
                       acc.predictions ? fmt::format("running bpb {:.4f}", acc.nll / (std::log(2.0) * static_cast<double>(acc.bytes))) : "");
  };
  std::vector<int64_t> in, tg, pick;
  for (int64_t b0 = lo; b0 < hi; b0 += batch) {
    const int64_t n = std::min(batch, hi - b0);
    // Rows (R, T) of the forward, and where window i sits in it: row, column of its `begin`.
    int64_t R = n, T = 0;
    std::vector<std::pair<int64_t, int64_t>> at_(static_cast<size_t>(n));
    if (pack) {  // consecutive windows as one sequence: [windows[b0].begin, windows[b0 + n − 1].end)
      R = 1;
      for (int64_t i = 0; i < n; ++i) {
        const Window& w = windows[b0 + i];
        if (i > 0 && w.begin != windows[b0 + i - 1].end) fail("internal: packed windows are not consecutive");
        at_[static_cast<size_t>(i)] = {0, w.begin - windows[b0].begin};
      }
      T = windows[b0 + n - 1].end - windows[b0].begin;
    } else {
      for (int64_t i = 0; i < n; ++i) {
        T = std::max(T, windows[b0 + i].end - windows[b0 + i].begin);
        at_[static_cast<size_t>(i)] = {i, 0};
      }
    }
    in.assign(static_cast<size_t>(R * T), 0);  // padding sits after each row: causal, never scored
    tg.assign(static_cast<size_t>(R * T), 0);
    pick.clear();  // flat (R·T) index of every scored prediction, in scoring order
    for (int64_t i = 0; i < n; ++i) {
      const Window& w = windows[b0 + i];
      const auto [r, c] = at_[static_cast<size_t>(i)];
      for (int64_t t = 0; t < w.end - w.begin; ++t) {
        in[static_cast<size_t>(r * T + c + t)] = s.tokens[static_cast<size_t>(w.begin + t)];
        tg[static_cast<size_t>(r * T + c + t)] = targets[static_cast<size_t>(w.begin + t + 1)];
      }
      for (int64_t j = w.score_from; j < w.end; ++j) pick.push_back(r * T + c + (j - w.begin));
    }
    const at::Tensor host_inputs = at::from_blob(in.data(), {R, T}, at::kLong);
    const at::Tensor inputs = to_device_async(host_inputs, lm.device());
    const at::Tensor target = to_device_async(at::from_blob(tg.data(), {R, T, 1}, at::kLong), lm.device());
    const at::Tensor index =
        to_device_async(at::from_blob(pick.data(), {static_cast<int64_t>(pick.size())}, at::kLong), lm.device());
    const at::Tensor log_probs = lm.log_probs_of_rows(inputs, host_inputs);  // (R, T, V)
    const at::Tensor nll = (-log_probs.gather(-1, target)).squeeze(-1).to(at::kDouble);  // (R, T)
    pending.push_back(nll.reshape({-1}).index_select(0, index));
    pending_values += index.size(0);
    pending_to = b0 + n;
    if (pending_values >= kFlushValues || hooks.read_each_batch) flush();
  }
  flush();
}

void merge_totals(Totals& t, const Ranks& ranks) {
  if (ranks.world == 1) return;
  at::Tensor v = at::tensor({t.nll, static_cast<double>(t.predictions), static_cast<double>(t.bytes),
                             static_cast<double>(t.windows)},
                            at::kDouble);
  all_sum(v, ranks);
  const double* p = v.data_ptr<double>();
  t.nll = p[0];
  t.predictions = static_cast<int64_t>(std::llround(p[1]));
  t.bytes = static_cast<int64_t>(std::llround(p[2]));
  t.windows = static_cast<int64_t>(std::llround(p[3]));
}

// ---- SGD ---------------------------------------------------------------------------------------
Sgd::Sgd(std::vector<at::Tensor> p, TttOptions::Sgd mode) : params(std::move(p)) {
  for (auto& t : params) momentum.push_back(at::zeros_like(t));
  fused = mode == TttOptions::Sgd::fused ||
          (mode == TttOptions::Sgd::automatic && !params.empty() && params.front().is_cuda());
}

void Sgd::step(const std::vector<at::Tensor>& grads, double lr, double mu, double clip) {
  at::NoGradGuard no_grad;
  if (fused) {
    // The learning rate lives on the device (fp32), written only when the cosine schedule changes
    // it (once per chunk): the step's kernels read it at run time, so a captured step would follow
    // the schedule instead of freezing the host value it was captured with.
    if (!lr_device.defined() || lr != lr_host) {
      if (!lr_device.defined()) lr_device = at::empty({}, params.front().options().dtype(at::kFloat));
      lr_device.fill_(lr);
      lr_host = lr;
    }
    // ‖g‖ over all tensors stays on the device: one _foreach_norm, one stack, no .item().
    const at::Tensor total = at::stack(at::_foreach_norm(grads, 2)).norm();
    const at::Tensor coef = (clip / (total + 1e-6)).clamp_max(1.0);
    at::_foreach_mul_(grads, coef);
    // The buffers start at zero, so every step (the first too) is buf = μ·buf + g.
    at::_fused_sgd_(params, grads, momentum, /*weight_decay=*/0.0, mu, lr_device, /*dampening=*/0.0, /*nesterov=*/false,
                    /*maximize=*/false, /*is_first_step=*/false);
    return;
  }
  double sq = 0;
  for (const auto& g : grads) sq += g.to(at::kDouble).pow(2).sum().item<double>();
  const double norm = std::sqrt(sq), coef = clip / (norm + 1e-6);
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor g = coef < 1.0 ? grads[i] * coef : grads[i];
    momentum[i].mul_(mu).add_(g);
    params[i].sub_(momentum[i] * lr);
  }
}

int64_t RowBatches::steps(const Ranks& ranks) const {
  int64_t most = 0;
  for (int r = 0; r < ranks.world; ++r) {
    const auto [lo, hi] = share(rows, r, ranks.world);
    most = std::max(most, hi - lo);
  }
  return (most + batch_seqs - 1) / batch_seqs;
}

std::pair<int64_t, int64_t> RowBatches::rows_of(int64_t step, int rank, int world) const {
  const auto [lo, hi] = share(rows, rank, world);
  return {std::min(hi, lo + step * batch_seqs), std::min(hi, lo + (step + 1) * batch_seqs)};
}

int64_t RowBatches::rows_in_step(int64_t step, int world) const {
  int64_t n = 0;
  for (int r = 0; r < world; ++r) {
    const auto [a, b] = rows_of(step, r, world);
    n += b - a;
  }
  return n;
}

}  // namespace detail

using namespace detail;

Totals score_windows(LanguageModel& lm, const Stream& s, const std::vector<Window>& windows, const EvalConfig& cfg,
                     const Ranks& ranks, Hooks hooks, const char* label, bool pack) {
  const auto t0 = std::chrono::steady_clock::now();
  Totals acc;
  const auto [lo, hi] = share(static_cast<int64_t>(windows.size()), ranks);
  std::unique_ptr<Progress> progress;
  if (hooks.progress) progress = std::make_unique<Progress>(label, hi - lo, "windows");
  if (hooks.ledger) hooks.ledger->tick();
  score_range(lm, s, windows, lo, hi, cfg.eval_batch_seqs, acc, hooks, progress.get(), 0, pack);
  if (progress) progress->finish();
  merge_totals(acc, ranks);
  acc.seconds = seconds_since(t0);
  return acc;
}

// ---- the model adapter -----------------------------------------------------------------------
ModelLM::ModelLM(std::shared_ptr<Model> model, const EvalConfig& eval)
    : ModelLM(model, eval, model->config().num_loops > 0) {}

ModelLM::ModelLM(std::shared_ptr<Model> model, const EvalConfig& eval, bool looping)
    : owned_(std::move(model)),
      model_(owned_.get()),
      looping_(looping),
      freeze_blocks_(eval.ttt_freeze_blocks),
      seq_len_cut_(eval.eval_seq_len) {}

ModelLM::ModelLM(const Model& model, const EvalConfig& eval, bool looping)
    : model_(&model), looping_(looping), freeze_blocks_(eval.ttt_freeze_blocks), seq_len_cut_(eval.eval_seq_len) {}

Model& ModelLM::trained() {
  if (!owned_) fail("internal: a read-only ModelLM (training-time validation) was asked for its trainable model");
  return *owned_;
}

namespace {
// The forward options for a cut length. With a varlen attention backend, the packed segment bounds
// come from the rows the protocol built on the host (model/varlen.h) and are copied to the device
// here, pinned and without blocking, beside the batch's own copy: the forward then finds them in
// place and copies nothing (a captured forward could not). Without host rows the model derives
// them from a host copy of the tokens.
ForwardOptions forward_options(const Model& model, int64_t seq_len_cut, const LoraDelta* lora,
                               const at::Tensor& host_inputs) {
  ForwardOptions o{seq_len_cut, lora, {}};
  if (host_inputs.defined() && model.fast_paths().attn != AttnBackend::sdpa) {
    o.cu_seqlens = varlen_segments(host_inputs, model.config(), 64, seq_len_cut).cu_seqlens.to(at::kInt);
    if (model.device().is_cuda()) o.cu_seqlens = to_device(o.cu_seqlens, model.device());
  }
  return o;
}
}  // namespace

at::Tensor ModelLM::log_probs(const at::Tensor& inputs) { return log_probs_of_rows(inputs, {}); }
at::Tensor ModelLM::log_probs_of_rows(const at::Tensor& inputs, const at::Tensor& host_inputs) {
  return at::log_softmax(model_->logits(inputs, looping_, nullptr, forward_options(*model_, seq_len_cut_, nullptr, host_inputs)),
                         -1);
}
at::Tensor ModelLM::loss(const at::Tensor& inputs, const at::Tensor& targets) { return loss_of_rows(inputs, targets, {}); }
at::Tensor ModelLM::loss_of_rows(const at::Tensor& inputs, const at::Tensor& targets, const at::Tensor& host_inputs) {
  return loss_cut(inputs, targets, seq_len_cut_, host_inputs);
}
at::Tensor ModelLM::loss_cut(const at::Tensor& inputs, const at::Tensor& targets, int64_t seq_len_cut,
                             const at::Tensor& host_inputs) {
  return model_->loss(inputs, targets, looping_, forward_options(*model_, seq_len_cut, nullptr, host_inputs));
}
at::Tensor ModelLM::lora_nll(const at::Tensor& inputs, const at::Tensor& targets, const LoraDelta& lora,
                             int64_t seq_len_cut, const at::Tensor& host_inputs) {
  return model_->token_losses(inputs, targets, looping_, nullptr, forward_options(*model_, seq_len_cut, &lora, host_inputs));
}
std::vector<at::Tensor> ModelLM::trainable() {
  Model& model = trained();
  std::vector<at::Tensor> out;
  for (const auto& name : model.names()) out.push_back(model.param(name));
  return out;
}
at::Device ModelLM::device() const { return model_->device(); }

void ModelLM::after_backward() {
  if (freeze_blocks_ <= 0) return;
  Model& model = trained();
  const int64_t L = model.config().num_layers, N = std::min(freeze_blocks_, L);
  auto zero_rows = [&](const char* name, std::vector<int64_t> rows) {
    at::Tensor g = model.param(name).mutable_grad();
    if (!g.defined()) return;
    for (const int64_t r : rows) g[r].zero_();
  };
  for (int64_t i = 0; i < N; ++i) {
    zero_rows("qo_bank", {i, L + i});  // Q of layer i, O of layer i
    zero_rows("kv_bank", {i, L + i});
    zero_rows("mlp_up_bank", {i});
    zero_rows("mlp_down_bank", {i});
    const std::string prefix = fmt::format("blocks.{}.", i);
    for (const auto& name : model.names())
      if (name.rfind(prefix, 0) == 0 && model.param(name).mutable_grad().defined())
        model.param(name).mutable_grad().zero_();
  }
}

// ---- tilings ---------------------------------------------------------------------------------
std::vector<Window> plain_rows(int64_t M, int64_t L) {
  std::vector<Window> w;
  for (int64_t b = 0; b < M; b += L) w.push_back({b, std::min(b + L, M), b});
  return w;
}

std::vector<Window> sliding_windows(int64_t M, int64_t L, int64_t s) {
  const int64_t C = L - s;
  std::vector<Window> w;
  for (int64_t ws = 0; ws == 0 || ws + C < M; ws += s) w.push_back({ws, std::min(ws + L, M), ws == 0 ? 0 : ws + C});
  return w;
}

int64_t expected_sliding_windows(int64_t M, int64_t L, int64_t s) {
  const int64_t C = L - s;
  return M > C ? (M - C + s - 1) / s : 1;  // ws = 0, and every k·s (k ≥ 1) with k·s + C < M
}

// ---- totals ----------------------------------------------------------------------------------
double Totals::loss() const { return predictions ? nll / static_cast<double>(predictions) : 0.0; }
double Totals::bpb() const { return bytes ? nll / (std::numbers::ln2 * static_cast<double>(bytes)) : 0.0; }

Totals plain(LanguageModel& lm, const Stream& s, const EvalConfig& cfg, const Ranks& ranks, Hooks hooks) {
  return score_windows(lm, s, plain_rows(s.predictions, cfg.eval_seq_len), cfg, ranks, hooks, "plain", /*pack=*/true);
}

Totals sliding(LanguageModel& lm, const Stream& s, const EvalConfig& cfg, const Ranks& ranks, Hooks hooks) {
  return score_windows(lm, s, sliding_windows(s.predictions, cfg.eval_seq_len, cfg.eval_stride), cfg, ranks, hooks,
                       "sliding");
}

// ---- score-first TTT -------------------------------------------------------------------------
TttOptions TttOptions::from(const EvalConfig& cfg) {
  TttOptions o;
  o.lr = cfg.ttt_lr;
  o.momentum = cfg.ttt_momentum;
  o.grad_clip = cfg.ttt_grad_clip;
  o.epochs = cfg.ttt_epochs;
  o.chunk_tokens = cfg.ttt_chunk_tokens;
  o.batch_seqs = cfg.ttt_batch_seqs;
  return o;
}

namespace {

// Trains on the chunk's rows: predictions [begin, end) cut into ⌊(end − begin)/L⌋ rows of L,
// shared contiguously across ranks; per epoch, one SGD step per batch of up to TTT_BATCH_SEQS rows
// per rank (the records' per-forward batch), the gradient being the mean over that step's rows on
// all ranks. The ledger records, per step, the predictions of every rank's rows.
void train_chunk(LanguageModel& lm, const Stream& s, int64_t begin, int64_t end, double lr, const TttOptions& o,
                 const EvalConfig& cfg, const Ranks& ranks, Sgd& sgd, Ledger* ledger) {
  const int64_t L = cfg.eval_seq_len;
  const RowBatches rb{(end - begin) / L, o.batch_seqs};
  if (rb.rows == 0) return;
  // Rows read tokens [begin, begin + rows·L], i.e. the targets of predictions [begin − 1, begin + rows·L):
  // their score times, merged across ranks once for the chunk.
  const int64_t ub = std::max<int64_t>(begin - 1, 0), ue = begin + rb.rows * L;
  at::Tensor times;
  if (ledger) {
    times = at::from_blob(ledger->score_times().data() + ub, {ue - ub}, at::kInt).clone();
    all_sum(times, ranks);
  }
  at::AutoGradMode grad_on(true);
  std::vector<int64_t> buf;
  std::vector<at::Tensor>& params = sgd.params;
  const int64_t steps = rb.steps(ranks);
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch)
    for (int64_t k = 0; k < steps; ++k) {
      if (ledger) ledger->tick();
      for (auto& p : params)
        if (p.mutable_grad().defined()) p.mutable_grad().zero_();
      const auto [r0, r1] = rb.rows_of(k, ranks.rank, ranks.world);
      const int64_t n = r1 - r0;
      if (n > 0) {
        buf.resize(static_cast<size_t>(n * (L + 1)));
        for (int64_t r = 0; r < n; ++r)
          for (int64_t t = 0; t <= L; ++t)
            buf[static_cast<size_t>(r * (L + 1) + t)] = s.tokens[static_cast<size_t>(begin + (r0 + r) * L + t)];
        const at::Tensor host = at::from_blob(buf.data(), {n, L + 1}, at::kLong);
        const at::Tensor batch = to_device_async(host, lm.device());
        // This rank's mean, weighted so that the sum over ranks is the mean over the step's rows.
        const at::Tensor loss = lm.loss_of_rows(batch.narrow(1, 0, L), batch.narrow(1, 1, L), host.narrow(1, 0, L)) *
                                (static_cast<double>(n) / static_cast<double>(rb.rows_in_step(k, ranks.world)));
        loss.backward();
      }
      lm.after_backward();
      const std::vector<at::Tensor> grads = summed_grads(params, ranks);
      sgd.step(grads, lr, o.momentum, o.grad_clip);
      if (ledger && ranks.rank == 0) {  // rank 0 records the whole step (every rank's rows) as one update
        bool counted = false;
        for (int r = 0; r < ranks.world; ++r) {
          const auto [a, b] = rb.rows_of(k, r, ranks.world);
          if (a == b) continue;
          const int64_t ja = std::max<int64_t>(begin + a * L - 1, 0), jb = begin + b * L;
          ledger->used(ja, jb, std::span<const int32_t>(times.data_ptr<int32_t>() + (ja - ub), static_cast<size_t>(jb - ja)),
                       /*new_update=*/!counted);
          counted = true;
        }
      }
    }
}

}  // namespace

Totals ttt(LanguageModel& lm, const Stream& s, const EvalConfig& cfg, const TttOptions& o, const Ranks& ranks, Hooks hooks) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t M = s.predictions, T = o.chunk_tokens, K = (M + T - 1) / T;
  const auto windows = sliding_windows(M, cfg.eval_seq_len, cfg.eval_stride);
  // windows[first[c] .. first[c+1]) belong to chunk c (the chunk of their first scored prediction).
  // Windows come in order of score_from, so each chunk's windows are one contiguous run.
  std::vector<int64_t> first(static_cast<size_t>(K + 1));
  size_t w = 0;
  for (int64_t c = 0; c <= K; ++c) {
    while (w < windows.size() && std::min(windows[w].score_from / T, K - 1) < c) ++w;
    first[static_cast<size_t>(c)] = static_cast<int64_t>(w);
  }

  Sgd sgd(lm.trainable(), o.sgd);
  if (ranks.rank == 0 && hooks.progress)
    fmt::print("ttt_sliding:start chunks={} chunk_tokens={} total_windows={} stride={} ttt_lr={} ttt_epochs={} "
               "freeze_blocks={}\nttt_sgd: batch_seqs={} sgd={}\n",  // the records' line, then golf's
               K, T, windows.size(), cfg.eval_stride, o.lr, o.epochs, cfg.ttt_freeze_blocks, o.batch_seqs,
               sgd.fused ? "fused" : "loop");
  std::fflush(stdout);

  Totals acc;
  std::unique_ptr<Progress> progress;
  if (hooks.progress) progress = std::make_unique<Progress>("ttt", K, "chunks");
  for (int64_t c = 0; c < K; ++c) {
    const int64_t begin = c * T, end = std::min(begin + T, M);
    const double lr = K > 1 ? o.lr * 0.5 * (1 + std::cos(std::numbers::pi * static_cast<double>(c) / static_cast<double>(K - 1))) : o.lr;
    const bool train = c < K - 1;  // the last chunk is never trained on
    auto train_on_chunk = [&] { train_chunk(lm, s, begin, end, lr, o, cfg, ranks, sgd, hooks.ledger); };
    if (hooks.observer) hooks.observer->before_score(train ? train_on_chunk : std::function<void()>());
    if (hooks.ledger) hooks.ledger->tick();
    const int64_t n = first[static_cast<size_t>(c + 1)] - first[static_cast<size_t>(c)];
    const auto [lo, hi] = share(n, ranks);
    score_range(lm, s, windows, first[static_cast<size_t>(c)] + lo, first[static_cast<size_t>(c)] + hi,
                cfg.eval_batch_seqs, acc, hooks, nullptr, 0);
    if (train) train_on_chunk();
    if (progress)
      progress->update(c + 1, acc.bytes ? fmt::format("rank-local bpb {:.4f}", acc.nll / (std::numbers::ln2 * static_cast<double>(acc.bytes))) : "");
  }
  if (progress) progress->finish();
  merge_totals(acc, ranks);
  acc.chunks = K;
  acc.seconds = seconds_since(t0);
  return acc;
}

void merge_ledger(Ledger& ledger, const Ranks& ranks) {
  if (ranks.world == 1) return;
  const int64_t M = ledger.predictions();
  at::Tensor counts = at::from_blob(ledger.counts().data(), {M}, at::kByte).to(at::kInt);
  all_sum(counts, ranks);
  at::Tensor clamped = counts.clamp_max(255).to(at::kByte).contiguous();
  std::memcpy(ledger.counts().data(), clamped.data_ptr<uint8_t>(), static_cast<size_t>(M));
  at::Tensor times = at::from_blob(ledger.score_times().data(), {M}, at::kInt).clone();
  all_sum(times, ranks);
  std::memcpy(ledger.score_times().data(), times.data_ptr<int32_t>(), static_cast<size_t>(M) * sizeof(int32_t));
  // Update evidence: each update is recorded on one rank only (its own LoRA steps; global SGD on
  // rank 0), so counts add; the first violation and the closest gap are the smallest over ranks.
  UpdateReport& u = ledger.mutable_updates();
  at::Tensor counts3 = at::tensor({static_cast<double>(u.updates), static_cast<double>(u.uses),
                                   static_cast<double>(u.violations)}, at::kDouble);
  all_sum(counts3, ranks);
  const int64_t first = u.first_violation < 0 ? M : u.first_violation;  // M: none
  const int64_t worst_first = -all_max(-first, ranks), worst_gap = -all_max(-static_cast<int64_t>(u.min_gap), ranks);
  u.updates = static_cast<int64_t>(counts3[0].item<double>());
  u.uses = static_cast<int64_t>(counts3[1].item<double>());
  u.violations = static_cast<int64_t>(counts3[2].item<double>());
  u.first_violation = worst_first == M ? -1 : worst_first;
  u.min_gap = static_cast<int32_t>(worst_gap);
}

}  // namespace golf::scoring
