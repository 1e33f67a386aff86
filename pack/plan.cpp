#include "pack/plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>

#include "core/error.h"
#include "artifact/code_size.h"
#include "pack/plan_calibration.h"

namespace golf::pack {

namespace {

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  return n;
}

int64_t padded(int64_t n) { return (n + 7) / 8 * 8; }

const std::vector<int64_t>& need_shape(const ShapeMap& shapes, const std::string& name) {
  const auto it = shapes.find(name);
  if (it == shapes.end()) fail("model parameters lack {}", name);
  return it->second;
}

// The per-layer tensors of the banks, then every other parameter, as artifact::unbank names them.
ShapeMap unbanked_shapes(const ShapeMap& shapes, const Config& cfg) {
  ShapeMap out;
  for (const auto& [name, shape] : shapes)
    if (name.find("_bank") == std::string::npos) out[name] = shape;
  for (const artifact::BankSlot& slot : artifact::bank_slots()) {
    const auto& bank = need_shape(shapes, slot.bank);
    if (bank.size() != 3) fail("{} has {} dims, expected 3", slot.bank, bank.size());
    for (int64_t i = 0; i < cfg.num_layers; ++i) out[artifact::layer_tensor_name(i, slot.name)] = {bank[1], bank[2]};
  }
  return out;
}

PlannedTensor grouped(std::string name, int64_t rows, int64_t cols, int bits, int64_t group) {
  PlannedTensor t;
  t.name = std::move(name);
  t.group = "lqer factors";
  t.shape = {rows, cols};
  t.kind = artifact::Tensor::Kind::Grouped;
  t.bits = bits;
  t.group_size = group;
  t.codes = rows * cols;
  t.scales = t.codes / group;
  return t;
}

// The codes of an embedding tensor whose rows are rare in the planned training (plan.h's
// TokenCoverage): only the tied embedding (group "embedding", one row per token) splits.
struct CoverageSplit {
  int64_t rare_codes = 0;
  int64_t mid_codes = 0;  // rows seen seen_count … often_count − 1 times
};
CoverageSplit coverage_split(const TokenCoverage& c, const PlannedTensor& t) {
  if (!c.measured || t.group != "embedding" || t.shape.empty() || t.shape[0] != c.rows) return {};
  return {(c.rows - c.rows_seen) * (t.codes / c.rows), (c.rows_seen - c.rows_seen_often) * (t.codes / c.rows)};
}

}  // namespace

double rounded_gaussian_bits(double sigma, int qmax) {
  if (!(sigma > 0) || qmax < 1) fail("rounded_gaussian_bits: sigma {} and qmax {} must be positive", sigma, qmax);
  // P(round(X) = q) = Φ((q + ½)/σ) − Φ((q − ½)/σ); the clipped ends take the tails.
  const auto cdf = [&](double x) { return 0.5 * std::erfc(-x / (sigma * std::sqrt(2.0))); };
  double bits = 0;
  for (int q = -qmax; q <= qmax; ++q) {
    const double lo = q == -qmax ? 0.0 : cdf(q - 0.5), hi = q == qmax ? 1.0 : cdf(q + 0.5);
    const double p = hi - lo;
    if (p > 0) bits -= p * std::log2(p);
  }
  return bits;
}

double SizeModel::code_bits_offset(const std::string& group) const {
  if (group == "embedding") return embedding_offset;
  if (group == "attention") return attention_offset;
  if (group == "mlp") return mlp_offset;
  return other_offset;
}

double SizeModel::rare_offset(int64_t steps, int64_t dim) const {
  const double clamped = static_cast<double>(std::max<int64_t>({steps, rare_steps_lo, 1}));
  const double steps_term = rare_steps_power == 0 ? std::log(clamped) : std::pow(clamped, rare_steps_power);
  const int64_t dims_lo = std::max<int64_t>(rare_dims_lo, 1);
  const double ln_dim = std::log(static_cast<double>(std::clamp<int64_t>(dim, dims_lo, std::max(rare_dims_hi, dims_lo))));
  return std::min(embedding_offset,
                  embedding_rare_offset + embedding_rare_slope * steps_term + embedding_rare_dim_slope * ln_dim);
}

