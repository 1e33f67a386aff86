// Configuration: the field table matches the struct and its documented names, the four sources
// and their precedence, strict parsing of every value type, the invariants, and the renderings.
#include "core/config.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "core/error.h"
#include "tests/test_util.h"

namespace golf {
namespace {

using nlohmann::json;
using test::TempDir;

using test::error_of;

Config resolve_env(std::map<std::string, std::string> environment, std::vector<std::string> overrides = {}) {
  return resolve_config(ConfigSources{{}, std::move(environment), std::move(overrides), {}, {}});
}

std::string env_error(const std::string& key, const std::string& value) {
  return error_of([&] { resolve_env({{key, value}}); });
}
std::string set_error(const std::string& assignment) {
  return error_of([&] { resolve_env({}, {assignment}); });
}
std::string json_error(const json& j) {
  return error_of([&] { config_from_json(j); });
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---- the field table ----------------------------------------------------------------------------

// Members laid end to end from offset 0 to sizeof(Config): a field missing from the table leaves a
// gap, a field listed out of order or twice breaks the sequence.
TEST(ConfigFields, CoverEveryByteOfConfigInDeclarationOrder) {
  const Config config;
  const auto* base = reinterpret_cast<const char*>(&config);
  size_t expected_offset = 0;
  for (const auto& field : config_fields()) {
    std::visit(
        [&](auto member) {
          using T = std::remove_cvref_t<decltype(config.*member)>;
          expected_offset = (expected_offset + alignof(T) - 1) / alignof(T) * alignof(T);
          EXPECT_EQ(reinterpret_cast<const char*>(&(config.*member)) - base, static_cast<ptrdiff_t>(expected_offset))
              << field.name;
          expected_offset += sizeof(T);
        },
        field.member);
  }
  expected_offset = (expected_offset + alignof(Config) - 1) / alignof(Config) * alignof(Config);
  EXPECT_EQ(expected_offset, sizeof(Config));
}

// One declaration per field (core/config_fields.h) yields the same settings as the hand-written
// table it replaced: tests/core/data/config_fields_before_split.json is that table as main printed
// it before the split (name, default, stages, help, in field order), frozen. Every one of them is
// still a setting with the same default (value and JSON type), stages and help, in the same order;
// settings added since are not in it and need no entry. Deliberate changes since the split are
// listed here, each with its reason, and checked to be the current value.
TEST(ConfigFields, KeepTheTableFromBeforeTheSplit) {
  // COMPRESSOR: golf's coder became the default when it beat Brotli and pergroup (issue 16 §1).
  const std::map<std::string, std::pair<json, std::string>> changed_since = {
      {"COMPRESSOR", {"golf", "golf (golf's coder, the default) | brotli | pergroup (records' R0427L scheme)"}}};
  const json before = json::parse(test::read_file(std::filesystem::path(GOLF_REFERENCE_DIR) /
                                                  "../core/data/config_fields_before_split.json"));
  ASSERT_EQ(before.size(), 151u);
  const json defaults = to_json(Config{});
  std::map<std::string, size_t> index;
  for (size_t k = 0; k < config_fields().size(); ++k) index[config_fields()[k].name] = k;
  size_t previous = 0;
  for (const json& row : before) {  // [name, default, stages, help]
    const std::string name = row[0].get<std::string>();
    ASSERT_TRUE(index.contains(name)) << name << " is no longer a setting";
    const auto& field = config_fields()[index.at(name)];
    const auto change = changed_since.find(name);
    const json expected_default = change == changed_since.end() ? row[1] : change->second.first;
    const std::string expected_help = change == changed_since.end() ? row[3].get<std::string>() : change->second.second;
    EXPECT_EQ(defaults.at(name).dump(), expected_default.dump()) << name;
    EXPECT_EQ(field.stages, row[2].get<std::vector<std::string>>()) << name;
    EXPECT_EQ(field.help, expected_help) << name;
    EXPECT_GE(index.at(name), previous) << name << " moved";
    previous = index.at(name);
  }
}

// Each setting is declared once: one GOLF_<PART>_FIELD line per table entry, named as its member
// upper-cased (the records' environment names).
TEST(ConfigFields, OneDeclarationLinePerField) {
  const auto def = test::read_file(std::filesystem::path(GOLF_REFERENCE_DIR) / "../../core/config_fields.h");
  std::istringstream lines(def);
  const std::regex declaration(R"(^GOLF_(RUN|MODEL|TRAIN|OPTIM|QUANT|EVAL)_FIELD\((int64_t|double|std::string), (\w+),.*)");
  size_t index = 0;
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, declaration)) continue;
    ASSERT_LT(index, config_fields().size()) << "no table entry for " << m[3];
    std::string upper = m[3].str();
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(config_fields()[index++].name, upper);
  }
  EXPECT_EQ(index, config_fields().size());
}

