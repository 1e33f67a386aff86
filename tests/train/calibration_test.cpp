// train/calibration.h's collect_hessians on the CPU: the SMAT gate means it stores are those of
// every calibration batch it read (the loader's batches, in order), not of the last batch repeated
// (the host buffer each batch is read into is reused; core/device.h's to_device keeps it on the CPU).
#include "train/calibration.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <random>

#include "core/config.h"
#include "model/model.h"
#include "core/shard.h"
#include "tests/test_util.h"
#include "train/loader.h"

namespace golf::train {
namespace {

TEST(CollectHessians, SmatGateMeansAreOverEveryCalibrationBatch) {
  test::TempDir dir;
  std::mt19937 rng(7);
  std::vector<uint16_t> tokens(20000);
  for (auto& t : tokens) t = static_cast<uint16_t>(2 + rng() % 62);
  for (size_t i = 0; i < tokens.size(); i += 50) tokens[i] = 1;  // BOS: documents of 50 tokens
  shard::write(dir / shard::file_name("train", 0), tokens);

  Config cfg;
  cfg.data_path = dir.path().string();
  cfg.vocab_size = 64;
  cfg.num_layers = 2;
  cfg.model_dim = 32;
  cfg.num_heads = 2;
  cfg.num_kv_heads = 1;
  cfg.rope_dims = 8;
  cfg.xsa_last_n = 2;
  cfg.num_loops = 0;
  cfg.loop_start = 0;
  cfg.loop_end = 0;
  cfg.parallel_start_layer = 0;
  cfg.train_seq_len = 32;
  cfg.train_batch_tokens = 128;
  cfg.grad_accum_steps = 1;
  cfg.smat_use_g = 1;
  validate(cfg);
  at::manual_seed(0);
  Model model(cfg, at::kCPU);
  {  // away from the initialization, where the gate is σ(β) whatever the input
    at::NoGradGuard no_grad;
    for (auto& [name, p] : model.state()) p.add_(at::randn_like(p), 0.1);
  }

  const auto out = collect_hessians(model, cfg, 3, nullptr);
  ASSERT_TRUE(out.contains("smat_gate_means"));

  // The same three batches, each kept in its own tensor.
  auto loader = Loader::create(cfg.loader, loader_options(cfg, 0, 1));
  std::vector<at::Tensor> batches;
  for (int b = 0; b < 3; ++b) {
    const TokenBatch batch = loader->next();
    std::vector<int64_t> ids(batch.tokens.begin(), batch.tokens.end());
    batches.push_back(at::tensor(ids, at::kLong).reshape({batch.rows, batch.cols + 1}).narrow(1, 0, batch.cols));
  }
  ASSERT_FALSE(at::equal(batches[0], batches[2])) << "the batches must differ for this test to mean anything";
  const std::vector<double> expected = model.calibrate_smat_gate_means(batches, false);
  const std::vector<double> last_repeated = model.calibrate_smat_gate_means({batches[2], batches[2], batches[2]}, false);
  const at::Tensor got = out.at("smat_gate_means").to(at::kDouble);
  ASSERT_EQ(got.numel(), static_cast<int64_t>(expected.size()));
  for (size_t l = 0; l < expected.size(); ++l) {
    EXPECT_NEAR(got[static_cast<int64_t>(l)].item<double>(), expected[l], 1e-6) << "layer " << l;
    EXPECT_NE(expected[l], last_repeated[l]) << "layer " << l;
  }
}

}  // namespace
}  // namespace golf::train