bool is_fp16_matrix(const std::string& name, const std::vector<int64_t>& shape) {
  return shape.size() == 2 && std::min(shape[0], shape[1]) >= 16 && name.ends_with(".weight");
}

double long_training_bits_per_code(const std::string& compressor) {
  for (const LongTrainingTerm& t : kLongTrainingTerms)
    if (compressor == t.compressor) return t.bits_per_code;
  return 0;
}

std::string long_training_source(const std::string& compressor) {
  for (const LongTrainingTerm& t : kLongTrainingTerms)
    if (compressor == t.compressor) return t.source;
  return "";
}

double long_training_offset(const std::string& compressor, int64_t steps, int64_t calibrated_steps) {
  const double full = long_training_bits_per_code(compressor);
  if (steps <= calibrated_steps) return 0;
  if (steps >= kLongTrainingSteps) return full;
  return full * std::log(static_cast<double>(steps) / static_cast<double>(calibrated_steps)) /
         std::log(static_cast<double>(kLongTrainingSteps) / static_cast<double>(calibrated_steps));
}

const SizeModel& size_model(const std::string& compressor) {
  for (const SizeModel& m : kCalibratedSizeModels)
    if (compressor == m.compressor) return m;
  fail("COMPRESSOR={} has no calibrated size model (calibrated: {}); run scripts/bench/plan_calibrate.py", compressor,
       fmt::join(calibrated_compressors(), ", "));
}

std::vector<std::string> calibrated_compressors() {
  std::vector<std::string> names;
  for (const SizeModel& m : kCalibratedSizeModels) names.emplace_back(m.compressor);
  return names;
}

