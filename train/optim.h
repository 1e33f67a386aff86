// train/optim.h — the records' optimizers, as in tests/reference/golf_model.py:
//   Muon for the four weight banks: Nesterov momentum (bf16 buffer on CUDA), MuonEq-R row
//     normalisation, 5 Newton–Schulz steps (classic or Polar Express coefficients), update scale
//     √max(1, rows/cols), decoupled weight decay, momentum warm-up 0.92 → 0.97 over 1500 steps;
//   AdamW (PyTorch's decoupled form) for the tied embedding and the BigramHash table (TIED_EMBED_LR,
//   EMBED_WD) and for every scalar/gate (SCALAR_LR, ADAM_WD);
//   global gradient-norm clipping; EMA of all weights.
// Learning rates are scaled by the schedule's multiplier each step.
//
// Distributed (a Comm with world size W > 1): "parameter banking + Parallel Muon" as in the
// records (model-and-training.md §2.3), no DDP. Each rank holds full replicated weights and its
// own local gradients; step() then
//   1. launches, bank by bank (largest first), an asynchronous reduce-scatter (mean) of the bank's
//      gradient (B, r, c), padded with zero matrices to a multiple of W: rank k receives the
//      averaged matrices [k·B'/W, (k+1)·B'/W) — in bf16 on CUDA/NCCL, fp32 on CPU/Gloo;
//   2. averages every other gradient: those over 32,768 elements each by its own asynchronous
//      all-reduce, the small ones packed into one flat buffer per dtype and all-reduced together;
//   3. steps AdamW (identically on every rank);
//   4. pipelined Muon: for each bank, wait its reduce-scatter, momentum/Nesterov/row-norm/
//      Newton–Schulz on this rank's shard only, launch the all-gather of the orthogonalised shard,
//      then wait the previous bank's all-gather and apply it to the full bank.
// Every rank ends the step with identical weights; Muon momentum is sharded (ZeRO-1-like).
// Gradient clipping stays local, before the averaging, as in the records (§2.4).
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "model/model.h"

namespace golf::dist {
class Comm;
class Work;
}  // namespace golf::dist

namespace golf::train {

// Orthogonalises each matrix of g (n, r, c) approximately; bf16 inputs stay bf16.
at::Tensor newton_schulz(const at::Tensor& g, int64_t steps, bool polar_express);
// 1 until the last WARMDOWN_FRAC of training, then linear down to MIN_LR (a floor on the multiplier).
double lr_multiplier(double progress, const OptimConfig& config);
// Muon momentum after `step` optimizer steps: MUON_MOMENTUM_WARMUP_START → MUON_MOMENTUM.
double muon_momentum(int64_t step, const OptimConfig& config);
bool is_matrix_param(const std::string& name);  // the four banks, optimised by Muon

class Optimizer {
 public:
  // `comm` (optional, outliving the optimizer) makes step() the distributed step above; without
  // it, or with a world of one, the single-process step.
  Optimizer(Model& model, const OptimConfig& config, dist::Comm* comm = nullptr);
  ~Optimizer();
  // Scales all (local) gradients so that their global L2 norm is at most GRAD_CLIP_NORM (0: no
  // clipping); returns the norm before clipping.
  double clip_gradients();
  // The same without a host sync when GOLF_FOREACH_OPTIM=1 (_foreach_norm, a device-side
  // coefficient, _foreach_mul_): returns the norm as a 0-dim fp32 tensor on the device.
  at::Tensor clip_gradients_async();
  // One step of every group; `step` counts optimizer steps from 0, `lr_mul` is the schedule.
  // GOLF_FOREACH_OPTIM: the step's learning rates and Muon momentum reach the device by one
  // non-blocking copy and nothing is read back (no host sync; tests/train/optim_fast_test.cpp).
  void step(int64_t step, double lr_mul);
  void zero_grad();

