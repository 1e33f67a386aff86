// tests/live_model.h — a golf model whose identity-initialised parts (zero O/down banks, zero gates,
// zero-output branches) are randomised, so every path carries signal: the model invariant tests
// (causality, document isolation, fast path = naive formula) would pass trivially without it.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdint>

#include "core/config.h"
#include "core/model.h"

namespace golf::test {

inline Model live_model(const Config& c, uint64_t seed = 7) {
  at::manual_seed(seed);
  Model m(c, at::kCPU);
  at::NoGradGuard no_grad;
  for (const auto& name : m.names()) {
    at::Tensor& p = m.param(name);
    p.add_(at::randn_like(p) * (p.dim() == 3 ? 0.5 / std::sqrt(double(p.size(-1))) : 0.3));
  }
  return m;
}

}  // namespace golf::test
