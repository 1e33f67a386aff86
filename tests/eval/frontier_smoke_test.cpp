// The leaderboard's top stack end to end on CPU (issue 14): train/configs/frontier_0427.json scaled
// down to 4 × 128 trains a few steps; golf-pack packs it with LQER *and* COMPRESSOR=pergroup
// together (format version 2, compressor 1); golf-eval scores it plain, sliding and with phased
// TTT (the R0427L eval: LoRA + global SGD phases), every compliance check PASSing; and the artifact
// round-trips: golf-pack unpack gives exactly pack's dequantized weights (the same quantization in
// memory, no file in between), which an independent ATen dequantizer of the file's tensors matches.
//
// Scaled down from frontier_0427.json (everything else is the file's): vocabulary 512 (a tokenizer
// trained here), 4 layers of 128 with 4/2 heads, XSA on all 4, parallel from layer 3, loop 1–2 ×1,
// 8 steps of 1,024 tokens in 128-token rows, 2 calibration batches, no GPTQ reserve; golf-pack
// quantizes every matrix of more than 4,096 values (the 65,536 default would leave this width in
// fp16), so LQER chooses among all bank matrices and every per-group role has codes. The run is
// made once per ctest run by tests/eval/make_frontier_run.sh (ctest fixture frontier_run).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "core/config.h"
#include "core/tensor_io.h"
#include "artifact/artifact.h"
#include "artifact/grouped.h"
#include "pack/pack_model.h"
#include "artifact/half.h"
#include "tests/test_util.h"

namespace golf {
namespace {

using test::quote;
namespace fs = std::filesystem;

constexpr const char* kPassthrough = "4096";  // golf-pack's PASSTHROUGH_MAX_NUMEL in make_frontier_run.sh

class FrontierSmoke : public ::testing::Test {
 protected:
  void SetUp() override {
    GOLF_REQUIRE_FILE(test::tiny_shakespeare());
    auto log = [](const char* name) { return fs::exists(dir() / name) ? test::read_file(dir() / name) : std::string(); };
    ASSERT_TRUE(fs::exists(artifact())) << "the frontier_run fixture (tests/eval/make_frontier_run.sh) did not produce "
                                        << artifact() << "\n" << log("train.out") << log("pack.log");
  }
  static fs::path dir() { return test::path_setting("GOLF_FRONTIER_FIXTURE_DIR", GOLF_FRONTIER_FIXTURE_DIR_DEFAULT); }
  static fs::path run_dir() { return dir() / "runs" / "frontier"; }
  static fs::path artifact() { return dir() / "frontier.golf"; }
  static nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(test::read_file(p)); }
  static test::CommandResult eval(const std::string& args) {
    return test::run("env DATA_PATH=" + quote(dir() / "data") + " TOKENIZER_PATH=" + quote(dir() / "tok.model") +
                     " VAL_MAX_TOKENS=4096 '" + GOLF_EVAL_BIN + "' " + quote(artifact()) + " " + args);
  }
  test::TempDir scratch;
};

TEST_F(FrontierSmoke, TrainsTheFrontierStackAndPacksItWithLqerAndPerGroupCompression) {
  // The run is the frontier stack (only the scale changed).
  const auto cfg = read_json(run_dir() / "config.json");
  for (const char* key : {"SPARSE_ATTN_GATE_ENABLED", "MUON_POLAR_EXPRESS", "SMEAR_GATE_ENABLED", "SMEAR_BOS_MASK",
                          "GATED_ATTN_QUANT_GATE", "LQER_ENABLED", "LQER_ASYM_ENABLED"})
    EXPECT_EQ(cfg[key], 1) << key;
  EXPECT_EQ(cfg["ATTN_OUT_GATE_ENABLED"], 0);
  EXPECT_EQ(cfg["MIN_LR"], 0.1);
  const std::string log = test::read_file(run_dir() / "train.log");
  EXPECT_NE(log.find("step:8/8 train_loss:"), std::string::npos) << log;

  // golf-pack: LQER on the top 3 matrices, every per-group role present, version 2 / compressor 1.
  const std::string pack_log = test::read_file(dir() / "pack.log");
  EXPECT_NE(pack_log.find("compressed with COMPRESSOR=pergroup"), std::string::npos) << pack_log;
  const auto report = read_json(artifact().string() + ".json");
  EXPECT_EQ(report["compressor"], "pergroup");
  int corrected = 0;
  for (const auto& t : report["tensors"])
    if (t["lqer"].get<bool>()) {
      ++corrected;
      EXPECT_LT(t["lqer_frob_error"].get<double>(), t["frob_error"].get<double>()) << t["name"];
    }
  EXPECT_EQ(corrected, cfg["LQER_TOP_K"].get<int>());
  const auto bytes = artifact::read_file_bytes(artifact());
  EXPECT_EQ(bytes.at(4), 2) << "format version";
  EXPECT_EQ(bytes.at(5) >> 4, 1) << "compressor nibble: pergroup";
  EXPECT_EQ(static_cast<int64_t>(bytes.size()), report["bytes_model"].get<int64_t>());
  EXPECT_LE(report["bytes_total"].get<int64_t>(), report["limit"].get<int64_t>());
  const auto inspect = test::run(std::string("'") + GOLF_PACK_BIN + "' inspect " + quote(artifact()));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("-byte pergroup stream"), std::string::npos) << inspect.output;
  EXPECT_NE(inspect.output.find("lqer factors"), std::string::npos) << inspect.output;
  std::vector<bool> role_seen(artifact::kCodeGroups, false);
  for (const auto& t : artifact::deserialize(bytes).tensors)
    if (t.kind == artifact::Tensor::Kind::Quantized) role_seen[static_cast<size_t>(artifact::code_group_of(t.name))] = true;
  for (int g = 0; g < 7; ++g) EXPECT_TRUE(role_seen[static_cast<size_t>(g)]) << artifact::code_group_name(g);
  EXPECT_TRUE(role_seen[7]) << "QuantGate's int8 attention gates (group 'other')";
}

