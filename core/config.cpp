// core/config.cpp — the field table (from core/config_fields.h), the four sources (defaults, JSON files, environment, --set),
// strict value parsing, the invariants between fields, and the JSON / text renderings.
#include "core/config.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <string_view>
#include <type_traits>
#include <variant>

#include "core/error.h"

extern char** environ;

namespace golf {
namespace {

using nlohmann::json;
using Member = decltype(ConfigField::member);

std::atomic<int64_t> validate_calls_{0};  // validate_calls()

// The stage bits and rule constructors that config_fields.h's `stages` and `rule` columns use.
namespace stage_bits {
constexpr unsigned data = 1, model = 2, train = 4, quant = 8, eval = 16;  // config_stages() order
}
namespace rules {
const FieldRule none{}, positive{FieldRule::Kind::positive, 0, 0, {}},
    non_negative{FieldRule::Kind::non_negative, 0, 0, {}},
    flag{FieldRule::Kind::flag, 0, 0, {}};
template <class... Choices>
FieldRule one_of(Choices... choices) {
  return {FieldRule::Kind::one_of, 0, 0, {std::string(choices)...}};
}
FieldRule closed(double lo, double hi) { return {FieldRule::Kind::closed, lo, hi, {}}; }
FieldRule half_open(double lo, double hi) { return {FieldRule::Kind::half_open, lo, hi, {}}; }
}  // namespace rules

std::vector<std::string> stage_names(unsigned bits) {
  static const std::vector<std::string> names = {"data", "model", "train", "quant", "eval"};
  std::vector<std::string> out;
  for (size_t k = 0; k < names.size(); ++k)
    if (bits & (1u << k)) out.push_back(names[k]);
  return out;
}

std::string upper_case(std::string_view member) {
  std::string name(member);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
  return name;
}

// One entry per line of core/config_fields.h, in its order (the parts' order, which is also the
// layout of Config: tests/core/config_test.cpp checks that every byte is covered). `&Config::member`
// does not compile if two parts declare the same member: the static check that names are unique.
std::vector<ConfigField> build_field_table() {
  using namespace stage_bits;
  using namespace rules;
  std::vector<ConfigField> fields;
#define GOLF_FIELD_ENTRY(type, member, value, stages, rule, help) \
  fields.push_back(ConfigField{upper_case(#member), &Config::member, help, stage_names(stages), rule});
#define GOLF_RUN_FIELD GOLF_FIELD_ENTRY
#define GOLF_MODEL_FIELD GOLF_FIELD_ENTRY
#define GOLF_TRAIN_FIELD GOLF_FIELD_ENTRY
#define GOLF_OPTIM_FIELD GOLF_FIELD_ENTRY
#define GOLF_QUANT_FIELD GOLF_FIELD_ENTRY
#define GOLF_EVAL_FIELD GOLF_FIELD_ENTRY
#include "core/config_fields.h"
#undef GOLF_FIELD_ENTRY
  return fields;
}

// ---- names ------------------------------------------------------------------------------------

// Strings are shown JSON-quoted so that empty values and stray spaces are visible.
std::string json_quoted(std::string_view text) { return json(text).dump(); }

const ConfigField* find_field(std::string_view name) {
  for (const auto& field : config_fields())
    if (field.name == name) return &field;
  return nullptr;
}

// The table's name for a member, so validate() messages use the names users type.
template <class T, class Part>
const std::string& name_of(T Part::* part_member) {
  const T Config::* member = part_member;
  for (const auto& field : config_fields())
    if (const auto* m = std::get_if<T Config::*>(&field.member); m && *m == member) return field.name;
  throw std::logic_error("config member missing from config_fields()");
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
    }
  }
  return row[b.size()];
}

// Compared upper-cased, so "matrix_lr" points at MATRIX_LR rather than at some short name.
std::string nearest_field_name(std::string_view key) {
  std::string upper(key);
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
  const ConfigField* best = nullptr;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const auto& field : config_fields()) {
    const size_t d = edit_distance(upper, field.name);
    if (d < best_distance) best = &field, best_distance = d;
  }
  return best->name;
}

[[noreturn]] void fail_unknown_key(std::string_view source, std::string_view key) {
  fail("{}: unknown key {} (did you mean {}?)", source, json_quoted(key), nearest_field_name(key));
}

// ---- values -----------------------------------------------------------------------------------

int64_t parse_int(std::string_view source, const std::string& key, const std::string& text) {
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range)
    fail("{}: {}={} is out of the int64 range", source, key, json_quoted(text));
  if (ec != std::errc() || end != text.data() + text.size() || text.empty())
    fail("{}: {}={} is not an integer", source, key, json_quoted(text));
  return value;
}

double parse_double(std::string_view source, const std::string& key, const std::string& text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) fail("{}: {}={} is out of the double range", source, key, json_quoted(text));
  if (ec != std::errc() || end != text.data() + text.size() || text.empty())
    fail("{}: {}={} is not a number", source, key, json_quoted(text));
  if (!std::isfinite(value)) fail("{}: {}={} is not a finite number", source, key, json_quoted(text));
  return value;
}

