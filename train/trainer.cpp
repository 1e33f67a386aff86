#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <chrono>
#include <cmath>

#include "core/byte_sidecar.h"
#include "core/device.h"
#include "core/dist/comm.h"
#include "core/error.h"
#include "model/fast_paths.h"
#include "model/model.h"
#include "core/progress.h"
#include "core/shard.h"
#include "core/tokenizer.h"
#include "model/varlen.h"
#include "train/calibration.h"
#include "train/graph_step.h"
#include "train/loader.h"
#include "train/optim.h"
#include "train/run_dir.h"
#include "train/shared_clock.h"
#include "train/step_profile.h"

namespace golf::train {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

void synchronize(at::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// (rows, cols + 1) token windows → int64 tensor on the device, plus (varlen attention) the input
// columns' packed segment bounds, computed here on the CPU from the token ids. With GOLF_NO_SYNC
// both are staged in pinned memory and copied without blocking (the caching host allocator keeps
// a pinned block alive until its copy has run).
struct DeviceBatch {
  at::Tensor tokens;      // (rows, cols + 1) int64, device
  at::Tensor cu_seqlens;  // int32 CPU (pinned on CUDA), or undefined for the masked reference
};
DeviceBatch to_device(const TokenBatch& b, at::Device device, const Config& cfg, const FastPaths& fast) {
  const bool async = fast.no_sync && device.is_cuda();
  at::Tensor host = at::empty({b.rows, b.cols + 1}, at::TensorOptions().dtype(at::kLong).pinned_memory(async));
  std::copy(b.tokens.begin(), b.tokens.end(), host.mutable_data_ptr<int64_t>());
  DeviceBatch out;
  if (fast.attn != AttnBackend::sdpa) {
    out.cu_seqlens = varlen_segments(host.narrow(1, 0, b.cols), cfg).cu_seqlens;
    if (async) out.cu_seqlens = out.cu_seqlens.pin_memory();
  }
  out.tokens = golf::to_device(host, device, async);  // core/device.h (host is already pinned when async)
  return out;
}

std::map<std::string, at::Tensor> clone_all(const std::map<std::string, at::Tensor>& m) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : m) out[k] = v.detach().clone();
  return out;
}

class Trainer {
 public:
  // `run` is null on every rank but 0 (only rank 0 writes).
  Trainer(Config cfg, RunDir* run, dist::Comm& comm, at::Device device)
      : cfg_(std::move(cfg)), run_(run), comm_(comm), device_(device), profile_(device) {
    const BatchGeometry geometry = batch_geometry(cfg_, comm_.world_size());
    accum_ = geometry.accum;
    loader_options_ = loader_options(cfg_, comm_.rank(), comm_.world_size());  // train/loader.h
    budget_ms_ = cfg_.max_wallclock_seconds > 0 ? 1000.0 * (cfg_.max_wallclock_seconds - cfg_.gptq_reserve_seconds) : 0;
    if (cfg_.max_wallclock_seconds > 0 && budget_ms_ <= 0)
      fail("MAX_WALLCLOCK_SECONDS {} leaves no training time after GPTQ_RESERVE_SECONDS {}", cfg_.max_wallclock_seconds,
           cfg_.gptq_reserve_seconds);
  }

  void set_run_dir(std::filesystem::path dir) { run_dir_ = std::move(dir); }
  void set_data_check(std::string line) { data_check_ = std::move(line); }