// Which part holds a field: the base subobject of Config its member lies in.
std::string part_of(const ConfigField& field) {
  const Config config;
  const auto* at = std::visit([&](auto member) { return reinterpret_cast<const char*>(&(config.*member)); }, field.member);
  const auto inside = [&](const auto& part) {
    const auto* begin = reinterpret_cast<const char*>(&part);
    return at >= begin && at < begin + sizeof(part);
  };
  if (inside(static_cast<const RunConfig&>(config))) return "run";
  if (inside(static_cast<const ModelConfig&>(config))) return "model";
  if (inside(static_cast<const TrainConfig&>(config))) return "train";
  if (inside(static_cast<const OptimConfig&>(config))) return "optim";
  if (inside(static_cast<const QuantConfig&>(config))) return "quant";
  if (inside(static_cast<const EvalConfig&>(config))) return "eval";
  return "none";
}

// The parts hold what their stage reads: every setting stored in the artifact is a ModelConfig one
// (but the tokenizer's identity, a RunConfig one), golf-pack-only settings are QuantConfig's, and
// golf-eval-only settings EvalConfig's (but SMAT_ABLATION, the model's eval-time override).
TEST(ConfigParts, HoldTheSettingsOfTheirStage) {
  for (const auto& field : config_fields()) {
    const std::string part = part_of(field);
    const std::set<std::string> stages(field.stages.begin(), field.stages.end());
    if (stages.count("model")) {
      EXPECT_EQ(part, field.name.starts_with("TOKENIZER_") ? "run" : "model") << field.name;
    }
    if (stages == std::set<std::string>{"quant"}) {
      EXPECT_EQ(part, "quant") << field.name;
    }
    if (stages == std::set<std::string>{"eval"}) {
      EXPECT_EQ(part, field.name == "SMAT_ABLATION" ? "model" : "eval") << field.name;
    }
    EXPECT_NE(part, "none") << field.name;
  }
  // A component takes its part: a Config converts, and the part is the same object.
  Config config;
  config.num_layers = 3, config.matrix_lr = 0.5, config.eval_stride = 7;
  const ModelConfig& model = config;
  const OptimConfig& optim = config;
  const EvalConfig& eval = config;
  EXPECT_EQ(model.num_layers, 3);
  EXPECT_EQ(optim.matrix_lr, 0.5);
  EXPECT_EQ(eval.eval_stride, 7);
}

// A field's one-field rule (config_fields.h) refuses a value just outside and accepts one just
// inside, with the message naming the field and the value.
TEST(ConfigFields, EachRuleRefusesAValueJustOutside) {
  using Kind = FieldRule::Kind;
  size_t with_rules = 0;
  for (const auto& field : config_fields()) {
    if (field.rule.kind == Kind::none) continue;
    ++with_rules;
    Config outside, inside;
    std::string refused_text, accepted_text;  // the rule's message for either value
    std::visit(
        [&](auto member) {
          using T = std::remove_cvref_t<decltype(outside.*member)>;
          if constexpr (std::is_same_v<T, std::string>) {
            ASSERT_EQ(field.rule.kind, Kind::one_of) << field.name;
            outside.*member = "not-a-choice";
            inside.*member = field.rule.choices.back();
            refused_text = field.name + "=\"not-a-choice\" must be one of ";
            accepted_text = field.name + "=" + json(inside.*member).dump() + " must be one of ";
          } else {
            const T low = static_cast<T>(field.rule.lo), high = static_cast<T>(field.rule.hi);
            std::string says;
            switch (field.rule.kind) {
              case Kind::positive: outside.*member = 0, inside.*member = 1, says = "must be positive"; break;
              case Kind::non_negative: outside.*member = -1, inside.*member = 0, says = "must be >= 0"; break;
              case Kind::flag: outside.*member = 2, inside.*member = 1, says = "must be 0 or 1"; break;
              case Kind::closed: outside.*member = high + 1, inside.*member = high, says = "must be in ["; break;
              case Kind::half_open: outside.*member = high, inside.*member = low, says = "must be in ["; break;
              default: FAIL() << field.name << ": one_of on a number";
            }
            refused_text = fmt::format("{}={} {}", field.name, outside.*member, says);
            accepted_text = fmt::format("{}={} {}", field.name, inside.*member, says);
          }
        },
        field.member);
    const std::string refused = error_of([&] { validate(outside); });
    EXPECT_TRUE(contains(refused, refused_text)) << field.name << ": " << refused;
    // Other rules may object to the combination (NUM_HEADS=1 with NUM_KV_HEADS=4), not this one.
    const std::string accepted = error_of([&] { validate(inside); });
    EXPECT_FALSE(contains(accepted, accepted_text)) << field.name << ": " << accepted;
  }
  EXPECT_GT(with_rules, 100u);
}

// Setting a field through its entry changes that field's JSON key and no other.
TEST(ConfigFields, EachEntrySetsExactlyItsOwnKey) {
  const json defaults = to_json(Config{});
  ASSERT_EQ(defaults.size(), config_fields().size());
  for (const auto& field : config_fields()) {
    Config config;
    std::visit(
        [&](auto member) {
          using T = std::remove_cvref_t<decltype(config.*member)>;
          if constexpr (std::is_same_v<T, std::string>) config.*member += "-changed";
          else config.*member += 7;
        },
        field.member);
    const json changed = to_json(config);
    std::vector<std::string> differing;
    for (const auto& [key, value] : changed.items())
      if (defaults.at(key) != value) differing.push_back(key);
    EXPECT_EQ(differing, std::vector<std::string>{field.name});
  }
}

// ---- stages ---------------------------------------------------------------------------------------

