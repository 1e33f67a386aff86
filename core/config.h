// core/config.h — the settings, split by stage, that travel through every stage.
//
// Every field is declared once, in core/config_fields.h, and named after the records'
// environment variable (SEED, NUM_LAYERS, MATRIX_LR…).
// Sources, later ones winning:  defaults  <  --config FILE.json  <  environment  <  --set KEY=VALUE.
// An unknown key in a JSON file or --set is an error that suggests the nearest field name; unknown
// environment variables are ignored (the environment holds much else).
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace golf {

// The settings by stage, each declared once in core/config_fields.h (type, name, default,
// stages, rule, help). Each component takes only its part (Model(const ModelConfig&), Optimizer(…,
// const OptimConfig&), the eval protocols' const EvalConfig&); a Config is all parts at once and
// converts to any of them. No two parts share a member name (config.cpp's table names each member
// as &Config::name, which would not compile if it were ambiguous).
struct RunConfig {  // the run, data, device and the tokenizer's identity
#define GOLF_RUN_FIELD(type, member, value, ...) type member = value;
#include "core/config_fields.h"
};
struct ModelConfig {  // what builds the model: architecture, variants, MoA, initialization
#define GOLF_MODEL_FIELD(type, member, value, ...) type member = value;
#include "core/config_fields.h"
};
struct TrainConfig {  // schedule, batches, validation, checkpoints, Hessian collection
#define GOLF_TRAIN_FIELD(type, member, value, ...) type member = value;
#include "core/config_fields.h"
};
struct OptimConfig {  // Muon, AdamW, clipping, EMA, the LR schedule's shape
#define GOLF_OPTIM_FIELD(type, member, value, ...) type member = value;
#include "core/config_fields.h"
};
struct QuantConfig {  // quantization, LQER, compression and the size budget (golf-pack)
#define GOLF_QUANT_FIELD(type, member, value, ...) type member = value;
#include "core/config_fields.h"
};
struct EvalConfig {  // evaluation protocols and test-time training (golf-eval)
#define GOLF_EVAL_FIELD(type, member, value, ...) type member = value;
#include "core/config_fields.h"
};

// Every setting: what golf-train resolves, run dirs store as config.json and every stage receives.
struct Config : RunConfig, ModelConfig, TrainConfig, OptimConfig, QuantConfig, EvalConfig {};

// A one-field validation rule (config_fields.h's `rule`); rules between fields are in validate().
struct FieldRule {
  enum class Kind { none, positive, non_negative, flag, one_of, closed, half_open } kind = Kind::none;
  double lo = 0, hi = 0;             // closed: [lo, hi]; half_open: [lo, hi)
  std::vector<std::string> choices;  // one_of
};

// One field of Config, from its declaration: the setting's name, a pointer to the member, the help
// line, the stages that read it (config_stages() order) and its rule.
struct ConfigField {
  std::string name;  // e.g. "MATRIX_LR"
  std::variant<int64_t Config::*, double Config::*, std::string Config::*> member;
  std::string help;
  std::vector<std::string> stages;
  FieldRule rule;
};
const std::vector<ConfigField>& config_fields();

struct ConfigSources {
  std::vector<std::filesystem::path> json_files;    // --config, applied in order
  std::map<std::string, std::string> environment;   // usually current_environment()
  std::vector<std::string> overrides;               // --set KEY=VALUE, applied in order
  // Settings fixed by an input, applied last: a JSON object text {"KEY": value, …} (golf-eval: the
  // model settings stored in the artifact). --set of one of its keys is an error; the environment's
  // value for it is ignored. `pinned_source` names the input in messages.
  std::string pinned_json, pinned_source;
};
std::map<std::string, std::string> current_environment();

// Applies the sources over the defaults. Throws golf::Error naming the source (file, "--set",
// "environment"), the key and the value for unknown keys (with the nearest valid name), values
// that do not parse as the field's type, and invalid combinations (validate()).
Config resolve_config(const ConfigSources& sources);
// Each field's rule (config_fields.h) and the invariants between fields (heads divide the model
// dim, KV heads divide heads, loop range inside the layers, rope dims even and ≤ head dim, …), all
// problems in one golf::Error. resolve_config() runs it; a tool validates each configuration once
// (the one it resolved, or one it read from a run dir or artifact), and components trust theirs.
void validate(const Config& config);
int64_t validate_calls();  // how many times validate() has run in this process (tests)

nlohmann::json to_json(const Config& config);          // {"SEED": 1337, ...}
Config config_from_json(const nlohmann::json& j);       // strict: unknown keys are errors
// Human-readable "KEY = value" lines, one per field, for the top of train.log.
std::string describe(const Config& config);

// ---- stages: which stage tool reads each setting (config_fields.h's stages column; scripts read it through
// `golf-train --print-config --stage S --json`, golf-pack stores the model stage in the artifact) ----
//   data   where the tokens and the tokenizer are, and the tokenizer's identity
//   model  what rebuilds the model from its weights: stored in the artifact, pinned by golf-eval
//   train  read by golf-train (the model settings, inits, schedule, optimizers, validation)
//   quant  read by golf-pack to quantize, compress and size the artifact
//   eval   read by golf-eval from its own sources (not the artifact): data, device, protocols, TTT
// A setting may belong to several stages; every field belongs to at least one (core/config_test).
const std::vector<std::string>& config_stages();  // {"data", "model", "train", "quant", "eval"}
// The stages of field `name`; throws golf::Error for a name that is not a field.
const std::vector<std::string>& field_stages(const std::string& name);
// The fields of `stage`, in field order; throws golf::Error naming the stages for an unknown one.
std::vector<std::string> stage_fields(const std::string& stage);

}  // namespace golf
