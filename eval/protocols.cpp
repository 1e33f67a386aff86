#include "eval/protocols.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "core/model.h"
#include "core/progress.h"

namespace golf::eval {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// [lo, hi) of `n` items for this rank: contiguous shares, as the records split windows and rows.
std::pair<int64_t, int64_t> share(int64_t n, const Ranks& ranks) {
  return {n * ranks.rank / ranks.world, n * (ranks.rank + 1) / ranks.world};
}

void all_sum(at::Tensor& t, const Ranks& ranks) {
  if (ranks.world > 1) {
    if (!ranks.sum) fail("{} ranks but no collective to merge their results", ranks.world);
    ranks.sum(t);
  }
}

// Scores windows [lo, hi) of `windows`, EVAL_BATCH_SEQS rows per forward, into `acc`.
void score_range(LanguageModel& lm, const Stream& s, std::span<const Window> windows, int64_t lo, int64_t hi,
                 int64_t batch, Totals& acc, Hooks& hooks, Progress* progress, int64_t progress_base) {
  at::NoGradGuard no_grad;
  const std::span<const uint16_t> targets = s.score_targets.empty() ? s.tokens : s.score_targets;
  std::vector<int64_t> in, tg;
  for (int64_t b0 = lo; b0 < hi; b0 += batch) {
    const int64_t n = std::min(batch, hi - b0);
    int64_t T = 0;
    for (int64_t i = 0; i < n; ++i) T = std::max(T, windows[b0 + i].end - windows[b0 + i].begin);
    in.assign(static_cast<size_t>(n * T), 0);  // padding sits after each row: causal, never scored
    tg.assign(static_cast<size_t>(n * T), 0);
    for (int64_t i = 0; i < n; ++i) {
      const Window& w = windows[b0 + i];
      for (int64_t t = 0; t < w.end - w.begin; ++t) {
        in[static_cast<size_t>(i * T + t)] = s.tokens[static_cast<size_t>(w.begin + t)];
        tg[static_cast<size_t>(i * T + t)] = targets[static_cast<size_t>(w.begin + t + 1)];
      }
    }
    const at::Tensor inputs = at::from_blob(in.data(), {n, T}, at::kLong).to(lm.device());
    const at::Tensor target = at::from_blob(tg.data(), {n, T, 1}, at::kLong).to(lm.device());
    const at::Tensor log_probs = lm.log_probs(inputs);                                 // (n, T, V)
    const at::Tensor nll = (-log_probs.gather(-1, target)).squeeze(-1).to(at::kDouble).cpu().contiguous();  // (n, T)
    const double* v = nll.data_ptr<double>();
    for (int64_t i = 0; i < n; ++i) {
      const Window& w = windows[b0 + i];
      for (int64_t j = w.score_from; j < w.end; ++j) {
        const double x = v[i * T + (j - w.begin)];
        acc.nll += x;
        acc.bytes += s.bytes(j, targets);
        ++acc.predictions;
        if (hooks.ledger) hooks.ledger->scored(j);
        if (hooks.nll) (*hooks.nll)[static_cast<size_t>(j)] = x;
      }
    }
    acc.windows += n;
    if (progress)
      progress->update(progress_base + b0 + n - lo,
                       acc.predictions ? fmt::format("running bpb {:.4f}", acc.nll / (std::log(2.0) * static_cast<double>(acc.bytes))) : "");
  }
}

// Sums (nll, predictions, bytes, windows) across ranks in float64.
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

Totals score_all(LanguageModel& lm, const Stream& s, const std::vector<Window>& windows, const Config& cfg,
                 const Ranks& ranks, Hooks hooks, const char* label) {
  const auto t0 = std::chrono::steady_clock::now();
  Totals acc;
  const auto [lo, hi] = share(static_cast<int64_t>(windows.size()), ranks);
  std::unique_ptr<Progress> progress;
  if (hooks.progress) progress = std::make_unique<Progress>(label, hi - lo, "windows");
  if (hooks.ledger) hooks.ledger->tick();
  score_range(lm, s, windows, lo, hi, cfg.eval_batch_seqs, acc, hooks, progress.get(), 0);
  if (progress) progress->finish();
  merge_totals(acc, ranks);
  acc.seconds = seconds_since(t0);
  return acc;
}

}  // namespace

// ---- the model adapter -----------------------------------------------------------------------
ModelLM::ModelLM(std::shared_ptr<Model> model, int64_t freeze_blocks)
    : model_(std::move(model)), looping_(model_->config().num_loops > 0), freeze_blocks_(freeze_blocks) {}