TEST_F(FrontierSmoke, EvaluatesSlidingAndPhasedTttWithEveryComplianceCheckPassing) {
  const auto out = scratch / "eval.json";
  // R0427L's eval (phased TTT: document LoRA, global SGD phases over a prefix), scaled down.
  const auto r = eval("--ttt-mode phased --set EVAL_SEQ_LEN=128 --set EVAL_STRIDE=32 --set EVAL_BATCH_SEQS=8"
                      " --set TTT_LORA_RANK=4 --set TTT_CHUNK_SIZE=16 --set TTT_EVAL_SEQ_LEN=128 --set TTT_BATCH_SIZE=4"
                      " --set TTT_LORA_LR=0.003 --set PHASED_TTT_PREFIX_DOCS=12 --set PHASED_TTT_NUM_PHASES=3"
                      " --set GLOBAL_TTT_CHUNK_TOKENS=256 --set GLOBAL_TTT_LR=0.003 --out " + quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("quantized_sliding_window val_loss:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("quantized_ttt_phased val_loss:"), std::string::npos) << r.output;
  const auto j = read_json(out);
  const auto& res = j["results"];
  for (const char* p : {"plain", "sliding", "ttt"}) {
    ASSERT_TRUE(res.contains(p)) << p;
    const double bpb = res[p]["val_bpb"].get<double>();
    EXPECT_TRUE(bpb > 0.5 && bpb < 20) << p << " " << bpb;
  }
  EXPECT_EQ(res["sliding"]["bytes"], res["plain"]["bytes"]);
  EXPECT_EQ(res["ttt"]["mode"], "phased");
  EXPECT_EQ(res["ttt"]["phases"], 3);
  EXPECT_GT(res["ttt"]["global_steps"].get<int64_t>(), 0);
  std::vector<std::string> checks;
  for (const auto& c : j["compliance"]) {
    checks.push_back(c["check"]);
    EXPECT_EQ(c["status"], "PASS") << c["check"] << ": " << c["detail"];
  }
  for (const char* c : {"causality", "normalization", "score_before_update", "single_pass", "byte_recount"})
    EXPECT_NE(std::find(checks.begin(), checks.end(), c), checks.end()) << c;
  EXPECT_EQ(std::count(checks.begin(), checks.end(), "document_isolation"), 2) << "the model's and LoRA TTT's";
  std::printf("frontier smoke: plain %.4f, sliding %.4f, phased TTT %.4f bpb; %zu compliance checks PASS\n",
              res["plain"]["val_bpb"].get<double>(), res["sliding"]["val_bpb"].get<double>(),
              res["ttt"]["val_bpb"].get<double>(), checks.size());
}

TEST_F(FrontierSmoke, GolfEvalScoresWhatGolfPackScored) {
  // golf-pack --val scored its own bytes (plain rows of TRAIN_SEQ_LEN = 128, VAL_BATCH_SIZE / 128 =
  // 4096 rows per forward); golf-eval's plain configured alike, through its own read of the LQER +
  // pergroup file, agrees.
  const auto out = scratch / "plain.json";
  const auto r = eval("--no-sliding --set EVAL_SEQ_LEN=128 --set EVAL_BATCH_SEQS=4096 --out " + quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto mine = read_json(out)["results"]["plain"];
  const auto packed = read_json(artifact().string() + ".json")["quantized"];
  EXPECT_NEAR(mine["val_bpb"].get<double>(), packed["val_bpb"].get<double>(), 1e-6);
}

TEST_F(FrontierSmoke, UnpackEqualsPacksDequantizedWeights) {
  const auto unpacked_path = scratch / "w.safetensors";
  const auto r = test::run(std::string("'") + GOLF_PACK_BIN + "' unpack " + quote(artifact()) + " --out " + quote(unpacked_path));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto unpacked = load_tensors(unpacked_path);

  // The same quantization in memory (no file): the file holds exactly its tensors, and unpack gives
  // exactly its dequantized weights.
  Config cfg = config_from_json(read_json(run_dir() / "config.json"));
  cfg.passthrough_max_numel = std::stoll(kPassthrough);
  const auto weights = load_tensors(run_dir() / "ema_model.safetensors");
  const auto q = pack::quantize_model(weights, load_tensors(run_dir() / "hessians.safetensors"), cfg);
  const artifact::Artifact file = artifact::deserialize(artifact::read_file_bytes(artifact()));
  artifact::Artifact in_memory = q.artifact;  // (the reader returns tensors in name order)
  std::sort(in_memory.tensors.begin(), in_memory.tensors.end(), [](auto& a, auto& b) { return a.name < b.name; });
  ASSERT_EQ(file, in_memory) << "pergroup + LQER file round trip";
  const auto expected = artifact::dequantize_model(q.artifact);
  ASSERT_EQ(unpacked.size(), expected.size());
  for (const auto& [name, t] : expected) {
    ASSERT_TRUE(unpacked.count(name)) << name;
    EXPECT_TRUE(at::equal(unpacked.at(name), t)) << name;
  }

  // An independent dequantizer of the file's tensors (ATen, double for the factor product):
  // bf16(q·s + Â·B̂) for the corrected matrices, bf16(q·s) for the other quantized ones (the bf16
  // cast evaluation applies), the fp16 values as they are.
  auto f16 = [](const std::vector<uint16_t>& v) {
    at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::kFloat);
    for (size_t i = 0; i < v.size(); ++i) t.data_ptr<float>()[i] = artifact::half_to_float(v[i]);
    return t;
  };
  auto codes = [](const artifact::Tensor& t) {
    return at::from_blob(const_cast<int8_t*>(t.q.data()), {static_cast<int64_t>(t.q.size())}, at::kChar).to(at::kFloat);
  };
  auto bf16 = [](const at::Tensor& t) { return t.to(at::kBFloat16).to(at::kFloat); };
  std::map<std::string, const artifact::Tensor*> by_name;
  for (const auto& t : file.tensors) by_name[t.name] = &t;
  auto grouped = [&](const artifact::Tensor& t) {  // rows × cols, value i = q[i]·s[i / group], in double
    const at::Tensor s = f16(t.scales).to(at::kDouble).repeat_interleave(t.group);
    return (codes(t).to(at::kDouble) * s).reshape({t.shape[0], -1});
  };
  const auto unbanked = artifact::unbank(unpacked, cfg);
  int corrected = 0, checked = 0;
  for (const auto& t : file.tensors) {
    if (t.name.ends_with(".lqA") || t.name.ends_with(".lqB")) continue;
    ASSERT_TRUE(unbanked.count(t.name)) << t.name;
    const at::Tensor got = unbanked.at(t.name).reshape({-1});
    ++checked;
    if (t.kind == artifact::Tensor::Kind::Float16) {
      EXPECT_TRUE(at::equal(got, f16(t.values))) << t.name;
      continue;
    }
    ASSERT_EQ(t.kind, artifact::Tensor::Kind::Quantized) << t.name;
    const at::Tensor qs = codes(t).reshape({t.shape[0], -1}) * f16(t.scales).unsqueeze(1);  // exact in fp32
    if (!by_name.count(t.name + ".lqA")) {
      EXPECT_TRUE(at::equal(got, bf16(qs).reshape({-1}))) << t.name;
      continue;
    }
    ++corrected;
    const at::Tensor ab = at::matmul(grouped(*by_name.at(t.name + ".lqA")), grouped(*by_name.at(t.name + ".lqB")));
    const at::Tensor mine = bf16(qs + ab.to(at::kFloat)).reshape({-1});
    // The factor product summed in another order: equal up to one bf16 step where a sum lands on a
    // rounding boundary, on a few values at most.
    const at::Tensor d = (got - mine).abs();
    EXPECT_TRUE((d <= mine.abs() * std::ldexp(1.0, -7) + 1e-30).all().item<bool>()) << t.name << " max " << d.max().item<float>();
    EXPECT_LE((d > 0).sum().item<int64_t>(), mine.numel() / 1000) << t.name;
  }
  EXPECT_EQ(corrected, cfg.lqer_top_k);
  EXPECT_EQ(checked, static_cast<int>(unbanked.size()));

  // LQER brings the corrected matrices closer to the trained weights; without the factors the
  // file's codes give the plain GPTQ weights, which are farther.
  artifact::Artifact no_lqer = file;
  std::erase_if(no_lqer.tensors, [](const artifact::Tensor& t) { return t.name.ends_with(".lqA") || t.name.ends_with(".lqB"); });
  const auto plain = artifact::unbank(artifact::dequantize_model(no_lqer), cfg);
  const auto original = artifact::unbank(weights, cfg);
  for (const auto& t : q.tensors) {
    if (!t.lqer) continue;
    const double with = (unbanked.at(t.name).to(at::kDouble) - original.at(t.name).to(at::kDouble)).norm().item<double>();
    const double without = (plain.at(t.name).to(at::kDouble) - original.at(t.name).to(at::kDouble)).norm().item<double>();
    EXPECT_LT(with, without) << t.name;
  }
}

TEST_F(FrontierSmoke, BadPackSettingsAreOneClearErrorAndWriteNothing) {
  // issue 14's bad input on this LQER + pergroup run: an unknown compressor name, and an LQER rank
  // larger than a matrix (the 64 × 128 c_k here): one error line and nothing else on the output
  // (no tensor table), exit 1, and no file at all (neither the artifact nor its report).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--set COMPRESSOR=zstd", "golf-pack: error: invalid configuration: COMPRESSOR=\"zstd\" must be one of brotli, pergroup, golf"},
      {"--set LQER_RANK=65", "golf-pack: error: LQER_RANK=65 exceeds min(rows, cols) = 64 of blocks.0.attn.c_k.weight (64x128)"}};
  for (const auto& [args, message] : cases) {
    const auto r = test::run(std::string("'") + GOLF_PACK_BIN + "' " + quote(run_dir()) + " --out " + quote(scratch / "x.golf") +
                             " --set COMPRESSOR=pergroup --set PASSTHROUGH_MAX_NUMEL=" + kPassthrough + " " + args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << "expected: " << message << "\n" << r.output;
    size_t errors = 0;
    for (size_t at = r.output.find("error:"); at != std::string::npos; at = r.output.find("error:", at + 1)) ++errors;
    EXPECT_EQ(errors, 1u) << r.output;
    EXPECT_EQ(r.output.find("quantized "), std::string::npos) << "no tensor table: " << r.output;
    EXPECT_TRUE(scratch.entries().empty()) << args;
  }
}

TEST(FrontierConfigs, ResolveAtFullSizeWithPrintConfig) {
  // issue 14: `golf-train --config train/configs/frontier_0427.json --print-config` resolves (and
  // the 04-29 reproduction's r29.json): the full-size model with the stack's switches.
  for (const std::string name : {"frontier_0427", "r29"}) {
    const auto r = test::run(std::string("'") + GOLF_TRAIN_BIN + "' --print-config --config " +
                             quote(fs::path(GOLF_SOURCE_DIR) / "train" / "configs" / (name + ".json")));
    ASSERT_EQ(r.exit_code, 0) << name << "\n" << r.output;
    const auto j = nlohmann::json::parse(r.output);
    EXPECT_EQ(j["NUM_LAYERS"], 11) << name;
    EXPECT_EQ(j["MODEL_DIM"], 512) << name;
    EXPECT_EQ(j["SPARSE_ATTN_GATE_ENABLED"], 1) << name;
    EXPECT_EQ(j["LQER_ENABLED"], 1) << name;
    EXPECT_EQ(j["MUON_POLAR_EXPRESS"], 1) << name;
    EXPECT_EQ(j["GATED_ATTN_QUANT_GATE"], name == "frontier_0427" ? 1 : 0) << name;
    EXPECT_EQ(j["MLP_CLIP_SIGMAS"], name == "frontier_0427" ? 11.5 : 12.0) << name;
  }
}

}  // namespace
}  // namespace golf
