// tests/model/invariants.h — the model's compliance invariants as checks on a given model, shared
// by the plain model's tests (tests/model/model_test.cpp) and the varlen / fused fast-path model's
// (tests/train/fast_paths_test.cpp), so both paths are held to the one definition:
//   causality           — changing token t leaves the logits before t bit-identical, and does change
//                         the logits from t on (a check that a constant model would fail);
//   document isolation  — a document scores the same alone as packed after another one.
// Both expect a live model (tests/live_model.h): with identity-initialised parts they pass trivially.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace golf::test {

// One 50-token row with documents starting at 0 and 21 (BOS = 1); token 37 changed to 5.
inline void expect_causal(const Model& m, const std::string& label) {
  at::Tensor x = at::randint(4, 300, {1, 50}, at::kLong);
  x[0][0] = 1, x[0][21] = 1;
  at::NoGradGuard no_grad;
  const at::Tensor before = m.logits(x, true);
  at::Tensor y = x.clone();
  y[0][37] = 5;
  const at::Tensor after = m.logits(y, true);
  EXPECT_TRUE(at::equal(before.narrow(1, 0, 37), after.narrow(1, 0, 37))) << label;
  EXPECT_FALSE(at::allclose(before.narrow(1, 37, 13), after.narrow(1, 37, 13))) << label << ": the change must matter";
}

// A 30-token document (longer than one 16-token segment of small_model_config), alone and after a
// 7-token one: its logits agree to 1e-5.
inline void expect_document_isolated(const Model& m) {
  std::vector<int64_t> doc = {1};
  for (int i = 0; i < 29; ++i) doc.push_back(10 + (i * 37) % 250);
  std::vector<int64_t> packed = {1, 200, 201, 202, 203, 204, 205};
  packed.insert(packed.end(), doc.begin(), doc.end());
  at::NoGradGuard no_grad;
  const at::Tensor alone = m.logits(at::tensor(doc, at::kLong).unsqueeze(0), true);
  const at::Tensor after =
      m.logits(at::tensor(packed, at::kLong).unsqueeze(0), true).narrow(1, 7, static_cast<int64_t>(doc.size()));
  EXPECT_LE((alone - after).abs().max().item<double>(), 1e-5);
}

}  // namespace golf::test