Plan layout(const ShapeMap& shapes, const Config& cfg, const std::vector<std::string>& lqer_targets) {
  Plan plan;
  plan.compressor = cfg.compressor;
  plan.limit = cfg.artifact_budget;
  std::vector<PlannedTensor> gptq;
  for (const auto& [name, shape] : unbanked_shapes(shapes, cfg)) {
    const artifact::StorageRule rule = artifact::storage_rule(name, shape, cfg);
    PlannedTensor t;
    t.name = name;
    t.shape = shape;
    const int64_t n = numel_of(shape);
    if (rule.kind == artifact::StorageRule::Kind::Float16) {
      t.group = "fp16 passthrough";
      t.kind = artifact::Tensor::Kind::Float16;
      t.values = n;
    } else {
      t.group = rule.kind == artifact::StorageRule::Kind::GateInt8 ? "gate" : artifact::group_of(name);
      t.kind = artifact::Tensor::Kind::Quantized;
      t.bits = rule.bits;
      t.clip_sigmas = rule.clip_sigmas;
      t.codes = n;
      t.scales = shape.at(0);  // one per row
    }
    plan.params += n;
    if (rule.kind == artifact::StorageRule::Kind::Gptq) gptq.push_back(t);
    plan.tensors.push_back(std::move(t));
  }
  if (cfg.lqer_enabled) {
    if (lqer_targets.empty()) {
      std::stable_sort(gptq.begin(), gptq.end(),
                       [](const PlannedTensor& a, const PlannedTensor& b) { return a.codes > b.codes; });
      gptq.resize(std::min<size_t>(gptq.size(), static_cast<size_t>(std::max<int64_t>(cfg.lqer_top_k, 0))));
    } else {
      std::vector<PlannedTensor> chosen;
      for (const std::string& name : lqer_targets) {
        const auto it = std::find_if(gptq.begin(), gptq.end(), [&](const PlannedTensor& t) { return t.name == name; });
        if (it == gptq.end()) fail("LQER target {} is not a GPTQ matrix of this configuration", name);
        chosen.push_back(*it);
      }
      gptq = chosen;
    }
    const int64_t r = cfg.lqer_rank;
    for (const PlannedTensor& m : gptq) {
      const int64_t rows = m.shape[0], cols = m.codes / rows;
      if (r > std::min(rows, cols) || r < 1)
        fail("LQER_RANK={} exceeds min(rows, cols) = {} of {} ({}x{}); lower LQER_RANK or set LQER_ENABLED=0", r,
             std::min(rows, cols), m.name, rows, cols);
      if (cfg.lqer_asym_enabled && (r * cols) % cfg.lqer_asym_group == 0) {  // quant/lqer.h's asymmetric form
        plan.tensors.push_back(grouped(m.name + ".lqA", rows, r, 2, rows * r));
        plan.tensors.push_back(grouped(m.name + ".lqB", r, cols, 4, cfg.lqer_asym_group));
      } else {
        const int bits = static_cast<int>(cfg.lqer_factor_bits);
        plan.tensors.push_back(grouped(m.name + ".lqA", rows, r, bits, r));
        plan.tensors.push_back(grouped(m.name + ".lqB", r, cols, bits, cols));
      }
    }
  }
  std::sort(plan.tensors.begin(), plan.tensors.end(),
            [](const PlannedTensor& a, const PlannedTensor& b) { return a.name < b.name; });

  // The payload, as artifact/artifact.h lays it out.
  int64_t table = 4 + static_cast<int64_t>(artifact::model_config_json(cfg).size()) + 4;
  int64_t codes = 0, scales = 0, values = 0;
  for (const PlannedTensor& t : plan.tensors) {
    table += 2 + static_cast<int64_t>(t.name.size()) + 3 + 4 * static_cast<int64_t>(t.shape.size()) +
             (t.kind == artifact::Tensor::Kind::Grouped ? 4 : 0);
    codes += t.codes;
    scales += t.scales;
    values += t.values;
  }
  const int64_t q_end = padded(table) + codes, s_end = padded(q_end) + 2 * scales;
  plan.payload_bytes = padded(s_end) + 2 * values;
  plan.table_raw_bytes = plan.payload_bytes - codes - 2 * scales - 2 * values;
  return plan;
}

void predict(Plan& plan, const SizeModel& m, int64_t counted_code_bytes) {
  plan.gptq_code_bytes = plan.gate_code_bytes = plan.lqer_code_bytes = plan.scale_bytes = plan.value_bytes = 0;
  plan.long_training_bits = long_training_offset(m.compressor, plan.coverage.steps, m.rare_steps_hi);
  plan.long_training_source = long_training_source(m.compressor);
  for (PlannedTensor& t : plan.tensors) {
    double code_bytes = 0;
    if (t.kind == artifact::Tensor::Kind::Grouped) {
      code_bytes = static_cast<double>(t.codes) * t.bits / 8 * m.lqer_ratio;
      plan.lqer_code_bytes += code_bytes;
    } else if (t.group == "gate") {
      code_bytes = static_cast<double>(t.codes);
      plan.gate_code_bytes += code_bytes;
    } else if (t.kind == artifact::Tensor::Kind::Quantized) {
      const int qmax = (1 << (t.bits - 1)) - 1;
      const double h = t.clip_sigmas > 0 ? rounded_gaussian_bits(qmax / t.clip_sigmas, qmax) : 0;
      const auto bytes_at = [&](double codes, double offset) {  // no SDClip: no model, the raw width
        return codes * std::clamp(t.clip_sigmas > 0 ? h + offset : t.bits, 0.0, 8.0) / 8;
      };
      const CoverageSplit split = coverage_split(plan.coverage, t);
      const double trained = plan.long_training_bits;
      code_bytes = bytes_at(static_cast<double>(t.codes - split.rare_codes - split.mid_codes),
                            m.code_bits_offset(t.group) + trained) +
                   bytes_at(static_cast<double>(split.mid_codes), m.mid_offset() + trained) +
                   bytes_at(static_cast<double>(split.rare_codes),
                            m.rare_offset(plan.coverage.steps, t.codes / std::max<int64_t>(t.shape[0], 1)));
      plan.gptq_code_bytes += code_bytes;
    }
    const double scale_bytes = static_cast<double>(t.scales) * m.scale_bytes;
    const double value_bytes =
        static_cast<double>(t.values) * (is_fp16_matrix(t.name, t.shape) ? m.matrix_value_bytes : m.value_bytes);
    plan.scale_bytes += scale_bytes;
    plan.value_bytes += value_bytes;
    t.bytes = code_bytes + scale_bytes + value_bytes;
  }
  plan.table_bytes = static_cast<double>(plan.table_raw_bytes) * m.table_ratio;
  plan.artifact_bytes = plan.header_bytes + std::llround(plan.gptq_code_bytes + plan.gate_code_bytes +
                                                         plan.lqer_code_bytes + plan.scale_bytes + plan.value_bytes +
                                                         plan.table_bytes);
  plan.code_bytes = counted_code_bytes;
}

