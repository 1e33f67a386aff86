// golf-pack end to end on a real (tiny) golf-train run: the artifact round-trips to exactly the
// quantizer's tensors, packing is deterministic, the byte limit is enforced at its edge with no
// artifact left behind, and bad inputs (missing or mis-shaped Hessians, non-finite weights, a
// changed model setting) are one clear error.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "core/tensor_io.h"
#include "artifact/artifact.h"
#include "pack/golf_pack.h"
#include "pack/pack_model.h"
#include "quant/gptq.h"
#include "artifact/half.h"
#include "tests/report_json.h"
#include "tests/test_util.h"

namespace golf {
namespace {

using test::quote;

class GolfPackCli : public test::SharedSetupSuite<GolfPackCli> {
 public:
  static std::string setup_command(const std::filesystem::path& folder) {
    return test::tiny_shakespeare_corpus_command(folder, GOLF_DATA_BIN) + " && " +
           // Wide enough that the MLP and embedding matrices pass the 65,536-element fp16 threshold.
           "env DATA_PATH=" + quote(folder / "data") + " TOKENIZER_PATH=" + quote(folder / "tok.model") + " OUTPUT_DIR=" +
           quote(folder / "runs") + " RUN_ID=tiny VOCAB_SIZE=512 NUM_LAYERS=4 MODEL_DIM=160 NUM_HEADS=4 NUM_KV_HEADS=2"
           " ROPE_DIMS=8 LOOP_START=1 LOOP_END=2 NUM_LOOPS=1 PARALLEL_START_LAYER=3 TRAIN_SEQ_LEN=64"
           " TRAIN_BATCH_TOKENS=1024 GRAD_ACCUM_STEPS=1 MAX_WALLCLOCK_SECONDS=0 ITERATIONS=8 WARMUP_STEPS=0"
           " VAL_LOSS_EVERY=0 VAL_MAX_TOKENS=4096 CHECKPOINT_EVERY=0 GPTQ_CALIBRATION_BATCHES=4 '" + GOLF_TRAIN_BIN + "'";
  }

