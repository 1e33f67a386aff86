// tests/live_model.h — a golf model whose identity-initialised parts (zero O/down banks, zero gates,
// zero-output branches) are randomised, so every path carries signal: the model invariant tests
// (causality, document isolation, fast path = naive formula) would pass trivially without it.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdint>

#include "core/config.h"
#include "model/model.h"

namespace golf::test {

// The model invariant suites' shared shape: 6 layers × 48 wide, GQA, partial RoPE, XSA everywhere,
// two-lane layers from 4, layers 2–3 looped twice, 16-token segments (so rows span several).
inline Config small_model_config() {
  Config c;
  c.vocab_size = 300, c.num_layers = 6, c.model_dim = 48, c.num_heads = 4, c.num_kv_heads = 2, c.rope_dims = 6;
  c.xsa_last_n = 6, c.parallel_start_layer = 4, c.loop_start = 2, c.loop_end = 3, c.num_loops = 2;
  c.train_seq_len = 16;
  return c;
}

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