// Every field belongs to at least one stage, each named once, all of them known stages.
TEST(ConfigStages, EveryFieldHasKnownStages) {
  const auto& stages = config_stages();
  EXPECT_EQ(stages, (std::vector<std::string>{"data", "model", "train", "quant", "eval"}));
  for (const auto& field : config_fields()) {
    std::vector<std::string> of;
    ASSERT_NO_THROW(of = field_stages(field.name)) << field.name;
    EXPECT_FALSE(of.empty()) << field.name;
    EXPECT_EQ(std::set<std::string>(of.begin(), of.end()).size(), of.size()) << field.name << " repeats a stage";
    for (const auto& stage : of)
      EXPECT_NE(std::find(stages.begin(), stages.end(), stage), stages.end()) << field.name << ": " << stage;
  }
}

// A stage's fields are exactly the fields that name it, in field order.
TEST(ConfigStages, StageFieldsAreTheFieldsThatNameTheStage) {
  for (const auto& stage : config_stages()) {
    std::vector<std::string> expected;
    for (const auto& field : config_fields()) {
      const auto& of = field_stages(field.name);
      if (std::find(of.begin(), of.end(), stage) != of.end()) expected.push_back(field.name);
    }
    EXPECT_EQ(stage_fields(stage), expected) << stage;
    EXPECT_FALSE(expected.empty()) << stage;
  }
}

// The model stage is the artifact's stored key set: changing it changes every artifact, so it is
// written out here (as golf-pack stored it before the stage table existed).
TEST(ConfigStages, ModelStageIsTheArtifactKeySet) {
  const std::vector<std::string> model = stage_fields("model");
  const std::set<std::string> expected = {
      "VOCAB_SIZE", "NUM_LAYERS", "MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS", "MLP_MULT", "ROPE_BASE", "ROPE_DIMS",
      "QK_GAIN_INIT", "LN_SCALE", "XSA_LAST_N", "ATTN_OUT_GATE_ENABLED", "GATE_WIDTH", "SMEAR_GATE_ENABLED",
      "SMEAR_INPUT", "BOS_TOKEN_ID", "SKIP_GATES_ENABLED", "PARALLEL_START_LAYER", "PARALLEL_MODE", "NUM_LOOPS",
      "LOOP_START", "LOOP_END", "LOGIT_SOFTCAP", "TRAIN_SEQ_LEN", "DOC_MASK", "SMEAR_BOS_MASK", "SMAT_USE_S",
      "SMAT_USE_G", "SMAT_DIM", "SMAT_CENTRALITY", "SMAT_GONLY_CENTRALITY", "VALUE_RESIDUAL", "GATED_ATTENTION",
      "BIGRAM_HASH", "BIGRAM_BUCKETS", "BIGRAM_DIM", "MOA_ENABLED", "MOA_BRANCHES", "MOA_METRIC",
      "MOA_ROUTER_HIDDEN", "MOA_BIAS_GATE", "MOA_CONV_KERNEL", "MOA_CHAN_MULT", "MOA_BALL", "MOA_BALL_KAPPA",
      "MOA_BALL_TAU", "SPARSE_ATTN_GATE_ENABLED", "SPARSE_ATTN_GATE_SCALE", "TOKENIZER_SHA256", "TOKENIZER_KIND",
      "HEAD_GATE_ENABLED"};
  EXPECT_EQ(std::set<std::string>(model.begin(), model.end()), expected);
  EXPECT_EQ(model.size(), expected.size());
}

// golf-eval's own settings: the data, the device, the protocols and TTT; never a model setting
// (those are pinned by the artifact) and never a training-only one.
TEST(ConfigStages, EvalStageHoldsTheDataAndTheProtocolsButNoModelSetting) {
  const auto eval = stage_fields("eval");
  const std::set<std::string> names(eval.begin(), eval.end());
  for (const char* key : {"DATA_PATH", "TOKENIZER_PATH", "DEVICE", "VAL_MAX_TOKENS", "SMAT_ABLATION", "EVAL_STRIDE",
                          "TTT_MODE", "PHASED_TTT_NUM_PHASES", "GLOBAL_TTT_LR"})
    EXPECT_TRUE(names.count(key)) << key;
  for (const auto& key : stage_fields("model")) EXPECT_FALSE(names.count(key)) << key;
  for (const char* key : {"MATRIX_LR", "ITERATIONS", "MATRIX_BITS", "RUN_ID"}) EXPECT_FALSE(names.count(key)) << key;
}

TEST(ConfigStages, UnknownStagesAndFieldsAreErrors) {
  const std::string stage = error_of([] { stage_fields("evaluation"); });
  EXPECT_TRUE(contains(stage, "unknown stage \"evaluation\"")) << stage;
  EXPECT_TRUE(contains(stage, "data, model, train, quant, eval")) << stage;
  EXPECT_TRUE(contains(error_of([] { field_stages("NOT_A_FIELD"); }), "NOT_A_FIELD is not a setting"));
}

// ---- compatibility ------------------------------------------------------------------------------

json read_test_json(const std::string& name) {
  return json::parse(test::read_file(std::filesystem::path(GOLF_REFERENCE_DIR) / "../core/data" / name));
}