Plan plan_config(const Config& cfg, int64_t counted_code_bytes) {
  const SizeModel& m = size_model(cfg.compressor);  // first: an uncalibrated compressor fails fast
  Plan plan = layout(model_shapes(cfg), cfg);
  plan.coverage = token_coverage(cfg, kSeenTokenCount, kSeenOftenCount);
  predict(plan, m, counted_code_bytes);
  return plan;
}

std::string plan_table(const Plan& p) {
  struct Row {
    int64_t tensors = 0, params = 0, raw = 0;
    double bytes = 0;
  };
  const std::vector<std::string> order = {"embedding", "attention", "mlp",  "other quantized",
                                          "gate",      "lqer factors", "fp16 passthrough"};
  std::map<std::string, Row> rows;
  for (const PlannedTensor& t : p.tensors) {
    Row& r = rows[t.group];
    ++r.tensors;
    r.params += t.codes + t.values;
    r.raw += t.codes + 2 * t.scales + 2 * t.values;
    r.bytes += t.bytes;
  }
  std::string out = fmt::format("plan for COMPRESSOR={} (predicted bytes; raw = codes + fp16 scales + fp16 values)\n",
                                p.compressor);
  out += fmt::format("{:<18} {:>7} {:>12} {:>12} {:>12} {:>9}\n", "group", "tensors", "params", "raw", "predicted",
                     "bits/wt");
  for (const std::string& g : order) {
    const auto it = rows.find(g);
    if (it == rows.end()) continue;
    const Row& r = it->second;
    out += fmt::format("{:<18} {:>7} {:>12} {:>12} {:>12} {:>9.3f}\n", g, r.tensors, with_commas(r.params),
                       with_commas(r.raw), with_commas(std::llround(r.bytes)), r.params ? r.bytes * 8 / r.params : 0.0);
  }
  out += fmt::format("parts: GPTQ codes {}, scales {}, fp16 values {}, LQER codes {}, gate codes {}, table {} "
                     "(raw {}), header {}\n",
                     with_commas(std::llround(p.gptq_code_bytes)), with_commas(std::llround(p.scale_bytes)),
                     with_commas(std::llround(p.value_bytes)), with_commas(std::llround(p.lqer_code_bytes)),
                     with_commas(std::llround(p.gate_code_bytes)), with_commas(std::llround(p.table_bytes)),
                     with_commas(p.table_raw_bytes), p.header_bytes);
  if (!p.coverage.note.empty()) out += "tokens: " + p.coverage.note + "\n";
  if (p.long_training_bits != 0)
    out += fmt::format("long training: ITERATIONS={} plans every GPTQ code but the rare rows {:+.4f} bits ({}; "
                       "full from {} steps: pack/plan.h)\n",
                       p.coverage.steps, p.long_training_bits, p.long_training_source,
                       kLongTrainingSteps);
  out += fmt::format("raw payload {} bytes, {} parameters\n", with_commas(p.payload_bytes), with_commas(p.params));
  out += fmt::format("predicted artifact {} + counted code {} = {} bytes of {} ({}: {} bytes {})\n",
                     with_commas(p.artifact_bytes), with_commas(p.code_bytes), with_commas(p.total()),
                     with_commas(p.limit), p.fits() ? "fits" : "OVER",
                     with_commas(std::llabs(p.limit - p.total())), p.fits() ? "to spare" : "too many");
  return out;
}