// Environment and --set values are text; each field parses it as its own type.
void set_from_text(Config& config, const ConfigField& field, const std::string& text, std::string_view source) {
  std::visit(
      [&](auto member) {
        using T = std::remove_reference_t<decltype(config.*member)>;
        if constexpr (std::is_same_v<T, int64_t>) config.*member = parse_int(source, field.name, text);
        else if constexpr (std::is_same_v<T, double>) config.*member = parse_double(source, field.name, text);
        else config.*member = text;
      },
      field.member);
}

// JSON values must already have the field's type: a number for numeric fields (integer-valued for
// int fields), a string for string fields. "12" for SEED is rejected, as is true for DOC_MASK.
void set_from_json(Config& config, const ConfigField& field, const json& value, std::string_view source) {
  std::visit(
      [&](auto member) {
        using T = std::remove_reference_t<decltype(config.*member)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          if (value.is_number_integer() && !(value.is_number_unsigned() &&
                                             value.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))) {
            config.*member = value.get<int64_t>();
            return;
          }
          // 2.0 is an integer written as a float; 2^63 and beyond are not int64.
          if (value.is_number_float()) {
            const double d = value.get<double>();
            if (d == std::trunc(d) && d >= -0x1p63 && d < 0x1p63) {
              config.*member = static_cast<int64_t>(d);
              return;
            }
          }
          fail("{}: {}={} is not an integer", source, field.name, value.dump());
        } else if constexpr (std::is_same_v<T, double>) {
          if (!value.is_number()) fail("{}: {}={} is not a number", source, field.name, value.dump());
          config.*member = value.get<double>();
        } else {
          if (!value.is_string()) fail("{}: {}={} is not a string", source, field.name, value.dump());
          config.*member = value.get<std::string>();
        }
      },
      field.member);
}

void apply_json_object(Config& config, const json& object, std::string_view source) {
  if (!object.is_object()) fail("{}: the configuration must be a JSON object of KEY: value, not {}", source, object.type_name());
  for (const auto& [key, value] : object.items()) {
    const ConfigField* field = find_field(key);
    if (!field) fail_unknown_key(source, key);
    set_from_json(config, *field, value, source);
  }
}

void apply_json_file(Config& config, const std::filesystem::path& path) {
  const std::string source = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open the configuration file", source);
  json object;
  try {
    object = json::parse(in);
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON: {}", source, e.what());
  }
  apply_json_object(config, object, source);
}

void apply_override(Config& config, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos) fail("--set: {} is not KEY=VALUE", json_quoted(assignment));
  const std::string key = assignment.substr(0, eq);
  const ConfigField* field = find_field(key);
  if (!field) fail_unknown_key("--set", key);
  set_from_text(config, *field, assignment.substr(eq + 1), "--set");
}

// ---- invariants -------------------------------------------------------------------------------

// Collects every violated rule, so that one run reports all of them.
class Problems {
 public:
  void add(std::string problem) { problems_.push_back(std::move(problem)); }

  template <class T, class Part>
  void positive(const Config& c, T Part::* m) {
    if (!(c.*m > 0)) add(fmt::format("{}={} must be positive", name_of(m), c.*m));
  }

