// train/optim.h — the records' optimizers, as in tests/reference/golf_model.py:
//   Muon for the four weight banks: Nesterov momentum (bf16 buffer on CUDA), MuonEq-R row
//     normalisation, 5 Newton–Schulz steps (classic or Polar Express coefficients), update scale
//     √max(1, rows/cols), decoupled weight decay, momentum warm-up 0.92 → 0.97 over 1500 steps;
//   AdamW (PyTorch's decoupled form) for the tied embedding and for every scalar/gate;
//   global gradient-norm clipping; EMA of all weights.
// Learning rates are scaled by the schedule's multiplier each step.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/model.h"

namespace golf::train {

// Orthogonalises each matrix of g (n, r, c) approximately; bf16 inputs stay bf16.
at::Tensor newton_schulz(const at::Tensor& g, int64_t steps, bool polar_express);
// 1 until the last WARMDOWN_FRAC of training, then linear down to MIN_LR (a floor on the multiplier).
double lr_multiplier(double progress, const Config& config);
// Muon momentum after `step` optimizer steps: MUON_MOMENTUM_WARMUP_START → MUON_MOMENTUM.
double muon_momentum(int64_t step, const Config& config);
bool is_matrix_param(const std::string& name);  // the four banks, optimised by Muon

class Optimizer {
 public:
  Optimizer(Model& model, const Config& config);
  // Scales all gradients so that their global L2 norm is at most GRAD_CLIP_NORM; returns the
  // norm before clipping.
  double clip_gradients();
  // One step of every group; `step` counts optimizer steps from 0, `lr_mul` is the schedule.
  void step(int64_t step, double lr_mul);
  void zero_grad();

  // Optimizer state for checkpoints: "muon_momentum/<param>", "adam_m/<param>", "adam_v/<param>",
  // "adam_steps".
  std::map<std::string, at::Tensor> state() const;
  void load_state(const std::map<std::string, at::Tensor>& state);

 private:
  Model& model_;
  Config cfg_;
  std::map<std::string, at::Tensor> momentum_, adam_m_, adam_v_;
  int64_t adam_steps_ = 0;
};

// Exponential moving average of the weights (fp32), updated after every optimizer step.
class Ema {
 public:
  Ema(const Model& model, double decay);
  void update(const Model& model);
  const std::map<std::string, at::Tensor>& weights() const { return shadow_; }
  void load(const std::map<std::string, at::Tensor>& weights);

 private:
  double decay_;
  std::map<std::string, at::Tensor> shadow_;
};

}  // namespace golf::train