  TrainResult run(const std::optional<std::filesystem::path>& resume_dir) {
    for (const auto& line : split_lines(describe(cfg_))) log(line);
    log(fmt::format("world_size:{} grad_accum_steps:{}", comm_.world_size(), accum_));
    if (!data_check_.empty()) log(data_check_);
    // Same seed on every rank: identical initial weights without a broadcast.
    at::manual_seed(cfg_.seed);
    model_ = std::make_unique<Model>(cfg_, device_);
    no_sync_ = model_->fast_paths().no_sync;
    clock_ = SharedClock(model_->fast_paths().clock_sync_every, budget_ms_);
    log(describe(model_->fast_paths()));
    optimizer_ = std::make_unique<Optimizer>(*model_, cfg_, &comm_);
    ema_ = std::make_unique<Ema>(*model_, cfg_.ema_decay);
    validation_ = std::make_unique<scoring::Validation>(cfg_);
    log(fmt::format("model_params:{} device:{} grad_accum_steps:{} micro_batch_tokens:{} val_tokens:{}",
                    model_->num_params(), device_.str(), accum_, loader_options_.tokens_per_rank,
                    validation_->predictions()));
    log(fmt::format("tokenizer:{} kind:{} sha256:{}", cfg_.tokenizer_path, cfg_.tokenizer_kind, cfg_.tokenizer_sha256));
    if (validation_->uses_sidecar()) log("val_bpb:byte_sidecar:enabled");

    if (resume_dir) {
      const auto ck = RunDir::read_checkpoint(*resume_dir);
      if (!ck) fail("--resume {}: the run has no checkpoint yet", resume_dir->string());
      model_->load_state(ck->model);
      optimizer_->load_state(ck->optimizer);
      ema_->load(ck->ema);
      step_ = ck->state.at("step").get<int64_t>();
      train_ms_ = local_ms_ = ck->state.at("train_ms").get<double>();
      looping_ = ck->state.at("looping").get<bool>();
      loader_ = Loader::create(cfg_.loader, loader_options_, &ck->state.at("loader"));
      log(fmt::format("resumed from step {} (train_time:{:.0f}ms looping:{})", step_, train_ms_, looping_));
    } else {
      warm_up();
      loader_ = Loader::create(cfg_.loader, loader_options_);
      if (cfg_.val_loss_every > 0) validate_and_log();
    }

    clock_.set(step_, train_ms_);  // 0 or the resumed clock
    double loss = 0;  // the last mean training loss read from the device
    std::optional<Progress> progress;
    if (::isatty(STDERR_FILENO)) progress.emplace("train", budget_ms_ > 0 ? int64_t(budget_ms_) : cfg_.iterations, budget_ms_ > 0 ? "ms" : "steps");
    for (;;) {
      const double frac = this->progress();
      if (!looping_ && cfg_.num_loops > 0 && frac >= cfg_.enable_looping_at) {
        looping_ = true;
        log(fmt::format("layer_loop:enabled step:{} frac:{:.3f}", step_, frac));
      }
      const double lr_mul = lr_multiplier(frac, cfg_);
      const auto t0 = Clock::now();
      profile_.begin_step();
      const at::Tensor loss_sum = train_step(*loader_, looping_, step_, lr_mul, /*update_ema=*/true);
      profile_.end_step();
      // GOLF_NO_SYNC: the host runs ahead of the device by at most the launch queue (< one step),
      // so host time is the train time except at steps that log, which drain the device first.
      const bool log_due = step_ + 1 <= 10 || (step_ + 1) % cfg_.train_log_every == 0;
      if (!no_sync_ || log_due) synchronize(device_);
      local_ms_ += ms_since(t0);
      if (no_sync_ && budget_ms_ > 0 && local_ms_ >= budget_ms_ && !log_due) {  // the clock is up: count the tail
        const auto t1 = Clock::now();
        synchronize(device_);
        local_ms_ += ms_since(t1);
      }
      // The schedule, recurrence switch and stop depend on the clock: rank 0's counts for all,
      // broadcast every GOLF_CLOCK_SYNC_EVERY steps and every step near the budget, the same
      // estimate on every rank in between (train/shared_clock.h).
      train_ms_ = local_ms_;
      if (comm_.distributed() && budget_ms_ > 0) {
        if (clock_.due(step_ + 1)) {
          std::vector<double> clock{local_ms_};
          comm_.broadcast(clock, 0);
          clock_.set(step_ + 1, clock[0]);
          train_ms_ = clock[0];
        } else {
          train_ms_ = clock_.estimate(step_ + 1);
        }
      }
      ++step_;
      const bool last = step_ >= cfg_.iterations || (budget_ms_ > 0 && train_ms_ >= budget_ms_);
      // The loss is read (and checked) every step without GOLF_NO_SYNC, else at log and checkpoint
      // steps only: a non-finite loss then stops the run at the next such step (never checkpointed).
      const bool log_now = step_ <= 10 || step_ % cfg_.train_log_every == 0 || last;
      const bool checkpoint_due = !last && cfg_.checkpoint_every > 0 && step_ % cfg_.checkpoint_every == 0;
      if (!no_sync_ || log_now || checkpoint_due) loss = mean_loss(loss_sum);
      if (!std::isfinite(loss))
        fail("non-finite train_loss ({}) at step {}; the last good checkpoint is in {}", loss, step_,
             (run_dir_ / "checkpoint").string());
      if (log_now) log_train(loss, lr_mul);
      if (progress) progress->update(budget_ms_ > 0 ? int64_t(train_ms_) : step_, fmt::format("step {} loss {:.4f}", step_, loss));
      if (!last && cfg_.val_loss_every > 0 && step_ % cfg_.val_loss_every == 0) validate_and_log();
      if (checkpoint_due) checkpoint();
      if (last) break;
    }
    if (progress) progress->finish();
    return finish();
  }