at::Tensor ModelLM::log_probs(const at::Tensor& inputs) {
  return at::log_softmax(model_->logits(inputs, looping_), -1);
}
at::Tensor ModelLM::loss(const at::Tensor& inputs, const at::Tensor& targets) {
  return model_->loss(inputs, targets, looping_);
}
std::vector<at::Tensor> ModelLM::trainable() {
  std::vector<at::Tensor> out;
  for (const auto& name : model_->names()) out.push_back(model_->param(name));
  return out;
}
at::Device ModelLM::device() const { return model_->device(); }

void ModelLM::after_backward() {
  if (freeze_blocks_ <= 0) return;
  const int64_t L = model_->config().num_layers, N = std::min(freeze_blocks_, L);
  auto zero_rows = [&](const char* name, std::vector<int64_t> rows) {
    at::Tensor g = model_->param(name).mutable_grad();
    if (!g.defined()) return;
    for (const int64_t r : rows) g[r].zero_();
  };
  for (int64_t i = 0; i < N; ++i) {
    zero_rows("qo_bank", {i, L + i});  // Q of layer i, O of layer i
    zero_rows("kv_bank", {i, L + i});
    zero_rows("mlp_up_bank", {i});
    zero_rows("mlp_down_bank", {i});
    const std::string prefix = fmt::format("blocks.{}.", i);
    for (const auto& name : model_->names())
      if (name.rfind(prefix, 0) == 0 && model_->param(name).mutable_grad().defined())
        model_->param(name).mutable_grad().zero_();
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

std::vector<Window> legacy_sliding_windows(int64_t M, int64_t L, int64_t s) {
  std::vector<Window> w;
  for (int64_t ws = 0; ws < M; ws += s) {
    const int64_t end = std::min(ws + L, M);
    w.push_back({ws, end, ws == 0 ? 0 : end - std::min(s, end - ws)});
  }
  return w;
}

// ---- totals ----------------------------------------------------------------------------------
double Totals::loss() const { return predictions ? nll / static_cast<double>(predictions) : 0.0; }
double Totals::bpb() const { return bytes ? nll / (std::numbers::ln2 * static_cast<double>(bytes)) : 0.0; }

Totals plain(LanguageModel& lm, const Stream& s, const Config& cfg, const Ranks& ranks, Hooks hooks) {
  return score_all(lm, s, plain_rows(s.predictions, cfg.eval_seq_len), cfg, ranks, hooks, "plain");
}

Totals sliding(LanguageModel& lm, const Stream& s, const Config& cfg, const Ranks& ranks, Hooks hooks,
               bool legacy_tiling) {
  const auto windows = legacy_tiling ? legacy_sliding_windows(s.predictions, cfg.eval_seq_len, cfg.eval_stride)
                                     : sliding_windows(s.predictions, cfg.eval_seq_len, cfg.eval_stride);
  return score_all(lm, s, windows, cfg, ranks, hooks, "sliding");
}

// ---- score-first TTT -------------------------------------------------------------------------
TttOptions TttOptions::from(const Config& cfg) {
  TttOptions o;
  o.lr = cfg.ttt_lr;
  o.momentum = cfg.ttt_momentum;
  o.grad_clip = cfg.ttt_grad_clip;
  o.epochs = cfg.ttt_epochs;
  o.chunk_tokens = cfg.ttt_chunk_tokens;
  return o;
}

namespace {

// One SGD step per epoch on the chunk's rows: predictions [begin, end) cut into ⌊(end − begin)/L⌋
// rows of L, shared contiguously across ranks; gradients are the mean over all rows of all ranks.
void train_chunk(LanguageModel& lm, const Stream& s, int64_t begin, int64_t end, double lr, const TttOptions& o,
                 const Config& cfg, const Ranks& ranks, std::vector<at::Tensor>& params,
                 std::vector<at::Tensor>& momentum, Ledger* ledger) {
  const int64_t L = cfg.eval_seq_len, rows = (end - begin) / L;
  if (rows == 0) return;
  const auto [lo, hi] = share(rows, ranks);
  at::AutoGradMode grad_on(true);
  std::vector<int64_t> buf;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    if (ledger) ledger->tick();
    for (auto& p : params)
      if (p.mutable_grad().defined()) p.mutable_grad().zero_();
    for (int64_t r0 = lo; r0 < hi; r0 += cfg.eval_batch_seqs) {
      const int64_t n = std::min(cfg.eval_batch_seqs, hi - r0);
      buf.resize(static_cast<size_t>(n * (L + 1)));
      for (int64_t r = 0; r < n; ++r)
        for (int64_t t = 0; t <= L; ++t)
          buf[static_cast<size_t>(r * (L + 1) + t)] = s.tokens[static_cast<size_t>(begin + (r0 + r) * L + t)];
      const at::Tensor batch = at::from_blob(buf.data(), {n, L + 1}, at::kLong).to(lm.device());
      // Mean over this micro-batch, weighted so the sum over micro-batches and ranks is the mean over all rows.
      const at::Tensor loss = lm.loss(batch.narrow(1, 0, L), batch.narrow(1, 1, L)) *
                              (static_cast<double>(n) / static_cast<double>(rows));
      loss.backward();
    }
    lm.after_backward();
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> grads;
    for (auto& p : params) {
      if (!p.mutable_grad().defined()) p.mutable_grad() = at::zeros_like(p);
      grads.push_back(p.mutable_grad());
    }
    if (ranks.world > 1) {
      at::Tensor flat = at::cat([&] {
        std::vector<at::Tensor> v;
        for (auto& g : grads) v.push_back(g.reshape({-1}).to(at::kFloat));
        return v;
      }());
      all_sum(flat, ranks);
      int64_t off = 0;
      for (auto& g : grads) {
        g.copy_(flat.narrow(0, off, g.numel()).view(g.sizes()));
        off += g.numel();
      }
    }
    // Global gradient-norm clip (as torch.nn.utils.clip_grad_norm_), then SGD with momentum
    // (buf = μ·buf + g; p −= lr·buf), the momentum persisting across chunks.
    double sq = 0;
    for (auto& g : grads) sq += g.to(at::kDouble).pow(2).sum().item<double>();
    const double norm = std::sqrt(sq), coef = o.grad_clip / (norm + 1e-6);
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor g = coef < 1.0 ? grads[i] * coef : grads[i];
      momentum[i].mul_(o.momentum).add_(g);
      params[i].sub_(momentum[i] * lr);
    }
    if (ledger) {
      // Rows read tokens [begin, begin + rows·L], i.e. the targets of predictions [begin − 1, begin + rows·L).
      const int64_t ub = std::max<int64_t>(begin - 1, 0), ue = begin + rows * L;
      at::Tensor times = at::from_blob(ledger->score_times().data() + ub, {ue - ub}, at::kInt).clone();
      all_sum(times, ranks);
      ledger->used(ub, ue, std::span<const int32_t>(times.data_ptr<int32_t>(), static_cast<size_t>(ue - ub)));
    }
  }
}

}  // namespace