  // Optimizer state for checkpoints: "muon_momentum/<param>", "adam_m/<param>", "adam_v/<param>",
  // "adam_steps". The same full tensors whatever the world size (a checkpoint resumes with any
  // number of ranks); distributed, state() all-gathers the momentum shards, so every rank must
  // call it, and load_state() keeps this rank's shard.
  std::map<std::string, at::Tensor> state() const;
  void load_state(const std::map<std::string, at::Tensor>& state);

 private:
  // One Muon bank of a distributed run: B matrices (r, c), padded to B' = ⌈B/W⌉·W, shard = B'/W.
  struct Bank {
    std::string name;
    int64_t matrices = 0, padded = 0, shard = 0;
    at::Tensor grads;     // (B', r, c) comm dtype: the local gradient, zero padding rows
    at::Tensor grad_shard;// (shard, r, c): this rank's averaged gradients (reduce-scatter output)
    at::Tensor momentum;  // (shard, r, c)
    at::Tensor update;    // (shard, r, c) comm dtype: orthogonalised shard (all-gather input)
    at::Tensor updates;   // (B', r, c) comm dtype: every rank's shard (all-gather output)
  };
  void step_distributed(int64_t step, double lr_mul);
  void adam_step(double lr_mul);
  void adam_step_fused(double lr_mul);  // GOLF_FOREACH_OPTIM: one _fused_adamw_ per group
  // Momentum, Nesterov, MuonEq-R row normalisation and Newton–Schulz of (n, r, c) gradients.
  at::Tensor muon_update(const at::Tensor& grad, at::Tensor& momentum, double mu) const;
  void apply_muon(const std::string& name, const at::Tensor& update, double lr_mul);
  // GOLF_FOREACH_OPTIM: writes this step's scalars into step_scalars_ (one copy, see below).
  void upload_step_scalars(int64_t step, double lr_mul);

  Model& model_;
  OptimConfig cfg_;
  dist::Comm* comm_ = nullptr;  // set only when the world has more than one rank
  std::map<std::string, at::Tensor> momentum_, adam_m_, adam_v_;
  std::vector<Bank> banks_;     // distributed only, largest bank first
  int64_t adam_steps_ = 0;
  bool foreach_ = false;        // GOLF_FOREACH_OPTIM (from the model's fast paths)
  // GOLF_FOREACH_OPTIM: every scalar that changes per step lives on the device, so the step
  // reads nothing from the host that a sync or a captured graph would freeze. step_scalars_ (fp32)
  // holds [0] Muon momentum μ, [1] Muon decay 1 − lr·MUON_WD, then per bank its step lr·scale
  // (muon_slot_), then each AdamW group's learning rate; upload_step_scalars() writes the same
  // fp32 values the plain path's double scalars round to into one of two persistent pinned host
  // buffers and copies it without blocking (ScalarUpload in optim.cpp says why that is safe).
  at::Tensor step_scalars_;
  struct ScalarUpload;
  std::unique_ptr<ScalarUpload> upload_;
  std::map<std::string, int64_t> muon_slot_;
  // _fused_adamw_ state: per group (0 embedding, 1 scalars) the parameter names, the device
  // learning rate (a view of step_scalars_) and per-parameter device step counts (fp32, as the
  // kernel reads them).
  struct AdamGroup {
    std::vector<std::string> names;
    at::Tensor lr;
    int64_t slot = 0;  // index of lr in step_scalars_
    std::vector<at::Tensor> steps;
    double base_lr = 0, wd = 0;
  };
  std::vector<AdamGroup> adam_groups_;
};

// Exponential moving average of the weights (fp32), updated after every optimizer step.
class Ema {
 public:
  Ema(const Model& model, double decay);  // GOLF_FOREACH_OPTIM: update() is one _foreach_lerp_
  void update(const Model& model);
  const std::map<std::string, at::Tensor>& weights() const { return shadow_; }
  void load(const std::map<std::string, at::Tensor>& weights);

 private:
  double decay_;
  bool foreach_ = false;
  std::map<std::string, at::Tensor> shadow_;
};

}  // namespace golf::train