// Old run directories still load: the config.json golf-train wrote before the split (the full-size
// frontier_0427 run, 151 settings) reads back through both readers with every value unchanged;
// settings added since (e.g. HEAD_GATE_ENABLED) take their defaults.
json with_later_defaults(const json& old) {
  json expected = to_json(Config{});
  for (const auto& [key, value] : old.items()) expected[key] = value;
  return expected;
}
TEST(ConfigCompatibility, AnOldRunConfigLoadsWithEveryValueUnchanged) {
  const json old = read_test_json("run_config_frontier_11x512.json");
  const Config config = config_from_json(old);
  EXPECT_NO_THROW(validate(config));
  EXPECT_EQ(to_json(config), with_later_defaults(old));
  const Config resolved = resolve_config(
      ConfigSources{{std::filesystem::path(GOLF_REFERENCE_DIR) / "../core/data/run_config_frontier_11x512.json"}, {}, {}, {}, {}});
  EXPECT_EQ(to_json(resolved), with_later_defaults(old));
  EXPECT_EQ(resolved.ema_decay, 0.0);  // the run's own values, not defaults
  EXPECT_EQ(resolved.run_id, old.at("RUN_ID").get<std::string>());
}

// Older run dirs and artifacts lack later settings (LQER, COMPRESSOR, MoA, …): they take defaults.
TEST(ConfigCompatibility, ASettingMissingFromAnOldFileTakesItsDefault) {
  json old = read_test_json("run_config_frontier_11x512.json");
  for (const char* later : {"LQER_ENABLED", "COMPRESSOR", "MOA_ENABLED", "SPARSE_ATTN_GATE_SCALE", "TTT_MODE"})
    old.erase(later);
  const json loaded = to_json(config_from_json(old));
  const json defaults = to_json(Config{});
  for (const char* later : {"LQER_ENABLED", "COMPRESSOR", "MOA_ENABLED", "SPARSE_ATTN_GATE_SCALE", "TTT_MODE"})
    EXPECT_EQ(loaded.at(later), defaults.at(later)) << later;
  EXPECT_EQ(loaded.at("NUM_LAYERS"), old.at("NUM_LAYERS"));
}

// ---- defaults and sources -----------------------------------------------------------------------

TEST(ConfigDefaults, AreTheRecordSettingsAndValid) {
  const Config config;
  EXPECT_EQ(config.seed, 1337);
  EXPECT_EQ(config.vocab_size, 8192);
  EXPECT_EQ(config.num_layers, 11);
  EXPECT_DOUBLE_EQ(config.matrix_lr, 0.026);
  EXPECT_EQ(config.parallel_mode, "two_lane");
  EXPECT_NO_THROW(validate(config));
  EXPECT_EQ(to_json(resolve_config(ConfigSources{})), to_json(config));
}

TEST(ConfigSources, EnvironmentSetsEachType) {
  const Config config =
      resolve_env({{"SEED", "-4"}, {"MATRIX_LR", "1e-3"}, {"RUN_ID", "my run = 1"}, {"DOC_MASK", "0"}});
  EXPECT_EQ(config.seed, -4);
  EXPECT_DOUBLE_EQ(config.matrix_lr, 1e-3);
  EXPECT_EQ(config.run_id, "my run = 1");
  EXPECT_EQ(config.doc_mask, 0);
}

TEST(ConfigSources, EnvironmentNamesThatAreNotFieldsAreIgnored) {
  const Config config = resolve_env({{"PATH", "/bin"}, {"MATRX_LR", "abc"}, {"seed", "abc"}, {"SEED_X", "1"}});
  EXPECT_EQ(to_json(config), to_json(Config{}));
}

TEST(ConfigSources, EachLaterSourceWins) {
  TempDir dir;
  test::write_file(dir / "first.json", R"({"SEED": 1, "NUM_LAYERS": 12, "MODEL_DIM": 256, "RUN_ID": "file1"})");
  test::write_file(dir / "second.json", R"({"NUM_LAYERS": 13, "MODEL_DIM": 384, "RUN_ID": "file2"})");
  ConfigSources sources;
  sources.json_files = {dir / "first.json", dir / "second.json"};
  sources.environment = {{"MODEL_DIM", "768"}, {"RUN_ID", "env"}};
  sources.overrides = {"RUN_ID=set1", "RUN_ID=set2"};
  const Config config = resolve_config(sources);
  EXPECT_EQ(config.iterations, 20000);  // default
  EXPECT_EQ(config.seed, 1);            // first file only
  EXPECT_EQ(config.num_layers, 13);     // second file over first
  EXPECT_EQ(config.model_dim, 768);     // environment over files
  EXPECT_EQ(config.run_id, "set2");     // --set over environment, last --set over earlier
}