Totals ttt(LanguageModel& lm, const Stream& s, const Config& cfg, const TttOptions& o, const Ranks& ranks, Hooks hooks) {
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

  std::vector<at::Tensor> params = lm.trainable(), momentum;
  for (auto& p : params) momentum.push_back(at::zeros_like(p));
  if (ranks.rank == 0 && hooks.progress)
    fmt::print("ttt_sliding:start chunks={} chunk_tokens={} total_windows={} stride={} ttt_lr={} ttt_epochs={} "
               "freeze_blocks={}\n",
               K, T, windows.size(), cfg.eval_stride, o.lr, o.epochs, cfg.ttt_freeze_blocks);
  std::fflush(stdout);

  Totals acc;
  std::unique_ptr<Progress> progress;
  if (hooks.progress) progress = std::make_unique<Progress>("ttt", K, "chunks");
  for (int64_t c = 0; c < K; ++c) {
    const int64_t begin = c * T, end = std::min(begin + T, M);
    const double lr = K > 1 ? o.lr * 0.5 * (1 + std::cos(std::numbers::pi * static_cast<double>(c) / static_cast<double>(K - 1))) : o.lr;
    const bool train = c < K - 1;  // the last chunk is never trained on
    if (o.train_before_score && train)
      train_chunk(lm, s, begin, end, lr, o, cfg, ranks, params, momentum, hooks.ledger);
    if (hooks.ledger) hooks.ledger->tick();
    const int64_t n = first[static_cast<size_t>(c + 1)] - first[static_cast<size_t>(c)];
    const auto [lo, hi] = share(n, ranks);
    score_range(lm, s, windows, first[static_cast<size_t>(c)] + lo, first[static_cast<size_t>(c)] + hi,
                cfg.eval_batch_seqs, acc, hooks, nullptr, 0);
    if (!o.train_before_score && train)
      train_chunk(lm, s, begin, end, lr, o, cfg, ranks, params, momentum, hooks.ledger);
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
}

}  // namespace golf::eval
