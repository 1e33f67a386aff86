// tests/train/fast_path_setup.h — the fast-path tests' common setup: the live model
// (tests/live_model.h) with a chosen set of switches, and beside it the optimizer and EMA
// golf-train steps it with.
#pragma once
#include <ATen/ATen.h>

#include <memory>

#include "model/fast_paths.h"
#include "model/model.h"
#include "tests/live_model.h"
#include "train/optim.h"

namespace golf::test {

// plain_paths() with one switch changed, e.g. plain_with(&FastPaths::foreach_optim, true).
template <typename T>
FastPaths plain_with(T FastPaths::*field, T value) {
  FastPaths f = plain_paths();
  f.*field = value;
  return f;
}

// The live model of `c` with switches `f`, on the CPU or (its weights copied) on `device`.
inline Model live_model_with(const Config& c, const FastPaths& f, at::Device device = at::kCPU) {
  if (device.is_cpu()) {
    Model m = live_model(c);
    m.set_fast_paths(f);
    return m;
  }
  const Model reference = live_model(c);
  Model m(c, device);
  m.load_state(reference.state());
  m.set_fast_paths(f);
  return m;
}

// A model with its optimizer and EMA (decay 0.9). Built in place (the optimizer and EMA refer to
// the model), so handed out by pointer.
struct TrainSetup {
  Model model;
  train::Optimizer opt;
  train::Ema ema;
  TrainSetup(const Config& c, const FastPaths& f, at::Device device)
      : model(live_model_with(c, f, device)), opt(model, c), ema(model, 0.9) {}
};
inline std::unique_ptr<TrainSetup> train_setup(const Config& c, const FastPaths& f, at::Device device = at::kCPU) {
  return std::make_unique<TrainSetup>(c, f, device);
}

}  // namespace golf::test