nlohmann::json plan_json(const Plan& p) {
  nlohmann::json j = {{"compressor", p.compressor},
                      {"params", p.params},
                      {"payload_bytes", p.payload_bytes},
                      {"table_raw_bytes", p.table_raw_bytes},
                      {"predicted",
                       {{"gptq_codes", p.gptq_code_bytes},
                        {"gate_codes", p.gate_code_bytes},
                        {"lqer_codes", p.lqer_code_bytes},
                        {"scales", p.scale_bytes},
                        {"fp16_values", p.value_bytes},
                        {"table", p.table_bytes},
                        {"header", p.header_bytes}}},
                      {"long_training_bits_per_code", p.long_training_bits},
                      {"bytes_model", p.artifact_bytes},
                      {"bytes_code", p.code_bytes},
                      {"bytes_total", p.total()},
                      {"limit", p.limit},
                      {"fits", p.fits()},
                      {"coverage",
                       {{"measured", p.coverage.measured},
                        {"rows", p.coverage.rows},
                        {"rows_seen", p.coverage.rows_seen},
                        {"seen_count", p.coverage.seen_count},
                        {"rows_seen_often", p.coverage.rows_seen_often},
                        {"often_count", p.coverage.often_count},
                        {"planned_tokens", p.coverage.planned_tokens},
                        {"tokens_read", p.coverage.tokens_read},
                        {"seconds", p.coverage.seconds},
                        {"note", p.coverage.note}}}};
  j["tensors"] = nlohmann::json::array();
  for (const PlannedTensor& t : p.tensors)
    j["tensors"].push_back({{"name", t.name}, {"group", t.group}, {"shape", t.shape}, {"bits", t.bits},
                            {"clip_sigmas", t.clip_sigmas}, {"codes", t.codes}, {"scales", t.scales},
                            {"values", t.values}, {"bytes", t.bytes}});
  return j;
}