  // The field's own rule from config_fields.h.
  void check_rule(const Config& c, const ConfigField& field) {
    using Kind = FieldRule::Kind;
    const FieldRule& rule = field.rule;
    if (rule.kind == Kind::none) return;
    std::visit(
        [&](auto member) {
          using T = std::remove_cvref_t<decltype(c.*member)>;
          const T& value = c.*member;
          if constexpr (std::is_same_v<T, std::string>) {
            if (rule.kind != Kind::one_of) throw std::logic_error(field.name + ": a string field takes none or one_of");
            if (std::find(rule.choices.begin(), rule.choices.end(), value) == rule.choices.end())
              add(fmt::format("{}={} must be one of {}", field.name, json_quoted(value), fmt::join(rule.choices, ", ")));
          } else {
            const auto v = static_cast<double>(value);
            switch (rule.kind) {
              case Kind::positive:
                if (!(v > 0)) add(fmt::format("{}={} must be positive", field.name, value));
                break;
              case Kind::non_negative:
                if (!(v >= 0)) add(fmt::format("{}={} must be >= 0", field.name, value));
                break;
              case Kind::flag:
                if (!std::is_same_v<T, int64_t>) throw std::logic_error(field.name + ": flag on a non-integer field");
                if (v != 0 && v != 1) add(fmt::format("{}={} must be 0 or 1", field.name, value));
                break;
              case Kind::closed:
                if (!(v >= rule.lo && v <= rule.hi))
                  add(fmt::format("{}={} must be in [{}, {}]", field.name, value, rule.lo, rule.hi));
                break;
              case Kind::half_open:
                if (!(v >= rule.lo && v < rule.hi))
                  add(fmt::format("{}={} must be in [{}, {})", field.name, value, rule.lo, rule.hi));
                break;
              default:
                throw std::logic_error(field.name + ": one_of on a numeric field");
            }
          }
        },
        field.member);
  }

  void throw_if_any() const {
    if (!problems_.empty()) fail("invalid configuration: {}", fmt::join(problems_, "; "));
  }

 private:
  std::vector<std::string> problems_;
};

}  // namespace

const std::vector<ConfigField>& config_fields() {
  static const std::vector<ConfigField> fields = build_field_table();
  return fields;
}

std::map<std::string, std::string> current_environment() {
  std::map<std::string, std::string> env;
  for (char** entry = environ; entry && *entry; ++entry) {
    const std::string_view text(*entry);
    const size_t eq = text.find('=');
    if (eq != std::string_view::npos) env.emplace(text.substr(0, eq), text.substr(eq + 1));
  }
  return env;
}

Config resolve_config(const ConfigSources& sources) {
  Config config;
  for (const auto& path : sources.json_files) apply_json_file(config, path);
  // The environment holds much else, so only names of fields are read.
  for (const auto& field : config_fields())
    if (const auto it = sources.environment.find(field.name); it != sources.environment.end())
      set_from_text(config, field, it->second, "environment");
  for (const auto& assignment : sources.overrides) apply_override(config, assignment);
  if (!sources.pinned_json.empty()) {
    json pinned;
    try {
      pinned = json::parse(sources.pinned_json);
    } catch (const json::parse_error& e) {
      fail("{}: settings are not valid JSON: {}", sources.pinned_source, e.what());
    }
    for (const auto& assignment : sources.overrides) {
      const std::string key = assignment.substr(0, assignment.find('='));
      if (pinned.is_object() && pinned.contains(key))
        fail("--set {}: {} is fixed by {} and cannot be changed here", assignment, key, sources.pinned_source);
    }
    apply_json_object(config, pinned, sources.pinned_source);
  }
  validate(config);
  return config;
}