TEST(ConfigSources, PinnedSettingsWinOverEverySourceAndCannotBeSet) {
  ConfigSources sources;
  sources.environment = {{"NUM_LAYERS", "9"}, {"SEED", "3"}};
  sources.overrides = {"MODEL_DIM=256"};
  sources.pinned_json = R"({"NUM_LAYERS": 6, "NUM_HEADS": 4})";
  sources.pinned_source = "the artifact a.golf";
  const Config config = resolve_config(sources);
  EXPECT_EQ(config.num_layers, 6);   // pinned over the environment
  EXPECT_EQ(config.num_heads, 4);
  EXPECT_EQ(config.model_dim, 256);  // what is not pinned still comes from the sources
  EXPECT_EQ(config.seed, 3);
  // Validation sees the pinned values: with NUM_HEADS=4 (not the default 8), MODEL_DIM=90 fails.
  sources.overrides = {"MODEL_DIM=90"};
  EXPECT_TRUE(contains(test::error_of([&] { resolve_config(sources); }), "MODEL_DIM=90 is not divisible by NUM_HEADS=4"));
  sources.overrides = {"NUM_LAYERS=5"};
  const auto msg = test::error_of([&] { resolve_config(sources); });
  EXPECT_TRUE(contains(msg, "--set NUM_LAYERS=5: NUM_LAYERS is fixed by the artifact a.golf")) << msg;
}

TEST(ConfigSources, SetSplitsAtTheFirstEquals) {
  EXPECT_EQ(resolve_env({}, {"RUN_ID=a=b"}).run_id, "a=b");
  EXPECT_EQ(resolve_env({{"RUN_ID", "env"}}, {"RUN_ID="}).run_id, "");
}

TEST(ConfigSources, SetWithoutEqualsIsAnError) {
  const auto msg = set_error("SEED");
  EXPECT_TRUE(contains(msg, "--set")) << msg;
  EXPECT_TRUE(contains(msg, "\"SEED\" is not KEY=VALUE")) << msg;
}

TEST(ConfigSources, ResolvedConfigIsValidated) {
  const auto msg = env_error("NUM_HEADS", "7");
  EXPECT_TRUE(contains(msg, "MODEL_DIM=512 is not divisible by NUM_HEADS=7")) << msg;
}

TEST(ConfigSources, CurrentEnvironmentReadsTheProcessEnvironment) {
  ::setenv("GOLF_CONFIG_TEST_VARIABLE", "x=y", 1);
  const auto env = current_environment();
  ::unsetenv("GOLF_CONFIG_TEST_VARIABLE");
  ASSERT_TRUE(env.contains("GOLF_CONFIG_TEST_VARIABLE"));
  EXPECT_EQ(env.at("GOLF_CONFIG_TEST_VARIABLE"), "x=y");
}

// ---- unknown keys -------------------------------------------------------------------------------

TEST(ConfigUnknownKeys, SetSuggestsTheNearestName) {
  const auto msg = set_error("MATRX_LR=0.1");
  EXPECT_TRUE(contains(msg, "--set")) << msg;
  EXPECT_TRUE(contains(msg, "\"MATRX_LR\"")) << msg;
  EXPECT_TRUE(contains(msg, "did you mean MATRIX_LR?")) << msg;
}

// Keys match exactly; a lower-case field name is unknown but points at its upper-case spelling.
TEST(ConfigUnknownKeys, LowerCaseNamesAreRejectedWithTheUpperCaseSuggestion) {
  EXPECT_TRUE(contains(set_error("matrix_lr=0.1"), "did you mean MATRIX_LR?"));
  EXPECT_TRUE(contains(json_error({{"num_kv_heads", 2}}), "did you mean NUM_KV_HEADS?"));
}

TEST(ConfigUnknownKeys, JsonFileNamesTheFileAndSuggests) {
  TempDir dir;
  test::write_file(dir / "c.json", R"({"SEED": 3, "TRAIN_SEQ_LENGTH": 1024})");
  const auto msg = error_of([&] { resolve_config(ConfigSources{{dir / "c.json"}, {}, {}, {}, {}}); });
  EXPECT_TRUE(contains(msg, (dir / "c.json").string())) << msg;
  EXPECT_TRUE(contains(msg, "\"TRAIN_SEQ_LENGTH\"")) << msg;
  EXPECT_TRUE(contains(msg, "did you mean TRAIN_SEQ_LEN?")) << msg;
}

// ---- text values (environment and --set) --------------------------------------------------------

TEST(ConfigTextValues, IntegerFieldsRejectAnythingButAnInteger) {
  for (const std::string bad : {"12.5", "abc", "", " 12", "12 ", "0x10", "1e3", "true"}) {
    const auto msg = env_error("SEED", bad);
    EXPECT_TRUE(contains(msg, "environment: SEED=" + json(bad).dump() + " is not an integer")) << msg;
  }
  EXPECT_TRUE(contains(env_error("SEED", "9223372036854775808"), "out of the int64 range"));
  EXPECT_EQ(resolve_env({{"SEED", "9223372036854775807"}}).seed, INT64_MAX);
}

TEST(ConfigTextValues, FlagsTakeIntegers) {
  EXPECT_EQ(resolve_env({{"DOC_MASK", "0"}}).doc_mask, 0);
  EXPECT_TRUE(contains(env_error("DOC_MASK", "false"), "DOC_MASK=\"false\" is not an integer"));
}

TEST(ConfigTextValues, FloatFieldsTakeDecimalAndExponentForms) {
  EXPECT_DOUBLE_EQ(resolve_env({{"MATRIX_LR", "1e-3"}}).matrix_lr, 1e-3);
  EXPECT_DOUBLE_EQ(resolve_env({{"MATRIX_LR", ".5"}}).matrix_lr, 0.5);
  EXPECT_DOUBLE_EQ(resolve_env({{"MATRIX_LR", "2"}}).matrix_lr, 2.0);
  EXPECT_DOUBLE_EQ(resolve_env({}, {"QK_GAIN_INIT=-0.25"}).qk_gain_init, -0.25);
}