FitResult fit_knob(const Config& base, const std::string& knob, int64_t margin, int64_t counted_code_bytes) {
  FitResult r;
  r.knob = knob;
  // candidate i → the config, for i in [lo, hi]
  int64_t lo = 1, hi = 0;
  std::function<Config(int64_t)> at;
  if (knob == "dim") {
    r.key = "MODEL_DIM";
    lo = 1, hi = 256;  // head dims 2 … 512
    at = [&](int64_t i) {
      Config c = base;
      c.model_dim = base.num_heads * 2 * i;
      return c;
    };
  } else if (knob == "mlp") {
    r.key = "MLP_MULT";
    lo = 1, hi = 16 * 8;  // 0.125 … 16
    at = [&](int64_t i) {
      Config c = base;
      c.mlp_mult = static_cast<double>(i) / 8;
      return c;
    };
  } else if (knob == "layers") {
    r.key = "NUM_LAYERS";
    lo = 1, hi = 64;
    at = [&](int64_t i) {
      Config c = base;
      c.num_layers = i;
      return c;
    };
  } else {
    fail("--fit {}: the knob must be dim, mlp or layers", knob);
  }
  const SizeModel& model = size_model(base.compressor);
  const TokenCoverage coverage = token_coverage(base, kSeenTokenCount, kSeenOftenCount);  // no knob moves it
  const auto valid = [&](int64_t i) {
    try {
      validate(at(i));
      return true;
    } catch (const Error&) {
      return false;
    }
  };
  std::map<int64_t, std::optional<Plan>> seen;
  const auto fits = [&](int64_t i) -> bool {
    if (!seen.count(i)) {
      ++r.evaluated;
      const Config c = at(i);
      std::optional<Plan> p;
      if (valid(i)) {
        p = layout(model_shapes(c), c);
        p->coverage = coverage;
        predict(*p, model, counted_code_bytes);
        if (!p->fits(margin)) p.reset();
      }
      seen[i] = p;
    }
    return seen[i].has_value();
  };
  // The smallest valid candidate must fit; then gallop up (lo + 1, + 2, + 4, …) to the first
  // candidate that does not, so no model much larger than the answer is ever built, and bisect.
  while (lo < hi && !valid(lo)) ++lo;
  if (!fits(lo))
    fail("--fit {}: not even {}={} fits ARTIFACT_BUDGET {} - margin {} bytes", knob, r.key,
         knob == "mlp" ? fmt::format("{}", at(lo).mlp_mult)
                       : std::to_string(knob == "dim" ? at(lo).model_dim : at(lo).num_layers),
         with_commas(base.artifact_budget), with_commas(margin));
  for (int64_t step = 1; lo < hi; step *= 2) {
    const int64_t probe = std::min(hi, lo + step);
    if (!fits(probe)) {
      hi = probe - 1;
      break;
    }
    lo = probe;
  }
  while (lo < hi) {  // fits(lo), and everything above hi does not
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  const Config best = at(lo);
  r.plan = *seen.at(lo);
  r.value = knob == "dim" ? std::to_string(best.model_dim)
            : knob == "mlp" ? fmt::format("{}", best.mlp_mult)
                            : std::to_string(best.num_layers);
  return r;
}

std::vector<std::string> lqer_targets(const artifact::Artifact& artifact) {
  std::vector<std::string> out;
  for (const artifact::Tensor& t : artifact.tensors)
    if (t.name.ends_with(".lqA")) out.push_back(t.name.substr(0, t.name.size() - 4));
  std::sort(out.begin(), out.end());
  return out;
}

Measurement measure_artifact(const artifact::Artifact& artifact, const artifact::PackOptions& o, const Plan& plan, bool ablate) {
  // The plan must be this artifact's: same tensors, kinds, shapes and bits.
  std::vector<const artifact::Tensor*> order;
  for (const artifact::Tensor& t : artifact.tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const artifact::Tensor* a, const artifact::Tensor* b) { return a->name < b->name; });
  if (order.size() != plan.tensors.size())
    fail("the artifact holds {} tensors, the plan {}: not this configuration's artifact", order.size(),
         plan.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const artifact::Tensor& t = *order[i];
    const PlannedTensor& p = plan.tensors[i];
    if (t.name != p.name || t.kind != p.kind || t.shape != p.shape || t.bits != p.bits)
      fail("artifact tensor '{}' (kind {}, {} bits) differs from the plan's '{}' (kind {}, {} bits)", t.name,
           static_cast<int>(t.kind), t.bits, p.name, static_cast<int>(p.kind), p.bits);
  }
  const auto payload = artifact::encode_payload(artifact);
  if (static_cast<int64_t>(payload.size()) != plan.payload_bytes)
    fail("the artifact's raw payload is {} bytes, the plan's {}", payload.size(), plan.payload_bytes);

  Measurement m;
  m.file_bytes = static_cast<int64_t>(artifact::serialize(artifact, o).size());
  if (!ablate) return m;
  artifact::Artifact a = artifact;
  const auto bytes = [&] { return static_cast<double>(artifact::serialize(a, o).size()); };
  const std::map<std::string, const PlannedTensor*> by_name = [&] {
    std::map<std::string, const PlannedTensor*> out;
    for (const PlannedTensor& p : plan.tensors) out[p.name] = &p;
    return out;
  }();
  // The GPTQ codes group by group (QuantGate's few int8 codes stay: the fit counts them at 1 byte).
  double before = static_cast<double>(m.file_bytes);
  for (const std::string group : {"embedding", "attention", "mlp", "other quantized"}) {
    for (artifact::Tensor& t : a.tensors) {
      if (t.kind == artifact::Tensor::Kind::Quantized && by_name.at(t.name)->group == group) std::fill(t.q.begin(), t.q.end(), 0);
    }
    const double after = bytes();
    m.gptq_code_bytes_by_group[group] = before - after;
    before = after;
  }
  const double no_gptq = before;
  for (artifact::Tensor& t : a.tensors)
    if (t.kind == artifact::Tensor::Kind::Grouped) std::fill(t.q.begin(), t.q.end(), 0);
  const double no_lqer = bytes();
  for (artifact::Tensor& t : a.tensors) std::fill(t.scales.begin(), t.scales.end(), uint16_t{0x3C00});  // fp16 1.0
  const double no_scales = bytes();
  for (artifact::Tensor& t : a.tensors) std::fill(t.values.begin(), t.values.end(), uint16_t{0});
  const double no_values = bytes();
  m.gptq_code_bytes = static_cast<double>(m.file_bytes) - no_gptq;
  m.lqer_code_bytes = no_gptq - no_lqer;
  m.scale_bytes = no_lqer - no_scales;
  m.value_bytes = no_scales - no_values;
  m.table_bytes = no_values - static_cast<double>(artifact::kHeaderBytes);
  return m;
}

}  // namespace golf::pack

