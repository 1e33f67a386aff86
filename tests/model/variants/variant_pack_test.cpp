// A model with every seed variant survives golf-pack: quantize (small tensors fp16, large variant
// matrices as "other matrix" with the Hessians the model collects) → dequantize gives the same
// state keys and shapes, a model rebuilt from the artifact's own config loads them, and its
// logits stay close. Models without variants keep their artifact config bytes.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <set>

#include "model/model.h"
#include "pack/pack_model.h"
#include "tests/test_util.h"

namespace golf {
namespace {

Config all_variants() {
  Config c;
  c.vocab_size = 300, c.num_layers = 4, c.model_dim = 64, c.num_heads = 4, c.num_kv_heads = 2, c.rope_dims = 8;
  c.xsa_last_n = 4, c.parallel_start_layer = 3, c.loop_start = 1, c.loop_end = 2, c.num_loops = 1;
  c.train_seq_len = 32;
  c.smat_use_s = 1, c.smat_use_g = 1, c.smat_dim = 32, c.value_residual = 1, c.gated_attention = 1;
  c.attn_out_gate_enabled = 0, c.bigram_hash = 1, c.bigram_buckets = 512, c.bigram_dim = 32;
  c.head_gate_enabled = 1;
  return c;
}

// Quantizes a live model of config c, checks keys/shapes/config after the round trip, and returns
// the largest logit change relative to the largest logit.
double round_trip(const Config& c, std::map<std::string, int>* bits_out) {
  at::manual_seed(4);
  Model m(c, at::kCPU);
  {
    at::NoGradGuard no_grad;
    for (const auto& name : m.names()) {
      at::Tensor& p = m.param(name);
      p.add_(at::randn_like(p) * (p.dim() == 3 ? 0.5 / std::sqrt(double(p.size(-1))) : 0.05));
    }
  }
  const at::Tensor x = at::randint(4, 300, {2, 64}, at::kLong);
  HessianCollector hc;
  hc.passthrough_max_numel = c.passthrough_max_numel;  // the matrices this config quantizes
  {
    at::NoGradGuard no_grad;
    const ForwardProbes probes{.hessians = &hc};
    m.logits(x, true, &probes);
  }
  const auto q = pack::quantize_model(m.state(), hc.hessians(c.num_layers), c, 1);
  for (const auto& t : q.tensors) (*bits_out)[t.name] = t.bits;
  Config restored;
  const auto weights = artifact::dequantize_model(q.artifact, &restored);
  const auto original = m.state();
  EXPECT_EQ(weights.size(), original.size());
  for (const auto& [name, t] : original) {
    EXPECT_TRUE(weights.count(name)) << name;
    if (weights.count(name)) {
      EXPECT_EQ(weights.at(name).sizes(), t.sizes()) << name;
    }
  }
  for (const auto& key : artifact::model_setting_keys())
    EXPECT_EQ(to_json(restored).at(key), to_json(c).at(key)) << key << " did not travel in the artifact";
  Model back(restored, at::kCPU);
  back.load_state(weights);
  at::NoGradGuard no_grad;
  const at::Tensor a = m.logits(x, true), b = back.logits(x, true);
  return (a - b).abs().max().item<double>() / a.abs().max().item<double>();
}

TEST(VariantPack, QuantizeDequantizeKeepsKeysShapesAndTheForward) {
  Config c = all_variants();
  c.passthrough_max_numel = 1024;  // so W_s (32×64), bigram E (512×32) and P (64×32) quantize
  c.gptq_enabled = 1;              // which needs the Hessians the model collects for them
  std::map<std::string, int> bits;
  const double rel = round_trip(c, &bits);
  EXPECT_EQ(bits.at("blocks.0.attn.smat_ws.weight"), c.matrix_bits);
  EXPECT_EQ(bits.at("bigram.embed.weight"), c.matrix_bits);
  EXPECT_EQ(bits.at("bigram.proj.weight"), c.matrix_bits);
  EXPECT_EQ(bits.at("blocks.0.attn.attn_gate.weight"), 16);  // 4×64 ≤ 1024
  EXPECT_EQ(bits.at("blocks.1.attn.vr_lambda"), 16);
  EXPECT_EQ(bits.at("blocks.0.attn.smat_lambda_raw"), 16);
  EXPECT_EQ(bits.at("bigram.scale"), 16);
  EXPECT_EQ(bits.at("blocks.0.attn.head_gate"), 16);
  // The same shape without variants, for scale: the variants must not make quantization much worse.
  Config plain = c;
  plain.smat_use_s = plain.smat_use_g = plain.value_residual = plain.gated_attention = plain.bigram_hash = 0;
  plain.head_gate_enabled = 0;
  plain.attn_out_gate_enabled = 1;
  std::map<std::string, int> plain_bits;
  const double rel_plain = round_trip(plain, &plain_bits);
  std::printf("max relative |Δlogit| after pack round trip: variants %.3g, plain %.3g\n", rel, rel_plain);
  EXPECT_GT(rel, 0) << "something was quantized";
  EXPECT_LT(rel, 2 * rel_plain + 0.02);
}

TEST(VariantPack, MoaModelRoundTripsWithItsSettingsAndSmallTensorsInFp16) {
  Config c = all_variants();
  c.smat_use_s = c.smat_use_g = 0;  // MoA replaces the attention SMAT modifies
  c.moa_enabled = 1, c.moa_metric = "diag_mahalanobis", c.moa_ball = 1, c.moa_router_hidden = 16;
  c.moa_branches = "conv,mha,mqa,chan", c.moa_conv_kernel = 3, c.moa_ball_tau = 0.2;
  c.passthrough_max_numel = 1024;  // so the d×d branch matrices quantize (with the model's Hessians)
  c.gptq_enabled = 1;
  std::map<std::string, int> bits;
  const double rel = round_trip(c, &bits);
  for (const char* big : {"blocks.0.moa.conv_proj.weight", "blocks.0.moa.chan_fc.weight", "blocks.0.moa.chan_proj.weight",
                          "blocks.0.moa.mqa_q.weight", "blocks.0.moa.mqa_kv.weight", "blocks.0.moa.mqa_o.weight",
                          "blocks.0.moa.film.weight"})
    EXPECT_EQ(bits.at(big), c.matrix_bits) << big;
  for (const char* small : {"blocks.0.moa.conv.weight", "blocks.0.moa.router_out.weight", "blocks.0.moa.mha_alpha_raw",
                            "blocks.0.moa.mqa_metric_w_raw", "blocks.0.moa.mha_ball_origin", "blocks.0.moa.mqa_ball_rho",
                            "blocks.0.moa.bias_gate.bias", "blocks.0.moa.router_fc.weight"})
    EXPECT_EQ(bits.at(small), 16) << small;
  // For scale, as above: the same shape without MoA or variants. (A fixed 0.1 bound used to stand
  // here; the corrected U-Net lane order of the first two-lane visit — layer 3 of this config —
  // moved this model's figure from 0.086 to 0.103, still half the plain model's.)
  Config plain = all_variants();
  plain.smat_use_s = plain.smat_use_g = plain.value_residual = plain.gated_attention = plain.bigram_hash = 0;
  plain.head_gate_enabled = 0;
  plain.attn_out_gate_enabled = 1, plain.passthrough_max_numel = 1024, plain.gptq_enabled = 1;
  std::map<std::string, int> plain_bits;
  const double rel_plain = round_trip(plain, &plain_bits);
  std::printf("MoA: max relative |Δlogit| after pack round trip %.3g (plain %.3g)\n", rel, rel_plain);
  EXPECT_GT(rel, 0);
  EXPECT_LT(rel, 2 * rel_plain + 0.02);
  const auto j = nlohmann::json::parse(artifact::model_config_json(c));
  EXPECT_EQ(j.at("MOA_ENABLED"), 1);
  EXPECT_EQ(j.at("MOA_METRIC"), "diag_mahalanobis");
  EXPECT_EQ(j.at("MOA_BALL_TAU"), 0.2);
  EXPECT_FALSE(j.contains("MOA_BRANCHES")) << "default: not written";
  EXPECT_FALSE(j.contains("MOA_TI_WEIGHT")) << "training-only";
}

TEST(VariantPack, ArtifactConfigOfAModelWithoutVariantsHasNoVariantKeys) {
  const std::string plain = artifact::model_config_json(Config{});
  // Exactly the first artifacts' key set: every model setting added since is left out at its default.
  const nlohmann::json stored = nlohmann::json::parse(plain);
  std::set<std::string> keys;
  for (const auto& [k, v] : stored.items()) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{
                      "VOCAB_SIZE", "NUM_LAYERS", "MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS", "MLP_MULT", "ROPE_BASE",
                      "ROPE_DIMS", "QK_GAIN_INIT", "LN_SCALE", "XSA_LAST_N", "ATTN_OUT_GATE_ENABLED", "GATE_WIDTH",
                      "SMEAR_GATE_ENABLED", "SMEAR_INPUT", "BOS_TOKEN_ID", "SKIP_GATES_ENABLED", "PARALLEL_START_LAYER",
                      "PARALLEL_MODE", "NUM_LOOPS", "LOOP_START", "LOOP_END", "LOGIT_SOFTCAP", "TRAIN_SEQ_LEN",
                      "DOC_MASK", "SMEAR_BOS_MASK"}));
  for (const char* key : {"SMAT_USE_S", "VALUE_RESIDUAL", "GATED_ATTENTION", "BIGRAM_HASH", "SMAT_ABLATION", "MOA_ENABLED",
                          "MOA_BRANCHES", "MOA_METRIC", "MOA_BALL", "MOA_TI_WEIGHT", "HEAD_GATE_ENABLED"})
    EXPECT_EQ(plain.find(key), std::string::npos) << key;
  Config c = all_variants();
  c.smat_ablation = "lambda0";  // eval-time, never stored
  const auto j = nlohmann::json::parse(artifact::model_config_json(c));
  EXPECT_EQ(j.at("SMAT_USE_S"), 1);
  EXPECT_EQ(j.at("BIGRAM_BUCKETS"), 512);
  EXPECT_EQ(j.at("HEAD_GATE_ENABLED"), 1);
  EXPECT_FALSE(j.contains("SMAT_ABLATION"));
}

}  // namespace
}  // namespace golf