TEST(ConfigTextValues, FloatFieldsRejectTextAndNonFiniteValues) {
  for (const std::string bad : {"abc", "", "0.1x", "1,5"})
    EXPECT_TRUE(contains(set_error("MATRIX_LR=" + bad), "--set: MATRIX_LR=" + json(bad).dump() + " is not a number"))
        << bad;
  for (const std::string bad : {"nan", "inf", "-inf"})
    EXPECT_TRUE(contains(env_error("MATRIX_LR", bad), "is not a finite number")) << bad;
  EXPECT_TRUE(contains(env_error("MATRIX_LR", "1e999"), "out of the double range"));
}

// ---- JSON values --------------------------------------------------------------------------------

TEST(ConfigJsonValues, IntegerFieldsTakeIntegerValuedNumbersOnly) {
  EXPECT_EQ(config_from_json({{"SEED", 42}}).seed, 42);
  EXPECT_EQ(config_from_json(json::parse(R"({"SEED": 2.0})")).seed, 2);
  EXPECT_TRUE(contains(json_error(json::parse(R"({"SEED": 1.5})")), "config JSON: SEED=1.5 is not an integer"));
  EXPECT_TRUE(contains(json_error(json::parse(R"({"SEED": 1e20})")), "is not an integer"));
  EXPECT_TRUE(contains(json_error(json::parse(R"({"SEED": 18446744073709551615})")), "is not an integer"));
}

// JSON carries types, so a number written as a string is a mistake, not a convenience.
TEST(ConfigJsonValues, NumbersInStringsAreRejected) {
  EXPECT_TRUE(contains(json_error({{"SEED", "12"}}), "SEED=\"12\" is not an integer"));
  EXPECT_TRUE(contains(json_error({{"MATRIX_LR", "0.1"}}), "MATRIX_LR=\"0.1\" is not a number"));
}

TEST(ConfigJsonValues, BooleansAndNullAreNotNumbers) {
  EXPECT_TRUE(contains(json_error({{"DOC_MASK", true}}), "DOC_MASK=true is not an integer"));
  EXPECT_TRUE(contains(json_error({{"MATRIX_LR", nullptr}}), "MATRIX_LR=null is not a number"));
}

TEST(ConfigJsonValues, FloatFieldsTakeIntegers) {
  EXPECT_DOUBLE_EQ(config_from_json({{"MAX_WALLCLOCK_SECONDS", 300}}).max_wallclock_seconds, 300.0);
}

TEST(ConfigJsonValues, StringFieldsTakeOnlyStrings) {
  EXPECT_EQ(config_from_json({{"RUN_ID", "abc"}}).run_id, "abc");
  EXPECT_TRUE(contains(json_error({{"RUN_ID", 5}}), "RUN_ID=5 is not a string"));
}

// ---- JSON files ---------------------------------------------------------------------------------

TEST(ConfigJsonFile, IsReadFromDisk) {
  TempDir dir;
  test::write_file(dir / "c.json", R"({"SEED": 7, "MATRIX_LR": 0.04, "LOADER": "coprime"})");
  const Config config = resolve_config(ConfigSources{{dir / "c.json"}, {}, {}, {}, {}});
  EXPECT_EQ(config.seed, 7);
  EXPECT_DOUBLE_EQ(config.matrix_lr, 0.04);
  EXPECT_EQ(config.loader, "coprime");
}

TEST(ConfigJsonFile, MissingMalformedOrNonObjectFilesNameTheFile) {
  TempDir dir;
  test::write_file(dir / "bad.json", "{\"SEED\": ");
  test::write_file(dir / "list.json", "[1, 2]");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"absent.json", "cannot open"}, {"bad.json", "not valid JSON"}, {"list.json", "must be a JSON object"}};
  for (const auto& [name, problem] : cases) {
    const auto msg = error_of([&] { resolve_config(ConfigSources{{dir / name}, {}, {}, {}, {}}); });
    EXPECT_TRUE(contains(msg, (dir / name).string())) << msg;
    EXPECT_TRUE(contains(msg, problem)) << msg;
  }
}

TEST(ConfigJsonFile, ValueErrorsNameTheFile) {
  TempDir dir;
  test::write_file(dir / "c.json", R"({"NUM_LAYERS": "eleven"})");
  const auto msg = error_of([&] { resolve_config(ConfigSources{{dir / "c.json"}, {}, {}, {}, {}}); });
  EXPECT_TRUE(contains(msg, (dir / "c.json").string() + ": NUM_LAYERS=\"eleven\" is not an integer")) << msg;
}

// ---- validate() ---------------------------------------------------------------------------------

struct InvalidCase {
  std::string expected;  // part of the message: the field names and the values
  std::function<void(Config&)> change;
};