namespace golf::pack {

std::string preflight(const Config& cfg, const std::filesystem::path& repo_root, bool allow_over_budget) {
  std::string note;
  Config planned = cfg;
  const auto calibrated = calibrated_compressors();
  if (std::find(calibrated.begin(), calibrated.end(), cfg.compressor) == calibrated.end()) {
    note = fmt::format(" (COMPRESSOR={} is not calibrated: brotli's size model)", cfg.compressor);
    planned.compressor = "brotli";
  }
  // Without a source tree (a binary copied elsewhere) the code is not measured: the prediction then
  // covers the artifact only, and says so; golf-pack still enforces the real total.
  const std::filesystem::path manifest = repo_root / "artifact" / "code_manifest.txt";
  int64_t code = 0;
  if (std::filesystem::exists(manifest))
    code = artifact::counted_code(repo_root, manifest).compressed_bytes;
  else
    note += fmt::format(" (counted code not measured: no {}; set GOLF_SOURCE_DIR)", manifest.string());
  const Plan p = plan_config(planned, code);
  std::string out = fmt::format(
      "plan: predicted artifact {} bytes (GPTQ codes {}, scales {}, fp16 {}, LQER {}, table+header {}) + counted code "
      "{} = {} of ARTIFACT_BUDGET {}{}\n",
      with_commas(p.artifact_bytes), with_commas(std::llround(p.gptq_code_bytes)),
      with_commas(std::llround(p.scale_bytes)), with_commas(std::llround(p.value_bytes)),
      with_commas(std::llround(p.lqer_code_bytes)),
      with_commas(std::llround(p.table_bytes + p.gate_code_bytes) + p.header_bytes), with_commas(p.code_bytes),
      with_commas(p.total()), with_commas(p.limit), note);
  out += "plan: tokens: " + p.coverage.note + "\n";
  if (p.fits()) {
    out += fmt::format("plan: fits with {} bytes to spare (golf-pack plan prints the table)\n",
                       with_commas(p.limit - p.total()));
  } else if (allow_over_budget) {
    out += fmt::format("plan: OVER the budget by {} bytes; training anyway (--allow-over-budget)\n",
                       with_commas(p.total() - p.limit));
  } else {
    fail("the plan predicts {} bytes, over ARTIFACT_BUDGET={} by {}{}: shrink the model (golf-pack plan --fit dim "
         "finds a size that fits) or pass --allow-over-budget",
         with_commas(p.total()), with_commas(p.limit), with_commas(p.total() - p.limit), note);
  }
  return out;
}

}  // namespace golf::pack