void validate(const Config& c) {
  validate_calls_.fetch_add(1, std::memory_order_relaxed);
  Problems p;
  for (const auto& field : config_fields()) p.check_rule(c, field);  // config_fields.h's rules

  // The rules between fields.
  if (c.eval_stride > c.eval_seq_len)
    p.add(fmt::format("EVAL_STRIDE={} exceeds EVAL_SEQ_LEN={}", c.eval_stride, c.eval_seq_len));

  // Seed attention variants.
  {  // SMAT_ABLATION: a comma-separated list; each item must find the part it ablates
    std::vector<std::string> items;
    for (size_t start = 0;;) {
      const size_t comma = c.smat_ablation.find(',', start);
      items.push_back(c.smat_ablation.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    const bool has_semantics = c.smat_use_s || (c.smat_use_g && c.smat_gonly_centrality == "keep");
    const bool g_mean = std::find(items.begin(), items.end(), "g_mean") != items.end();
    const bool g_one = std::find(items.begin(), items.end(), "g_one") != items.end();
    for (const auto& item : items) {
      static constexpr std::string_view kAblations[] = {"none", "lambda0", "no_s", "random_s", "g_mean", "g_one"};
      if (std::find(std::begin(kAblations), std::end(kAblations), item) == std::end(kAblations)) {
        p.add(fmt::format("SMAT_ABLATION item {} must be one of {}", json_quoted(item), fmt::join(kAblations, ", ")));
        continue;
      }
      if (item == "none") {
        if (items.size() > 1) p.add("SMAT_ABLATION: none cannot be combined with other ablations");
        continue;
      }
      const bool ok = item == "lambda0" ? c.smat_use_s != 0
                      : item == "g_mean" || item == "g_one" ? c.smat_use_g != 0
                                                            : has_semantics;
      if (!ok)
        p.add(fmt::format("SMAT_ABLATION={} needs a SMAT model that has the part it ablates (SMAT_USE_S={}, "
                          "SMAT_USE_G={}, SMAT_GONLY_CENTRALITY={})",
                          item, c.smat_use_s, c.smat_use_g, json_quoted(c.smat_gonly_centrality)));
    }
    if (g_mean && g_one) p.add("SMAT_ABLATION: g_mean and g_one both replace the gate; choose one");
  }
  if (c.muon_polar_express && c.muon_backend_steps > 5)  // train/optim.cpp has 5 coefficient tuples
    p.add(fmt::format("MUON_BACKEND_STEPS={} exceeds the 5 Polar Express coefficient tuples (MUON_POLAR_EXPRESS=1); "
                      "the records never run more steps than tuples",
                      c.muon_backend_steps));
  // Sparse attention gate (R29), beside AttnOutGate and gated attention: one output gate at a time.
  if (c.sparse_attn_gate_enabled && (c.attn_out_gate_enabled || c.gated_attention))
    p.add(fmt::format("SPARSE_ATTN_GATE_ENABLED=1 replaces the output gate: set ATTN_OUT_GATE_ENABLED=0 and "
                      "GATED_ATTENTION=0 (they are {} and {})",
                      c.attn_out_gate_enabled, c.gated_attention));
  if (c.gated_attention && c.attn_out_gate_enabled)
    p.add("GATED_ATTENTION=1 and ATTN_OUT_GATE_ENABLED=1 are exclusive output gates: set ATTN_OUT_GATE_ENABLED=0");
  if (c.bigram_hash) {
    p.positive(c, &Config::bigram_dim);
    if (c.bigram_buckets < 2) p.add(fmt::format("BIGRAM_BUCKETS={} must be at least 2", c.bigram_buckets));
  }

  // MoA.
  {  // MOA_BRANCHES: known, distinct, non-empty, and mha among them (it uses the attention banks)
    std::vector<std::string> items;
    for (size_t start = 0;;) {
      const size_t comma = c.moa_branches.find(',', start);
      items.push_back(c.moa_branches.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    static constexpr std::string_view kBranches[] = {"conv", "mha", "mqa", "chan"};
    for (size_t j = 0; j < items.size(); ++j) {
      if (std::find(std::begin(kBranches), std::end(kBranches), items[j]) == std::end(kBranches))
        p.add(fmt::format("MOA_BRANCHES item {} must be one of {}", json_quoted(items[j]), fmt::join(kBranches, ", ")));
      else if (std::find(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(j), items[j]) != items.begin() + static_cast<std::ptrdiff_t>(j))
        p.add(fmt::format("MOA_BRANCHES lists {} twice", items[j]));
    }
    if (std::find(items.begin(), items.end(), "mha") == items.end())
      p.add(fmt::format("MOA_BRANCHES={} must include mha (the metric MHA branch uses the attention banks)",
                        json_quoted(c.moa_branches)));
  }
  if (c.moa_enabled && (c.smat_use_s || c.smat_use_g))
    p.add("MOA_ENABLED=1 replaces the attention that SMAT modifies: set SMAT_USE_S=0 and SMAT_USE_G=0");
  if (!c.moa_enabled && c.moa_ball) p.add("MOA_BALL=1 needs MOA_ENABLED=1");
  if (!c.moa_enabled && c.moa_ti_weight > 0) p.add(fmt::format("MOA_TI_WEIGHT={} needs MOA_ENABLED=1", c.moa_ti_weight));

  // Shards store tokens as uint16.
  if (c.vocab_size > 65536) p.add(fmt::format("VOCAB_SIZE={} exceeds 65536 (tokens are stored as uint16)", c.vocab_size));
  if (c.bos_token_id >= c.vocab_size && c.vocab_size > 0)
    p.add(fmt::format("BOS_TOKEN_ID={} must be below VOCAB_SIZE={}", c.bos_token_id, c.vocab_size));

  if (c.num_heads > 0 && c.model_dim > 0) {
    if (c.model_dim % c.num_heads != 0)
      p.add(fmt::format("MODEL_DIM={} is not divisible by NUM_HEADS={}", c.model_dim, c.num_heads));
    else if (c.rope_dims > 0 && (c.rope_dims % 2 != 0 || c.rope_dims > c.model_dim / c.num_heads))
      p.add(fmt::format("ROPE_DIMS={} must be even and at most the head dim MODEL_DIM/NUM_HEADS={}", c.rope_dims,
                        c.model_dim / c.num_heads));
  }
  if (c.num_heads > 0 && c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads != 0)
    p.add(fmt::format("NUM_HEADS={} is not divisible by NUM_KV_HEADS={}", c.num_heads, c.num_kv_heads));
  if (c.gate_width > c.model_dim)
    p.add(fmt::format("GATE_WIDTH={} exceeds MODEL_DIM={}", c.gate_width, c.model_dim));
  if (c.num_loops > 0 && !(0 <= c.loop_start && c.loop_start <= c.loop_end && c.loop_end < c.num_layers))
    p.add(fmt::format("with NUM_LOOPS={}, 0 <= LOOP_START={} <= LOOP_END={} < NUM_LAYERS={} must hold", c.num_loops,
                      c.loop_start, c.loop_end, c.num_layers));
  p.throw_if_any();
}

// ---- renderings -------------------------------------------------------------------------------

json to_json(const Config& config) {
  json j = json::object();
  for (const auto& field : config_fields())
    std::visit([&](auto member) { j[field.name] = config.*member; }, field.member);
  return j;
}

Config config_from_json(const json& j) {
  Config config;
  apply_json_object(config, j, "config JSON");
  return config;
}

std::string describe(const Config& config) {
  size_t width = 0;
  for (const auto& field : config_fields()) width = std::max(width, field.name.size());
  const json values = to_json(config);
  std::string text;
  for (const auto& field : config_fields())
    text += fmt::format("{:<{}} = {}\n", field.name, width, values.at(field.name).dump());
  return text;
}

// ---- stages -----------------------------------------------------------------------------------

const std::vector<std::string>& config_stages() {
  static const std::vector<std::string> stages = {"data", "model", "train", "quant", "eval"};
  return stages;
}

const std::vector<std::string>& field_stages(const std::string& name) {
  if (const ConfigField* field = find_field(name)) return field->stages;
  fail("{} is not a setting", name);
}

std::vector<std::string> stage_fields(const std::string& stage) {
  const auto& stages = config_stages();
  if (std::find(stages.begin(), stages.end(), stage) == stages.end())
    fail("unknown stage {} (stages: {})", json_quoted(stage), fmt::join(stages, ", "));
  std::vector<std::string> names;
  for (const auto& field : config_fields())
    if (std::find(field.stages.begin(), field.stages.end(), stage) != field.stages.end()) names.push_back(field.name);
  return names;
}

int64_t validate_calls() { return validate_calls_.load(std::memory_order_relaxed); }

}  // namespace golf