TEST(ConfigValidate, EachRuleNamesTheFieldsAndValues) {
  const std::vector<InvalidCase> cases = {
      {"MODEL_DIM=500 is not divisible by NUM_HEADS=8", [](Config& c) { c.model_dim = 500; }},
      {"NUM_HEADS=8 is not divisible by NUM_KV_HEADS=3", [](Config& c) { c.num_kv_heads = 3; }},
      {"ROPE_DIMS=15 must be even", [](Config& c) { c.rope_dims = 15; }},
      {"ROPE_DIMS=66 must be even and at most the head dim MODEL_DIM/NUM_HEADS=64", [](Config& c) { c.rope_dims = 66; }},
      {"ROPE_DIMS=0 must be positive", [](Config& c) { c.rope_dims = 0; }},
      {"GATE_WIDTH=513 exceeds MODEL_DIM=512", [](Config& c) { c.gate_width = 513; }},
      {"0 <= LOOP_START=6 <= LOOP_END=5 < NUM_LAYERS=11", [](Config& c) { c.loop_start = 6; }},
      {"0 <= LOOP_START=-1 <= LOOP_END=5", [](Config& c) { c.loop_start = -1; }},
      {"LOOP_END=11 < NUM_LAYERS=11", [](Config& c) { c.loop_end = 11; }},
      {"NUM_LOOPS=-1 must be >= 0", [](Config& c) { c.num_loops = -1; }},
      {"PARALLEL_MODE=\"parallel\" must be one of two_lane, gptj, none", [](Config& c) { c.parallel_mode = "parallel"; }},
      {"SMEAR_INPUT=\"Normed\" must be one of normed, raw", [](Config& c) { c.smear_input = "Normed"; }},
      {"LOADER=\"random\" must be one of packing, coprime", [](Config& c) { c.loader = "random"; }},
      {"DEVICE=\"gpu\" must be one of auto, cpu, cuda", [](Config& c) { c.device = "gpu"; }},
      {"XSA_LAST_N=-1 must be >= 0", [](Config& c) { c.xsa_last_n = -1; }},
      {"VOCAB_SIZE=65537 exceeds 65536", [](Config& c) { c.vocab_size = 65537; }},
      {"VOCAB_SIZE=0 must be positive", [](Config& c) { c.vocab_size = 0; }},
      {"BOS_TOKEN_ID=8192 must be below VOCAB_SIZE=8192", [](Config& c) { c.bos_token_id = 8192; }},
      {"NUM_LAYERS=0 must be positive", [](Config& c) { c.num_layers = 0, c.xsa_last_n = 0, c.num_loops = 0; }},
      {"MODEL_DIM=-8 must be positive", [](Config& c) { c.model_dim = -8, c.gate_width = -8; }},
      {"NUM_HEADS=0 must be positive", [](Config& c) { c.num_heads = 0; }},
      {"NUM_KV_HEADS=0 must be positive", [](Config& c) { c.num_kv_heads = 0; }},
      {"MLP_MULT=0 must be positive", [](Config& c) { c.mlp_mult = 0; }},
      {"TRAIN_SEQ_LEN=0 must be positive", [](Config& c) { c.train_seq_len = 0; }},
      {"TRAIN_BATCH_TOKENS=0 must be positive", [](Config& c) { c.train_batch_tokens = 0; }},
      {"VAL_BATCH_TOKENS=0 must be positive", [](Config& c) { c.val_batch_tokens = 0; }},
      {"ITERATIONS=0 must be positive", [](Config& c) { c.iterations = 0; }},
      {"MATRIX_LR=-0.1 must be >= 0", [](Config& c) { c.matrix_lr = -0.1; }},
      {"SCALAR_LR=-0.1 must be >= 0", [](Config& c) { c.scalar_lr = -0.1; }},
      {"TIED_EMBED_LR=-0.1 must be >= 0", [](Config& c) { c.tied_embed_lr = -0.1; }},
      {"MIN_LR=-0.1 must be >= 0", [](Config& c) { c.min_lr = -0.1; }},
      {"WARMDOWN_FRAC=1.5 must be in [0, 1]", [](Config& c) { c.warmdown_frac = 1.5; }},
      {"WARMDOWN_FRAC=-0.1 must be in [0, 1]", [](Config& c) { c.warmdown_frac = -0.1; }},
      {"EMA_DECAY=1 must be in [0, 1)", [](Config& c) { c.ema_decay = 1.0; }},
      {"EMA_DECAY=-0.5 must be in [0, 1)", [](Config& c) { c.ema_decay = -0.5; }},
      {"ENABLE_LOOPING_AT=1.2 must be in [0, 1]", [](Config& c) { c.enable_looping_at = 1.2; }},
      {"DOC_MASK=2 must be 0 or 1", [](Config& c) { c.doc_mask = 2; }},
      {"MUON_ROW_NORMALIZE=-1 must be 0 or 1", [](Config& c) { c.muon_row_normalize = -1; }},
      {"GRAD_ACCUM_STEPS=-2 must be >= 0", [](Config& c) { c.grad_accum_steps = -2; }},
      {"MAX_WALLCLOCK_SECONDS=-1 must be >= 0", [](Config& c) { c.max_wallclock_seconds = -1; }},
      {"ADAM_EPS=0 must be positive", [](Config& c) { c.adam_eps = 0; }},
      {"LOGIT_SOFTCAP=0 must be positive", [](Config& c) { c.logit_softcap = 0; }},
      {"MUON_BACKEND_STEPS=7 exceeds the 5 Polar Express coefficient tuples",
       [](Config& c) { c.muon_polar_express = 1, c.muon_backend_steps = 7; }},
      {"SPARSE_ATTN_GATE_ENABLED=1 replaces the output gate: set ATTN_OUT_GATE_ENABLED=0 and GATED_ATTENTION=0 (they are 1 and 0)",
       [](Config& c) { c.sparse_attn_gate_enabled = 1; }},
      {"SPARSE_ATTN_GATE_INIT_STD=-0.1 must be >= 0", [](Config& c) { c.sparse_attn_gate_init_std = -0.1; }},
      {"LQER_RANK=0 must be positive", [](Config& c) { c.lqer_rank = 0; }},
      {"LQER_TOP_K=0 must be positive", [](Config& c) { c.lqer_top_k = 0; }},
      {"LQER_ASYM_GROUP=0 must be positive", [](Config& c) { c.lqer_asym_group = 0; }},
      {"LQER_FACTOR_BITS=9 must be in [2, 8]", [](Config& c) { c.lqer_factor_bits = 9; }},
      {"LQER_ENABLED=2 must be 0 or 1", [](Config& c) { c.lqer_enabled = 2; }},
      {"GATED_ATTN_QUANT_GATE=2 must be 0 or 1", [](Config& c) { c.gated_attn_quant_gate = 2; }},
      {"HEAD_GATE_ENABLED=2 must be 0 or 1", [](Config& c) { c.head_gate_enabled = 2; }},
  };
  for (const auto& [expected, change] : cases) {
    Config config;
    change(config);
    const auto msg = error_of([&] { validate(config); });
    EXPECT_TRUE(contains(msg, expected)) << "expected: " << expected << "\n     got: " << msg;
  }
}