 private:
  static std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) lines.push_back(text.substr(start, nl - start));
    if (start < text.size()) lines.push_back(text.substr(start));
    return lines;
  }

  double progress() const {
    return budget_ms_ > 0 ? train_ms_ / budget_ms_ : static_cast<double>(step_) / static_cast<double>(cfg_.iterations);
  }

  void log(const std::string& line) {
    if (run_) run_->log(line);
  }
  void metrics(const nlohmann::json& event) {
    if (run_) run_->metrics(event);
  }

  // One optimizer step over `accum_` micro-batches on every rank; returns this rank's training
  // loss (the mean over its micro-batches) as a 0-dim device tensor: reading it is mean_loss().
  at::Tensor train_step(Loader& loader, bool looping, int64_t step, double lr_mul, bool update_ema) {
    optimizer_->zero_grad();
    at::Tensor total;
    for (int64_t a = 0; a < accum_; ++a) {
      const DeviceBatch batch = to_device(loader.next(), device_, cfg_, model_->fast_paths());
      if (const at::Tensor padded_cu = graph_fit(batch); padded_cu.defined()) {  // GOLF_CUDA_GRAPHS
        const at::Tensor loss = graph_->run(*model_, batch.tokens, padded_cu, looping);  // accum_ is 1
        profile_.mark(StepProfile::kBackward);  // one replay: forward + backward count as backward
        total = loss;
        continue;
      }
      const int64_t T = batch.tokens.size(1) - 1;
      ForwardOptions forward;
      forward.cu_seqlens = batch.cu_seqlens;
      const at::Tensor loss =
          model_->loss(batch.tokens.narrow(1, 0, T), batch.tokens.narrow(1, 1, T), looping, forward) /
          static_cast<double>(accum_);
      profile_.mark(StepProfile::kForward);
      loss.backward();
      profile_.mark(StepProfile::kBackward);
      total = total.defined() ? total + loss.detach() : loss.detach();
      if (!no_sync_) total.item<double>();  // the plain path's per-micro-batch sync, kept for A/B timing
    }
    // local, before averaging (as the records); no host sync with GOLF_FOREACH_OPTIM
    optimizer_->clip_gradients_async();
    optimizer_->step(step, lr_mul);
    if (update_ema) ema_->update(*model_);
    profile_.mark(StepProfile::kOptimizer);
    return total;
  }

  // GOLF_CUDA_GRAPHS: the static cu_seqlens of a batch the graphed micro-step can run (created at
  // the first batch, whose shape the loader keeps), else undefined (the eager step).
  at::Tensor graph_fit(const DeviceBatch& batch) {
    if (!model_->fast_paths().cuda_graphs) return {};
    if (accum_ != 1) {
      if (!graph_note_) log(fmt::format("cuda_graphs: off (GRAD_ACCUM_STEPS={}: a graph replay overwrites the gradients)", accum_));
      graph_note_ = true;
      return {};
    }
    if (!graph_) {
      const int64_t rows = batch.tokens.size(0), cols = batch.tokens.size(1) - 1;
      // Room for one segment per 256 tokens (FineWeb documents average ≈800 tokens), in steps of 64.
      const int64_t capacity =
          model_->fast_paths().attn == AttnBackend::sdpa ? 0 : (std::max(rows, rows * cols / 256) + 63) / 64 * 64;
      graph_ = std::make_unique<GraphedMicroStep>(*model_, rows, cols, capacity);
      log(fmt::format("cuda_graphs: on rows:{} cols:{} segment_capacity:{}", rows, cols, capacity));
    }
    at::Tensor padded = graph_->fit(batch.tokens, batch.cu_seqlens);
    if (!padded.defined() && eager_batches_++ == 0)
      log(fmt::format("cuda_graphs: a batch does not fit the graph (shape or more than {} segments): eager step",
                      graph_->segment_capacity()));
    return padded;
  }

  // The mean over all ranks of train_step's loss (a collective: every rank calls it at the same steps).
  double mean_loss(const at::Tensor& loss) {
    double total = loss.item<double>();
    if (comm_.distributed()) {
      std::vector<double> sum{total};
      comm_.all_reduce_sum(sum);
      total = sum[0] / comm_.world_size();
      profile_.mark(StepProfile::kComm);
    }
    return total;
  }

  // Steps that exercise both recurrence modes before the clock starts, then are undone.
  void warm_up() {
    if (cfg_.warmup_steps <= 0) return;
    const auto t0 = Clock::now();
    const auto weights = clone_all(model_->state());
    const auto opt_state = clone_all(optimizer_->state());
    auto loader = Loader::create(cfg_.loader, loader_options_);
    for (const bool looping : {false, true}) {
      if (looping && cfg_.num_loops == 0) break;
      for (int64_t s = 0; s < cfg_.warmup_steps; ++s) train_step(*loader, looping, s, 1.0, /*update_ema=*/false);
    }
    model_->load_state(weights);
    optimizer_->load_state(opt_state);
    synchronize(device_);
    log(fmt::format("warmup_steps:{} rolled back ({:.0f}ms, not counted)", cfg_.warmup_steps, ms_since(t0)));
  }

  void log_train(double loss, double lr_mul) {
    const double avg = train_ms_ / static_cast<double>(std::max<int64_t>(step_, 1));
    const double tok_s = static_cast<double>(cfg_.train_batch_tokens) * static_cast<double>(step_) / (train_ms_ / 1000.0);
    log(fmt::format("step:{}/{} train_loss:{:.4f} train_time:{:.0f}ms step_avg:{:.2f}ms tok/s:{:.0f}", step_,
                         cfg_.iterations, loss, train_ms_, avg, tok_s));
    metrics({{"event", "train"}, {"step", step_}, {"train_loss", loss}, {"train_time_ms", train_ms_},
                  {"step_avg_ms", avg}, {"tokens_per_s", tok_s}, {"lr_mul", lr_mul}, {"looping", looping_}});
  }

  scoring::ValidationResult validate_and_log(const char* label = nullptr) {
    const scoring::ValidationResult v = validation_->evaluate(*model_, looping_, &comm_);
    const double avg = train_ms_ / static_cast<double>(std::max<int64_t>(step_, 1));
    if (label)
      log(fmt::format("{} val_loss:{:.8f} val_bpb:{:.8f} eval_time:{:.0f}ms", label, v.loss, v.bpb, v.seconds * 1000));
    else
      log(fmt::format("step:{}/{} val_loss:{:.4f} val_bpb:{:.4f} train_time:{:.0f}ms step_avg:{:.2f}ms", step_,
                           cfg_.iterations, v.loss, v.bpb, train_ms_, avg));
    metrics({{"event", label ? label : "val"}, {"step", step_}, {"val_loss", v.loss}, {"val_bpb", v.bpb},
                  {"train_time_ms", train_ms_}, {"eval_time_ms", v.seconds * 1000}, {"looping", looping_}});
    return v;
  }

  // Collective (the optimizer gathers its momentum shards); rank 0 writes.
  void checkpoint() {
    Checkpoint c;
    c.model = model_->state();
    c.optimizer = optimizer_->state();
    if (!run_) return;
    c.ema = ema_->weights();
    c.state = {{"step", step_}, {"train_ms", train_ms_}, {"looping", looping_}, {"loader", loader_->state()}};
    run_->save_checkpoint(c);
    metrics({{"event", "checkpoint"}, {"step", step_}});
  }

  TrainResult finish() {
    TrainResult r;
    r.run_dir = run_dir_;
    r.steps = step_;
    r.train_ms = train_ms_;
    log(fmt::format("stopping_early: step:{} train_time:{:.0f}ms", step_, train_ms_));
    for (const std::string& line : {peak_memory_line(device_), profile_.summary()})  // for the GPU kit
      if (!line.empty()) log(line);
    r.final_val = validate_and_log();
    if (run_) run_->save_weights("final_model.safetensors", model_->state(), cfg_);
    model_->load_state(ema_->weights());
    r.ema_val = validate_and_log("post_ema");
    if (run_) run_->save_weights("ema_model.safetensors", model_->state(), cfg_);

    // Calibration Hessians for GPTQ, on training data (never validation), with the EMA weights.
    const auto t0 = Clock::now();
    const auto hessians = collect_hessians(*model_, cfg_, cfg_.gptq_calibration_batches, &comm_);
    synchronize(device_);
    r.calibration_ms = ms_since(t0);
    if (run_) run_->save_weights("hessians.safetensors", hessians, cfg_);
    log(fmt::format("gptq:calibration batches:{} time:{:.0f}ms reserve:{:.0f}ms{}", cfg_.gptq_calibration_batches,
                         r.calibration_ms, 1000 * cfg_.gptq_reserve_seconds,
                         r.calibration_ms > 1000 * cfg_.gptq_reserve_seconds ? " (WARNING: exceeds the reserve)" : ""));
    metrics({{"event", "calibration"}, {"batches", cfg_.gptq_calibration_batches}, {"time_ms", r.calibration_ms}});
    return r;
  }

  Config cfg_;
  RunDir* run_;
  dist::Comm& comm_;
  at::Device device_;
  std::filesystem::path run_dir_;
  std::string data_check_;  // rank 0's shard scan, logged after the configuration
  int64_t accum_ = 1;
  LoaderOptions loader_options_;
  double budget_ms_ = 0;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<Ema> ema_;
  std::unique_ptr<scoring::Validation> validation_;
  std::unique_ptr<Loader> loader_;
  StepProfile profile_;  // GOLF_PROFILE_STEPS=1: where the step time goes (train/step_profile.h)
  int64_t step_ = 0;
  double train_ms_ = 0;  // the clock every rank agrees on (rank 0's, or the shared estimate)
  double local_ms_ = 0;  // this rank's own measured train time
  SharedClock clock_{1, 0};
  bool looping_ = false;
  bool no_sync_ = false;  // GOLF_NO_SYNC
  std::unique_ptr<GraphedMicroStep> graph_;  // GOLF_CUDA_GRAPHS, created at the first batch
  bool graph_note_ = false;
  int64_t eager_batches_ = 0;  // batches that did not fit the graph
};