 protected:
  static std::filesystem::path run_dir() { return *dir / "runs" / "tiny"; }
  static test::CommandResult pack(const std::string& args) {
    return test::run(std::string("'") + GOLF_PACK_BIN + "' " + args);
  }
};

TEST_F(GolfPackCli, UnpackGivesExactlyTheQuantizersTensors) {
  // A low passthrough threshold quantizes the attention matrices as well.
  const auto r = pack(quote(run_dir()) + " --out " + quote(*dir / "a.golf") + " --set PASSTHROUGH_MAX_NUMEL=1024");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(pack("unpack " + quote(*dir / "a.golf") + " --out " + quote(*dir / "a.safetensors")).exit_code, 0);
  const auto unpacked = load_tensors(*dir / "a.safetensors");

  // The same quantization in memory, dequantized without any file in between.
  Config cfg = config_from_json(nlohmann::json::parse(test::read_file(run_dir() / "config.json")));
  cfg.passthrough_max_numel = 1024;
  const auto q = pack::quantize_model(load_tensors(run_dir() / "ema_model.safetensors"),
                                      load_tensors(run_dir() / "hessians.safetensors"), cfg);
  const auto expected = artifact::rebank([&] {
    artifact::TensorMap m;
    for (const auto& t : q.artifact.tensors) {
      at::Tensor out = at::empty(t.shape, at::kFloat);
      if (t.kind == artifact::Tensor::Kind::Float16) {
        for (size_t i = 0; i < t.values.size(); ++i) out.data_ptr<float>()[i] = artifact::half_to_float(t.values[i]);
      } else {
        artifact::QuantizedMatrix qm{t.shape[0], out.numel() / t.shape[0], t.bits, t.q, t.scales};
        const auto v = artifact::dequantize(qm);
        std::copy(v.begin(), v.end(), out.data_ptr<float>());
      }
      m[t.name] = out;
    }
    return m;
  }(), cfg);
  ASSERT_EQ(unpacked.size(), expected.size());
  for (const auto& [name, t] : expected) {
    ASSERT_TRUE(unpacked.count(name)) << name;
    EXPECT_TRUE(at::equal(unpacked.at(name), t)) << name;
  }
  // Quantized banks hold bf16 values: rounding them to bf16 changes nothing.
  const at::Tensor up = unpacked.at("mlp_up_bank");
  EXPECT_TRUE(at::equal(up, up.to(at::kBFloat16).to(at::kFloat)));
}

TEST_F(GolfPackCli, PackingIsDeterministicAndInspectable) {
  ASSERT_EQ(pack(quote(run_dir()) + " --out " + quote(*dir / "d1.golf")).exit_code, 0);
  ASSERT_EQ(pack(quote(run_dir()) + " --out " + quote(*dir / "d2.golf") + " --threads 1").exit_code, 0);
  EXPECT_TRUE(test::read_file(*dir / "d1.golf") == test::read_file(*dir / "d2.golf"));
  const auto r = pack("inspect " + quote(*dir / "d1.golf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("blocks.0.mlp.fc.weight"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("embedding"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("entropy bytes"), std::string::npos) << r.output;  // no recompression by default
  const auto slow = pack("inspect --compress-groups " + quote(*dir / "d1.golf"));
  ASSERT_EQ(slow.exit_code, 0) << slow.output;
  EXPECT_NE(slow.output.find("vs entropy"), std::string::npos) << slow.output;
}

TEST_F(GolfPackCli, EveryCompressorWritesTheSameTensorsAndAnUnknownOneWritesNothing) {
  // golf is the default (issue 16 §1): the reference is written with COMPRESSOR=brotli by name.
  ASSERT_EQ(pack(quote(run_dir()) + " --out " + quote(*dir / "c-brotli.golf") + " --set COMPRESSOR=brotli").exit_code, 0);
  const auto reference = artifact::deserialize(artifact::read_file_bytes(*dir / "c-brotli.golf"));
  const auto by_default = pack(quote(run_dir()) + " --out " + quote(*dir / "c-default.golf"));
  ASSERT_EQ(by_default.exit_code, 0) << by_default.output;
  EXPECT_NE(by_default.output.find("compressed with COMPRESSOR=golf"), std::string::npos) << by_default.output;
  EXPECT_EQ(artifact::deserialize(artifact::read_file_bytes(*dir / "c-default.golf")), reference);
  for (const char* c : {"pergroup", "golf"}) {
    const auto out = *dir / (std::string("c-") + c + ".golf");
    const auto r = pack(quote(run_dir()) + " --out " + quote(out) + " --set COMPRESSOR=" + c);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(std::string("compressed with COMPRESSOR=") + c), std::string::npos) << r.output;
    EXPECT_EQ(artifact::deserialize(artifact::read_file_bytes(out)), reference) << c;
    const auto inspect = pack("inspect " + quote(out));
    ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
    EXPECT_NE(inspect.output.find(std::string("-byte ") + c + " stream"), std::string::npos) << inspect.output;
  }
  const auto r = pack(quote(run_dir()) + " --out " + quote(*dir / "c-zstd.golf") + " --set COMPRESSOR=zstd");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("COMPRESSOR"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("zstd"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(*dir / "c-zstd.golf"));
}

TEST_F(GolfPackCli, TheLimitHoldsAtItsEdgeAndNothingIsWrittenWhenOver) {
  ASSERT_EQ(pack(quote(run_dir()) + " --out " + quote(*dir / "edge.golf")).exit_code, 0);
  const auto report = nlohmann::json::parse(test::read_file(*dir / "edge.golf.json"));
  const int64_t total = report["bytes_total"].get<int64_t>();
  EXPECT_EQ(total, report["bytes_model"].get<int64_t>() + report["bytes_code"].get<int64_t>());
  EXPECT_EQ(static_cast<int64_t>(test::read_file(*dir / "edge.golf").size()), report["bytes_model"].get<int64_t>());

  auto r = pack(quote(run_dir()) + " --out " + quote(*dir / "at.golf") + " --set ARTIFACT_BUDGET=" + std::to_string(total));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = pack(quote(run_dir()) + " --out " + quote(*dir / "over.golf") + " --set ARTIFACT_BUDGET=" + std::to_string(total - 1));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("over the"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mlp"), std::string::npos) << "a breakdown by group: " << r.output;
  EXPECT_FALSE(std::filesystem::exists(*dir / "over.golf"));
  EXPECT_FALSE(std::filesystem::exists(*dir / "over.golf.json"));
}

// Calibration is golf-train's (`golf-train calibrate RUN_DIR`); golf-pack links no trainer and
// names the command when a run has no Hessians.
TEST_F(GolfPackCli, MissingHessiansAreOneErrorNamingGolfTrainCalibrate) {
  test::TempDir bare;
  for (const char* f : {"config.json", "ema_model.safetensors"})
    std::filesystem::copy_file(run_dir() / f, bare / f);
  auto r = pack(quote(bare.path()) + " --out " + quote(bare / "x.golf"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("golf-train calibrate " + bare.path().string()), std::string::npos) << r.output;
  r = pack(quote(bare.path()) + " --out " + quote(bare / "x.golf") + " --calib-batches 2");  // the old option
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("golf-train calibrate " + bare.path().string() + " --batches 2"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(bare / "x.golf"));
}

TEST_F(GolfPackCli, GolfTrainCalibrateRepeatsTheEndOfTrainingHessians) {
  test::TempDir bare;
  for (const char* f : {"config.json", "ema_model.safetensors"})
    std::filesystem::copy_file(run_dir() / f, bare / f);
  const auto train = [](const std::string& args) { return test::run(std::string("'") + GOLF_TRAIN_BIN + "' " + args); };
  auto r = train("calibrate " + quote(bare.path()));  // GPTQ_CALIBRATION_BATCHES=4 from the run's config.json
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("gptq:calibration batches:4 "), std::string::npos) << r.output;
  // The same EMA weights and the same training batches as at the end of training: the same Hessians.
  const auto expected = load_tensors(run_dir() / "hessians.safetensors");
  const auto computed = load_tensors(bare / "hessians.safetensors");
  ASSERT_EQ(computed.size(), expected.size());
  for (const auto& [name, h] : expected) {
    ASSERT_TRUE(computed.count(name)) << name;
    EXPECT_TRUE(at::allclose(computed.at(name), h, 1e-5, 1e-7)) << name;
  }
  r = train("calibrate " + quote(bare.path()));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("exists already; pass --force"), std::string::npos) << r.output;
  r = train("calibrate " + quote(bare.path()) + " --force --batches 2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("gptq:calibration batches:2 "), std::string::npos) << r.output;
  r = train("calibrate " + quote(bare.path()) + " --force --set NUM_LAYERS=5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("NUM_LAYERS"), std::string::npos) << r.output;
  r = train("calibrate " + quote(bare / "nowhere"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no config.json"), std::string::npos) << r.output;
  r = pack(quote(bare.path()) + " --out " + quote(bare / "x.golf"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(GolfPackCli, BadInputsAreOneClearError) {
  test::TempDir bad;
  for (const char* f : {"config.json", "ema_model.safetensors", "hessians.safetensors"})
    std::filesystem::copy_file(run_dir() / f, bad / f);
  auto hessians = load_tensors(bad / "hessians.safetensors");
  hessians["blocks.1.mlp.proj.weight"] = at::eye(7);
  save_tensors(bad / "hessians.safetensors", hessians);
  auto r = pack(quote(bad.path()) + " --out " + quote(bad / "x.golf"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("Hessian of blocks.1.mlp.proj.weight has shape 7x7"), std::string::npos) << r.output;

  std::filesystem::copy_file(run_dir() / "hessians.safetensors", bad / "hessians.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  auto weights = load_tensors(bad / "ema_model.safetensors");
  weights["mlp_up_bank"][2][5][7].fill_(NAN);
  save_tensors(bad / "ema_model.safetensors", weights);
  r = pack(quote(bad.path()) + " --out " + quote(bad / "x.golf"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("blocks.2.mlp.fc.weight holds non-finite values"), std::string::npos) << r.output;

  r = pack(quote(run_dir()) + " --out " + quote(bad / "x.golf") + " --set NUM_LAYERS=5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("NUM_LAYERS=5 differs from the run's"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(bad / "x.golf"));
}

TEST_F(GolfPackCli, LqerArtifactIsVersionTwoAndUnpacks) {
  const auto r = pack(quote(run_dir()) + " --out " + quote(*dir / "lqer.golf") + " --set LQER_ENABLED=1 --set LQER_TOP_K=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("LQER "), std::string::npos) << r.output;
  const auto bytes = artifact::read_file_bytes(*dir / "lqer.golf");
  EXPECT_EQ(bytes.at(4), 2);
  const auto inspect = pack("inspect " + quote(*dir / "lqer.golf"));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("format version 2"), std::string::npos) << inspect.output;
  EXPECT_NE(inspect.output.find("lqer factors"), std::string::npos) << inspect.output;
  const auto unpack = pack("unpack " + quote(*dir / "lqer.golf") + " --out " + quote(*dir / "lqer.safetensors"));
  EXPECT_EQ(unpack.exit_code, 0) << unpack.output;
}

TEST_F(GolfPackCli, LqerRankLargerThanAMatrixIsOneClearErrorAndWritesNothing) {
  test::TempDir out;
  const auto r = pack(quote(run_dir()) + " --out " + quote(out / "x.golf") + " --set LQER_ENABLED=1 --set LQER_RANK=1000");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("golf-pack: error: LQER_RANK=1000 exceeds min(rows, cols)"), std::string::npos) << r.output;
  EXPECT_TRUE(out.entries().empty());
}

TEST_F(GolfPackCli, ReportsValidationBpbBeforeAndAfterQuantization) {
  const auto r = pack(quote(run_dir()) + " --out " + quote(*dir / "v.golf") + " --val");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("pre-quantization post-ema val_loss:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("quantized val_loss:"), std::string::npos) << r.output;
}

// golf-pack's main only parses, prints and writes: run_pack with the same options writes the same
// artifact and gives the report the CLI wrote (F.golf.json), key for key and value for value
// (timings aside); with --val that report holds every key of the report schema.
TEST_F(GolfPackCli, RunPackGivesTheReportTheCliWrote) {
  const auto out = *dir / "direct.golf";
  const auto r = pack(quote(run_dir()) + " --out " + quote(out) + " --val --repo-root " + quote(GOLF_SOURCE_DIR));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string cli_artifact = test::read_file(out);
  const auto cli_report = nlohmann::json::parse(test::read_file(out.string() + ".json"));

  pack::PackRunOptions options;
  options.run_dir = run_dir();
  options.out = out;
  options.val = true;
  options.repo_root = GOLF_SOURCE_DIR;
  options.sources.environment = current_environment();
  const pack::PackReport report = pack::run_pack(options);
  EXPECT_EQ(report.artifact, out);
  EXPECT_EQ(report.json, out.string() + ".json");
  EXPECT_EQ(test::read_file(out), cli_artifact) << "run_pack wrote another artifact";
  ASSERT_TRUE(report.quantized.has_value());
  test::expect_same_report(report.to_json(), cli_report, {"quantize_seconds", "compress_seconds"});

  const auto printed = pack("--print-report-schema");
  ASSERT_EQ(printed.exit_code, 0) << printed.output;
  const nlohmann::json schema = pack::pack_report_schema();
  EXPECT_EQ(nlohmann::json::parse(printed.output), schema);
  auto report_keys = [](const nlohmann::json& j) {  // the compressors tried are code_compressors()' names
    std::set<std::string> keys;
    for (const auto& k : test::key_paths(j))
      if (!k.starts_with("code.candidates.")) keys.insert(k);
    return keys;
  };
  EXPECT_EQ(report_keys(cli_report), report_keys(schema));
}

}  // namespace
}  // namespace golf