TEST(ConfigValidate, ReportsEveryProblemAtOnce) {
  Config config;
  config.device = "gpu";
  config.ema_decay = 2;
  const auto msg = error_of([&] { validate(config); });
  EXPECT_TRUE(contains(msg, "DEVICE=\"gpu\"")) << msg;
  EXPECT_TRUE(contains(msg, "EMA_DECAY=2")) << msg;
}

TEST(ConfigValidate, AcceptsTheBoundaries) {
  Config config;
  config.vocab_size = 65536;
  config.xsa_last_n = config.num_layers;
  config.loop_start = 0;
  config.loop_end = config.num_layers - 1;
  config.rope_dims = config.model_dim / config.num_heads;
  config.gate_width = config.model_dim;
  config.warmdown_frac = 1;
  config.ema_decay = 0;
  config.enable_looping_at = 0;
  config.matrix_lr = 0;
  EXPECT_NO_THROW(validate(config));
}

TEST(ConfigValidate, LoopRangeIsFreeWhenLoopingIsOff) {
  Config config;
  config.num_loops = 0;
  config.loop_start = 9;
  config.loop_end = 2;
  EXPECT_NO_THROW(validate(config));
}

// ---- renderings ---------------------------------------------------------------------------------

TEST(ConfigJson, KeysAreEnvNamesAndValuesAreTyped) {
  const json j = to_json(Config{});
  EXPECT_EQ(j.size(), config_fields().size());
  EXPECT_TRUE(j.at("SEED").is_number_integer());
  EXPECT_EQ(j.at("SEED"), 1337);
  EXPECT_TRUE(j.at("MATRIX_LR").is_number_float());
  EXPECT_TRUE(j.at("RUN_ID").is_string());
}

// Every field set away from its default, with doubles that need all 17 digits.
TEST(ConfigJson, RoundTripsEveryFieldThroughText) {
  Config config;
  int i = 0;
  for (const auto& field : config_fields()) {
    ++i;
    std::visit(
        [&](auto member) {
          using T = std::remove_cvref_t<decltype(config.*member)>;
          if constexpr (std::is_same_v<T, int64_t>) config.*member = 1000 + i;
          else if constexpr (std::is_same_v<T, double>) config.*member = i / 3.0;
          else config.*member = fmt::format("value \"{}\" ✓", i);
        },
        field.member);
  }
  const Config back = config_from_json(json::parse(to_json(config).dump()));
  EXPECT_EQ(to_json(back), to_json(config));
  EXPECT_EQ(back.ema_decay, config.ema_decay);  // bit-exact, not merely close
  EXPECT_NE(to_json(back), to_json(Config{}));
}

TEST(ConfigJson, FromJsonRejectsANonObject) {
  EXPECT_TRUE(contains(json_error(json::array({1})), "must be a JSON object"));
}

TEST(ConfigDescribe, OneAlignedLinePerFieldInTableOrder) {
  Config config;
  config.run_id = "r1";
  std::istringstream text(describe(config));
  std::vector<std::string> lines;
  for (std::string line; std::getline(text, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), config_fields().size());
  const size_t column = lines[0].find(" = ");
  for (size_t k = 0; k < lines.size(); ++k) {
    EXPECT_EQ(lines[k].rfind(config_fields()[k].name + " ", 0), 0u) << lines[k];
    EXPECT_EQ(lines[k].find(" = "), column) << lines[k];
  }
  EXPECT_EQ(lines[0].substr(column), " = \"r1\"");
  EXPECT_EQ(lines[2].substr(column), " = 1337");  // SEED
}

}  // namespace
}  // namespace golf