// Everything that can be checked before a run directory exists, so a bad DATA_PATH, shard or
// tokenizer leaves nothing behind: every shard's header (and each val shard's byte sidecar), the
// tokenizer against VOCAB_SIZE and the data, and the tokenizer's identity, which the run records
// (TOKENIZER_SHA256 / TOKENIZER_KIND in config.json, and from there in the artifact).
void preflight(Config& cfg) {
  int64_t sidecars = 0, val_shards = 0;
  for (const char* split : {"train", "val"}) {
    const auto files = shard::list(cfg.data_path, split);
    if (files.empty()) fail("DATA_PATH {}: no fineweb_{}_NNNNNN.bin shards", cfg.data_path, split);
    for (const auto& f : files) {
      const auto header = shard::read_header(f);
      val_shards += std::string(split) == "val";
      if (std::string(split) == "val" && std::filesystem::exists(shard::sidecar_path(f))) {
        const auto sidecar = shard::read_header(shard::sidecar_path(f));
        if (sidecar.num_tokens != header.num_tokens)
          fail("byte sidecar {} has {} entries but its shard {} has {} tokens", shard::sidecar_path(f).string(),
               sidecar.num_tokens, f.filename().string(), header.num_tokens);
        ++sidecars;
      }
    }
  }
  if (sidecars > 0 && sidecars < val_shards)
    fail("DATA_PATH {}: {} of {} validation shards have byte sidecars (fineweb_val_bytes_*): all need one, or none",
         cfg.data_path, sidecars, val_shards);
  const Tokenizer tokenizer = Tokenizer::load(cfg.tokenizer_path);
  check_tokenizer_for_data(tokenizer, cfg.vocab_size, sidecars > 0, cfg.data_path);
  if (!cfg.tokenizer_sha256.empty() && cfg.tokenizer_sha256 != tokenizer.sha256())
    fail("TOKENIZER_PATH {} is not the tokenizer this run was made with: TOKENIZER_SHA256 is {} ({}), the file's is {}",
         tokenizer.describe(), cfg.tokenizer_sha256, cfg.tokenizer_kind, tokenizer.sha256());
  cfg.tokenizer_sha256 = tokenizer.sha256();
  cfg.tokenizer_kind = tokenizer.kind();
}

// Every token id of every training and validation shard is below VOCAB_SIZE (one error naming the
// file and position otherwise). A linear scan of the uint16 data; returns a log line with its time.
std::string check_shard_tokens(const Config& cfg) {
  const auto t0 = Clock::now();
  int64_t tokens = 0, files = 0;
  for (const char* split : {"train", "val"})
    for (const auto& f : shard::list(cfg.data_path, split)) tokens += shard::check_token_ids(f, cfg.vocab_size), ++files;
  return fmt::format("data_check: {} shards, {} tokens, all ids < VOCAB_SIZE {} ({:.0f}ms)", files, tokens,
                     cfg.vocab_size, ms_since(t0));
}

}  // namespace

TrainResult train(Config config, const std::optional<std::filesystem::path>& resume_dir,
                  const std::function<void()>& main_rank_check) {
  const dist::World world = dist::world_from_env();
  // A new run's configuration was validated by resolve_config(); a resumed run's is read here.
  if (resume_dir) {
    config = RunDir::read_config(*resume_dir);
    validate(config);
  }
  preflight(config);
  const at::Device device = pick_device(config.device, world.local_rank);  // core/device.h
  dist::Comm comm(world, device, std::chrono::milliseconds(static_cast<int64_t>(1000 * config.dist_timeout_seconds)));
  // Rank 0 alone creates (or opens) the run directory; the others learn whether it could, so a
  // refused run directory stops every rank with one clear error instead of a collective timeout.
  // Rank 0 also runs main_rank_check (the preflight's plan under an external launcher) and scans
  // every shard's token ids first (once, not once per rank).
  std::optional<RunDir> run;
  std::string run_error, data_check;
  if (world.main()) {
    try {
      if (main_rank_check) main_rank_check();
      data_check = check_shard_tokens(config);
      run.emplace(resume_dir ? RunDir::open(*resume_dir, config) : RunDir::create(config));
    } catch (const Error& e) {
      run_error = e.what();
    }
  }
  std::vector<double> ok{run_error.empty() ? 1.0 : 0.0};
  comm.broadcast(ok, 0);
  if (!run_error.empty()) throw Error(run_error);
  if (ok[0] == 0) fail("rank 0 refused the run (the plan, the data or the run directory; its error is in rank 0's output)");
  Trainer trainer(config, run ? &*run : nullptr, comm, device);
  trainer.set_run_dir(run ? run->path() : std::filesystem::path(config.output_dir) / config.run_id);
  trainer.set_data_check(data_check);
  return trainer.run(resume_dir);
}

}  // namespace golf::train
