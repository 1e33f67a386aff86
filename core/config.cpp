// core/config.cpp — the field table, the four sources (defaults, JSON files, environment, --set),
// strict value parsing, the invariants between fields, and the JSON / text renderings.
#include "core/config.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
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

// The order is the struct's; names and help lines are the header's comments. tests/core/config_test.cpp
// checks both against core/config.h and that every byte of Config is covered by an entry.
std::vector<ConfigField> build_field_table() {
  return {
      {"RUN_ID", &Config::run_id, "run directory name under OUTPUT_DIR (\"\" → time-based)"},
      {"OUTPUT_DIR", &Config::output_dir, ""},
      {"SEED", &Config::seed, ""},
      {"DATA_PATH", &Config::data_path, "shard dir"},
      {"TOKENIZER_PATH", &Config::tokenizer_path, ""},
      {"DEVICE", &Config::device, "auto | cpu | cuda"},
      {"TOKENIZER_SHA256", &Config::tokenizer_sha256,
       "the tokenizer's identity, set by golf-train from TOKENIZER_PATH (artifact: golf-eval checks it)"},
      {"TOKENIZER_KIND", &Config::tokenizer_kind, "plain | caseops, set by golf-train with TOKENIZER_SHA256"},

      {"VOCAB_SIZE", &Config::vocab_size, ""},
      {"NUM_LAYERS", &Config::num_layers, ""},
      {"MODEL_DIM", &Config::model_dim, ""},
      {"NUM_HEADS", &Config::num_heads, ""},
      {"NUM_KV_HEADS", &Config::num_kv_heads, ""},
      {"MLP_MULT", &Config::mlp_mult, ""},
      {"TIED_EMBED_INIT_STD", &Config::tied_embed_init_std, ""},
      {"ROPE_BASE", &Config::rope_base, ""},
      {"ROPE_DIMS", &Config::rope_dims, "rotated dims per head"},
      {"QK_GAIN_INIT", &Config::qk_gain_init, ""},
      {"LN_SCALE", &Config::ln_scale, "block inputs scaled by 1/sqrt(layer+1)"},
      {"XSA_LAST_N", &Config::xsa_last_n, "exclusive self-attention on the last N layers (≥ NUM_LAYERS: all)"},
      {"ATTN_OUT_GATE_ENABLED", &Config::attn_out_gate_enabled, "y_h *= 2σ(W u[:GATE_WIDTH])"},
      {"GATE_WIDTH", &Config::gate_width, "input width of the attention and smear gates"},
      {"SMEAR_GATE_ENABLED", &Config::smear_gate_enabled, ""},
      {"SMEAR_INPUT", &Config::smear_input, "normed (PR #1880) | raw (R29)"},
      {"BOS_TOKEN_ID", &Config::bos_token_id, "document start (smear mask, attention segments)"},
      {"SMEAR_BOS_MASK", &Config::smear_bos_mask, "0 lets SmearGate leak across BOS (the PR #1797 bug; tests only)"},
      {"SKIP_GATES_ENABLED", &Config::skip_gates_enabled, "sigmoid-gated U-Net skips"},
      {"PARALLEL_START_LAYER", &Config::parallel_start_layer, "first parallel layer; 0 → no parallel layers (records)"},
      {"PARALLEL_MODE", &Config::parallel_mode, "two_lane (records) | gptj (PR #1880) | none"},
      {"NUM_LOOPS", &Config::num_loops, "extra visits of layers LOOP_START..LOOP_END"},
      {"LOOP_START", &Config::loop_start, ""},
      {"LOOP_END", &Config::loop_end, ""},
      {"ENABLE_LOOPING_AT", &Config::enable_looping_at, "training fraction that switches recurrence on"},
      {"LOGIT_SOFTCAP", &Config::logit_softcap, ""},
      {"TRAIN_SEQ_LEN", &Config::train_seq_len, "longest attention segment / dense row length"},
      {"DOC_MASK", &Config::doc_mask, "1 attention stops at BOS; 0 dense rows (PR #1880)"},
      {"SPARSE_ATTN_GATE_ENABLED", &Config::sparse_attn_gate_enabled, "y_h *= σ(SCALE·(W u[:GATE_WIDTH])_h), 0.5 at init (R29)"},
      {"SPARSE_ATTN_GATE_INIT_STD", &Config::sparse_attn_gate_init_std, "W ~ N(0, std²) at init (0 → zeros)"},
      {"SPARSE_ATTN_GATE_SCALE", &Config::sparse_attn_gate_scale, "multiplies the gate logits"},

      {"SMAT_USE_S", &Config::smat_use_s, "SMAT semantic bias λ·cos(W_s h_i, W_s h_j) on the attention logits"},
      {"SMAT_USE_G", &Config::smat_use_g, "SMAT value gate G_j = σ(w_g·h_j + μ·c_j + β) on V"},
      {"SMAT_DIM", &Config::smat_dim, "width d_s of W_s (0 → head dim)"},
      {"SMAT_CENTRALITY", &Config::smat_centrality, "divisor n_j of c_j: seq (TRAIN_SEQ_LEN) | count (j+1 in its segment)"},
      {"SMAT_GONLY_CENTRALITY", &Config::smat_gonly_centrality, "without SMAT_USE_S: keep (W_s feeds c_j) | drop (no W_s, μ)"},
      {"SMAT_BETA_INIT", &Config::smat_beta_init, "gate bias β at init (σ(3) ≈ 0.953)"},
      {"SMAT_LAMBDA_RAW_INIT", &Config::smat_lambda_raw_init, "λ = softplus(λ_raw) at init (0 → ln 2)"},
      {"SMAT_ABLATION", &Config::smat_ablation, "eval-time override, comma-separated: none | lambda0 | no_s | random_s | g_mean | g_one"},
      {"VALUE_RESIDUAL", &Config::value_residual, "layers ≥ 1 use v ← a·v0 + b·v, (a, b) init (0.5, 0.5) (PR #413)"},
      {"GATED_ATTENTION", &Config::gated_attention, "y_h *= σ(W u + b) per head, W = 0, b = 4 (PR #413)"},
      {"BIGRAM_HASH", &Config::bigram_hash, "add s·P·E[hash(prev, cur)] to the token embedding"},
      {"BIGRAM_BUCKETS", &Config::bigram_buckets, "BigramHash table rows (the last is reserved for t = 0 and BOS)"},
      {"BIGRAM_DIM", &Config::bigram_dim, "BigramHash table width (projected to MODEL_DIM unless equal)"},
      {"MOA_ENABLED", &Config::moa_enabled, "each block's attention becomes a router-mixed set of branches"},
      {"MOA_BRANCHES", &Config::moa_branches, "comma-separated subset of conv | mha | mqa | chan (mha required)"},
      {"MOA_METRIC", &Config::moa_metric, "metric-head logits −α·D: l2 | cosine | diag_mahalanobis"},
      {"MOA_ROUTER_HIDDEN", &Config::moa_router_hidden, "width of the token-wise router r = GELU(W u + b)"},
      {"MOA_ALPHA_INIT", &Config::moa_alpha_init, "metric scale α = softplus(α_raw) per head at init"},
      {"MOA_BIAS_GATE", &Config::moa_bias_gate, "per-branch scalar gate σ(w·r + c), c = 3 at init"},
      {"MOA_CONV_KERNEL", &Config::moa_conv_kernel, "causal depthwise conv width (resets at BOS)"},
      {"MOA_CHAN_MULT", &Config::moa_chan_mult, "channel-mix head hidden width, in MODEL_DIM"},
      {"MOA_BALL", &Config::moa_ball, "ball pruning: soft key mask −κ·softplus((‖k−o_h‖ − r_h)/τ)"},
      {"MOA_RADIUS_INIT", &Config::moa_radius_init, "ball radius r_h = softplus(ρ_h) at init"},
      {"MOA_BALL_KAPPA", &Config::moa_ball_kappa, "ball mask strength κ"},
      {"MOA_BALL_TAU", &Config::moa_ball_tau, "ball mask softness τ"},
      {"MOA_TI_WEIGHT", &Config::moa_ti_weight, "λ of the triangle-inequality penalty on metric keys (0 → off)"},
      {"MOA_TI_TRIPLES", &Config::moa_ti_triples, "key triples sampled per layer visit for the penalty"},
      {"HEAD_GATE_ENABLED", &Config::head_gate_enabled, "y_h *= γ_h, a learned scalar per layer and head (γ = 1 at init)"},

      {"ITERATIONS", &Config::iterations, "step budget (also the schedule when no wall clock)"},
      {"MAX_WALLCLOCK_SECONDS", &Config::max_wallclock_seconds, "0 → step-based schedule (ITERATIONS)"},
      {"GPTQ_RESERVE_SECONDS", &Config::gptq_reserve_seconds, "kept for Hessian collection"},
      {"WARMUP_STEPS", &Config::warmup_steps, "rolled-back warm-up steps per loop mode"},
      {"TRAIN_BATCH_TOKENS", &Config::train_batch_tokens, "global tokens per optimizer step"},
      {"GRAD_ACCUM_STEPS", &Config::grad_accum_steps, "0 → 8 / world size"},
      {"LOADER", &Config::loader, "packing (document packing) | coprime (coprime stride)"},
      {"VAL_BATCH_TOKENS", &Config::val_batch_tokens, ""},
      {"VAL_LOSS_EVERY", &Config::val_loss_every, "0 → only at the end"},
      {"VAL_MAX_TOKENS", &Config::val_max_tokens, "0 → the whole validation split"},
      {"TRAIN_LOG_EVERY", &Config::train_log_every, ""},
      {"CHECKPOINT_EVERY", &Config::checkpoint_every, "steps between checkpoints (0 → off)"},
      {"GPTQ_CALIBRATION_BATCHES", &Config::gptq_calibration_batches, ""},
      {"DIST_TIMEOUT_SECONDS", &Config::dist_timeout_seconds, "collective timeout before a rank gives up"},

      {"MATRIX_LR", &Config::matrix_lr, "Muon"},
      {"SCALAR_LR", &Config::scalar_lr, "AdamW, scalars and gates"},
      {"TIED_EMBED_LR", &Config::tied_embed_lr, "AdamW, embedding"},
      {"MUON_WD", &Config::muon_wd, ""},
      {"ADAM_WD", &Config::adam_wd, ""},
      {"EMBED_WD", &Config::embed_wd, ""},
      {"BETA1", &Config::beta1, ""},
      {"BETA2", &Config::beta2, ""},
      {"ADAM_EPS", &Config::adam_eps, ""},
      {"MUON_MOMENTUM", &Config::muon_momentum, ""},
      {"MUON_MOMENTUM_WARMUP_START", &Config::muon_momentum_warmup_start, ""},
      {"MUON_MOMENTUM_WARMUP_STEPS", &Config::muon_momentum_warmup_steps, ""},
      {"MUON_BACKEND_STEPS", &Config::muon_backend_steps, "Newton–Schulz iterations"},
      {"MUON_POLAR_EXPRESS", &Config::muon_polar_express, "1 → per-iteration Polar Express coefficients"},
      {"MUON_ROW_NORMALIZE", &Config::muon_row_normalize, "MuonEq-R"},
      {"GRAD_CLIP_NORM", &Config::grad_clip_norm, ""},
      {"EMA_DECAY", &Config::ema_decay, ""},
      {"WARMDOWN_FRAC", &Config::warmdown_frac, ""},
      {"MIN_LR", &Config::min_lr, "floor of the LR multiplier"},
      {"MATRIX_BITS", &Config::matrix_bits, "attention and MLP matrices"},
      {"EMBED_BITS", &Config::embed_bits, "the tied embedding"},
      {"ATTN_CLIP_SIGMAS", &Config::attn_clip_sigmas, "SDClip k for attention matrices"},
      {"MLP_CLIP_SIGMAS", &Config::mlp_clip_sigmas, "SDClip k for MLP matrices"},
      {"EMBED_CLIP_SIGMAS", &Config::embed_clip_sigmas, "SDClip k for the embedding"},
      {"MATRIX_CLIP_SIGMAS", &Config::matrix_clip_sigmas, "SDClip k for any other quantized matrix"},
      {"HESSIAN_CLIP_LAMBDA", &Config::hessian_clip_lambda, "Hessian-aware SDClip (0: plain SDClip)"},
      {"GPTQ_ENABLED", &Config::gptq_enabled, "0 rounds to nearest with the same scales"},
      {"PASSTHROUGH_MAX_NUMEL", &Config::passthrough_max_numel, "tensors this small are stored fp16"},
      {"SHUFFLE_STRIDE", &Config::shuffle_stride, "byte shuffle before Brotli"},
      {"ARTIFACT_BUDGET", &Config::artifact_budget, "bytes allowed for artifact + counted code"},
      {"GATED_ATTN_QUANT_GATE", &Config::gated_attn_quant_gate, "attention gate weights stored int8 per row (QuantGate, R0419)"},
      {"LQER_ENABLED", &Config::lqer_enabled, "low-rank correction of the quantization error (R0427L)"},
      {"LQER_RANK", &Config::lqer_rank, "rank r of E ≈ A·B"},
      {"LQER_TOP_K", &Config::lqer_top_k, "corrected tensors, largest ‖W − Ŵ‖_F first"},
      {"LQER_FACTOR_BITS", &Config::lqer_factor_bits, "bits of both factors in the symmetric per-row form"},
      {"LQER_ASYM_ENABLED", &Config::lqer_asym_enabled, "A int2 (one scale), B int4 per group of LQER_ASYM_GROUP"},
      {"LQER_ASYM_GROUP", &Config::lqer_asym_group, "B values per fp16 scale (asymmetric form)"},
      {"COMPRESSOR", &Config::compressor, "brotli | pergroup (records' R0427L scheme) | golf (golf's coder)"},
      {"EVAL_SEQ_LEN", &Config::eval_seq_len, "rows of plain eval and sliding-window length"},
      {"EVAL_STRIDE", &Config::eval_stride, "sliding window stride (scored tokens per window)"},
      {"EVAL_BATCH_SEQS", &Config::eval_batch_seqs, "windows per forward"},
      {"TTT_ENABLED", &Config::ttt_enabled, "score-first test-time training (golf-eval --ttt)"},
      {"TTT_LR", &Config::ttt_lr, "SGD learning rate, cosine-decayed over chunks"},
      {"TTT_MOMENTUM", &Config::ttt_momentum, "SGD momentum (persists across chunks)"},
      {"TTT_EPOCHS", &Config::ttt_epochs, "passes over each chunk after scoring it"},
      {"TTT_CHUNK_TOKENS", &Config::ttt_chunk_tokens, "predictions per chunk"},
      {"TTT_GRAD_CLIP", &Config::ttt_grad_clip, "gradient-norm clip"},
      {"TTT_FREEZE_BLOCKS", &Config::ttt_freeze_blocks, "first N blocks not trained"},
      {"EVAL_TIME_LIMIT", &Config::eval_time_limit, "seconds allowed on 8 GPUs (warning only)"},
      {"TTT_BATCH_SEQS", &Config::ttt_batch_seqs, "rows per rank per SGD step of global TTT (records: 32)"},
      {"TTT_MODE", &Config::ttt_mode, "sgd (global score-first SGD) | lora | phased"},
      {"TTT_LORA_RANK", &Config::ttt_lora_rank, "LoRA rank"},
      {"TTT_LORA_ALPHA", &Config::ttt_lora_alpha, "LoRA output scaled by alpha / rank"},
      {"TTT_LORA_LR", &Config::ttt_lora_lr, "AdamW learning rate of the LoRA"},
      {"TTT_CHUNK_SIZE", &Config::ttt_chunk_size, "predictions per LoRA chunk (score, then one step)"},
      {"TTT_EVAL_SEQ_LEN", &Config::ttt_eval_seq_len, "LoRA TTT context (last predictions of the document)"},
      {"TTT_BATCH_SIZE", &Config::ttt_batch_size, "documents per LoRA batch"},
      {"TTT_GRAD_STEPS", &Config::ttt_grad_steps, "AdamW steps per chunk"},
      {"TTT_WEIGHT_DECAY", &Config::ttt_weight_decay, "AdamW decoupled weight decay"},
      {"TTT_BETA1", &Config::ttt_beta1, "AdamW beta1"},
      {"TTT_BETA2", &Config::ttt_beta2, "AdamW beta2"},
      {"TTT_K_LORA", &Config::ttt_k_lora, "LoRA on K (Q, V and the head always)"},
      {"TTT_O_LORA", &Config::ttt_o_lora, "LoRA on the attention output projection"},
      {"TTT_MLP_LORA", &Config::ttt_mlp_lora, "dim->dim LoRA beside each MLP"},
      {"TTT_WARM_START_A", &Config::ttt_warm_start_a, "keep A across per-batch resets (not document-independent)"},
      {"PHASED_TTT_PREFIX_DOCS", &Config::phased_ttt_prefix_docs, "queue-order documents before the last phase"},
      {"PHASED_TTT_NUM_PHASES", &Config::phased_ttt_num_phases, "global SGD phases over the prefix"},
      {"GLOBAL_TTT_LR", &Config::global_ttt_lr, "phased TTT's global SGD learning rate (cosine over chunks)"},
      {"GLOBAL_TTT_MOMENTUM", &Config::global_ttt_momentum, "its SGD momentum"},
      {"GLOBAL_TTT_CHUNK_TOKENS", &Config::global_ttt_chunk_tokens, "tokens per global SGD chunk"},
      {"GLOBAL_TTT_EPOCHS", &Config::global_ttt_epochs, "passes over each chunk"},
  };
}

// Which stages read each field (core/config.h, "stages"), as groups of fields with the same
// stages, in field order. config_fields() order and this table are checked against each other by
// tests/core/config_test.cpp; a new field must be added here too.
struct StageGroup {
  std::vector<std::string> stages, fields;
};
std::vector<StageGroup> build_stage_table() {
  return {
      {{"train"}, {"RUN_ID", "OUTPUT_DIR"}},
      {{"train", "eval"}, {"SEED"}},  // golf-eval: LoRA TTT initialization
      {{"data", "train", "quant", "eval"}, {"DATA_PATH"}},  // golf-pack --val
      {{"data", "train", "eval"}, {"TOKENIZER_PATH"}},
      {{"train", "quant", "eval"}, {"DEVICE"}},
      {{"data", "model", "train"}, {"TOKENIZER_SHA256", "TOKENIZER_KIND"}},  // golf-eval checks them (pinned)
      // model: the architecture, stored in the artifact (pack/pack_model.cpp model_config_json)
      {{"model", "train"},
       {"VOCAB_SIZE", "NUM_LAYERS", "MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS", "MLP_MULT"}},
      {{"train"}, {"TIED_EMBED_INIT_STD"}},
      {{"model", "train"}, {"ROPE_BASE", "ROPE_DIMS", "QK_GAIN_INIT"}},
      {{"model", "train"},
       {"LN_SCALE", "XSA_LAST_N", "ATTN_OUT_GATE_ENABLED", "GATE_WIDTH", "SMEAR_GATE_ENABLED", "SMEAR_INPUT",
        "BOS_TOKEN_ID", "SMEAR_BOS_MASK", "SKIP_GATES_ENABLED", "PARALLEL_START_LAYER", "PARALLEL_MODE",
        "NUM_LOOPS", "LOOP_START", "LOOP_END"}},
      {{"train"}, {"ENABLE_LOOPING_AT"}},
      {{"model", "train"}, {"LOGIT_SOFTCAP", "TRAIN_SEQ_LEN", "DOC_MASK", "SPARSE_ATTN_GATE_ENABLED"}},
      {{"train"}, {"SPARSE_ATTN_GATE_INIT_STD"}},
      {{"model", "train"},
       {"SPARSE_ATTN_GATE_SCALE", "SMAT_USE_S", "SMAT_USE_G", "SMAT_DIM", "SMAT_CENTRALITY",
        "SMAT_GONLY_CENTRALITY"}},
      {{"train"}, {"SMAT_BETA_INIT", "SMAT_LAMBDA_RAW_INIT"}},
      {{"eval"}, {"SMAT_ABLATION"}},  // an eval-time override of the model, checked against the artifact's
      {{"model", "train"},
       {"VALUE_RESIDUAL", "GATED_ATTENTION", "BIGRAM_HASH", "BIGRAM_BUCKETS", "BIGRAM_DIM", "MOA_ENABLED",
        "MOA_BRANCHES", "MOA_METRIC", "MOA_ROUTER_HIDDEN"}},
      {{"train"}, {"MOA_ALPHA_INIT"}},
      {{"model", "train"}, {"MOA_BIAS_GATE", "MOA_CONV_KERNEL", "MOA_CHAN_MULT", "MOA_BALL"}},
      {{"train"}, {"MOA_RADIUS_INIT"}},
      {{"model", "train"}, {"MOA_BALL_KAPPA", "MOA_BALL_TAU"}},
      {{"train"}, {"MOA_TI_WEIGHT", "MOA_TI_TRIPLES"}},  // the training-only penalty
      {{"model", "train"}, {"HEAD_GATE_ENABLED"}},
      // training and optimizers
      {{"train"},
       {"ITERATIONS", "MAX_WALLCLOCK_SECONDS", "GPTQ_RESERVE_SECONDS", "WARMUP_STEPS", "TRAIN_BATCH_TOKENS",
        "GRAD_ACCUM_STEPS", "LOADER", "VAL_BATCH_TOKENS", "VAL_LOSS_EVERY"}},
      {{"train", "eval"}, {"VAL_MAX_TOKENS"}},
      {{"train"}, {"TRAIN_LOG_EVERY", "CHECKPOINT_EVERY", "GPTQ_CALIBRATION_BATCHES"}},
      {{"train", "eval"}, {"DIST_TIMEOUT_SECONDS"}},
      {{"train"},
       {"MATRIX_LR", "SCALAR_LR", "TIED_EMBED_LR", "MUON_WD", "ADAM_WD", "EMBED_WD", "BETA1", "BETA2", "ADAM_EPS",
        "MUON_MOMENTUM", "MUON_MOMENTUM_WARMUP_START", "MUON_MOMENTUM_WARMUP_STEPS", "MUON_BACKEND_STEPS",
        "MUON_POLAR_EXPRESS", "MUON_ROW_NORMALIZE", "GRAD_CLIP_NORM", "EMA_DECAY", "WARMDOWN_FRAC", "MIN_LR"}},
      // golf-pack
      {{"quant"},
       {"MATRIX_BITS", "EMBED_BITS", "ATTN_CLIP_SIGMAS", "MLP_CLIP_SIGMAS", "EMBED_CLIP_SIGMAS",
        "MATRIX_CLIP_SIGMAS", "HESSIAN_CLIP_LAMBDA", "GPTQ_ENABLED", "PASSTHROUGH_MAX_NUMEL", "SHUFFLE_STRIDE",
        "ARTIFACT_BUDGET", "GATED_ATTN_QUANT_GATE", "LQER_ENABLED", "LQER_RANK", "LQER_TOP_K",
        "LQER_FACTOR_BITS", "LQER_ASYM_ENABLED", "LQER_ASYM_GROUP", "COMPRESSOR"}},
      // golf-eval
      {{"eval"},
       {"EVAL_SEQ_LEN", "EVAL_STRIDE", "EVAL_BATCH_SEQS", "TTT_ENABLED", "TTT_LR", "TTT_MOMENTUM", "TTT_EPOCHS",
        "TTT_CHUNK_TOKENS", "TTT_GRAD_CLIP", "TTT_FREEZE_BLOCKS", "EVAL_TIME_LIMIT", "TTT_BATCH_SEQS",
        "TTT_MODE", "TTT_LORA_RANK", "TTT_LORA_ALPHA", "TTT_LORA_LR", "TTT_CHUNK_SIZE", "TTT_EVAL_SEQ_LEN",
        "TTT_BATCH_SIZE", "TTT_GRAD_STEPS", "TTT_WEIGHT_DECAY", "TTT_BETA1", "TTT_BETA2", "TTT_K_LORA",
        "TTT_O_LORA", "TTT_MLP_LORA", "TTT_WARM_START_A", "PHASED_TTT_PREFIX_DOCS", "PHASED_TTT_NUM_PHASES",
        "GLOBAL_TTT_LR", "GLOBAL_TTT_MOMENTUM", "GLOBAL_TTT_CHUNK_TOKENS", "GLOBAL_TTT_EPOCHS"}},
  };
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
template <class T>
const std::string& name_of(T Config::* member) {
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

  template <class T>
  void positive(const Config& c, T Config::* m) {
    if (!(c.*m > 0)) add(fmt::format("{}={} must be positive", name_of(m), c.*m));
  }
  template <class T>
  void non_negative(const Config& c, T Config::* m) {
    if (!(c.*m >= 0)) add(fmt::format("{}={} must be >= 0", name_of(m), c.*m));
  }
  void flag(const Config& c, int64_t Config::* m) {
    if (c.*m != 0 && c.*m != 1) add(fmt::format("{}={} must be 0 or 1", name_of(m), c.*m));
  }
  void one_of(const Config& c, std::string Config::* m, std::initializer_list<std::string_view> allowed) {
    if (std::find(allowed.begin(), allowed.end(), c.*m) == allowed.end())
      add(fmt::format("{}={} must be one of {}", name_of(m), json_quoted(c.*m), fmt::join(allowed, ", ")));
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
  Problems p;
  for (auto m : {&Config::vocab_size, &Config::num_layers, &Config::model_dim, &Config::num_heads,
                 &Config::num_kv_heads, &Config::rope_dims, &Config::gate_width, &Config::train_seq_len,
                 &Config::iterations, &Config::train_batch_tokens, &Config::val_batch_tokens,
                 &Config::muon_backend_steps})
    p.positive(c, m);
  for (auto m : {&Config::mlp_mult, &Config::rope_base, &Config::logit_softcap, &Config::adam_eps,
                 &Config::attn_clip_sigmas, &Config::mlp_clip_sigmas, &Config::embed_clip_sigmas,
                 &Config::matrix_clip_sigmas})
    p.positive(c, m);
  for (auto m : {&Config::shuffle_stride, &Config::artifact_budget, &Config::eval_seq_len, &Config::eval_stride,
                 &Config::eval_batch_seqs, &Config::ttt_chunk_tokens})
    p.positive(c, m);
  for (auto m : {&Config::ttt_lr, &Config::ttt_momentum, &Config::ttt_grad_clip, &Config::eval_time_limit})
    p.non_negative(c, m);
  p.non_negative(c, &Config::ttt_epochs);
  p.non_negative(c, &Config::ttt_freeze_blocks);
  for (auto m : {&Config::ttt_batch_seqs, &Config::ttt_lora_rank, &Config::ttt_chunk_size, &Config::ttt_eval_seq_len,
                 &Config::ttt_batch_size, &Config::global_ttt_chunk_tokens, &Config::phased_ttt_num_phases})
    p.positive(c, m);
  for (auto m : {&Config::ttt_grad_steps, &Config::phased_ttt_prefix_docs, &Config::global_ttt_epochs})
    p.non_negative(c, m);
  for (auto m : {&Config::ttt_lora_alpha, &Config::ttt_lora_lr, &Config::ttt_weight_decay, &Config::global_ttt_lr,
                 &Config::global_ttt_momentum})
    p.non_negative(c, m);
  for (auto m : {&Config::ttt_beta1, &Config::ttt_beta2})
    if (c.*m < 0 || c.*m >= 1) p.add(fmt::format("{}={} must be in [0, 1)", name_of(m), c.*m));
  for (auto m : {&Config::ttt_k_lora, &Config::ttt_o_lora, &Config::ttt_mlp_lora, &Config::ttt_warm_start_a})
    p.flag(c, m);
  p.one_of(c, &Config::ttt_mode, {"sgd", "lora", "phased"});
  p.positive(c, &Config::dist_timeout_seconds);
  if (c.eval_stride > c.eval_seq_len)
    p.add(fmt::format("EVAL_STRIDE={} exceeds EVAL_SEQ_LEN={}", c.eval_stride, c.eval_seq_len));
  p.non_negative(c, &Config::hessian_clip_lambda);
  p.non_negative(c, &Config::passthrough_max_numel);
  for (auto m : {&Config::matrix_bits, &Config::embed_bits})
    if (c.*m < 2 || c.*m > 8) p.add(fmt::format("{}={} must be in [2, 8]", name_of(m), c.*m));
  for (auto m : {&Config::xsa_last_n, &Config::num_loops, &Config::parallel_start_layer, &Config::warmup_steps,
                 &Config::grad_accum_steps, &Config::val_loss_every, &Config::val_max_tokens,
                 &Config::checkpoint_every, &Config::gptq_calibration_batches, &Config::muon_momentum_warmup_steps,
                 &Config::bos_token_id, &Config::train_log_every})
    p.non_negative(c, m);
  for (auto m : {&Config::matrix_lr, &Config::scalar_lr, &Config::tied_embed_lr, &Config::min_lr,
                 &Config::max_wallclock_seconds, &Config::gptq_reserve_seconds, &Config::muon_wd,
                 &Config::adam_wd, &Config::embed_wd, &Config::grad_clip_norm, &Config::tied_embed_init_std})
    p.non_negative(c, m);
  for (auto m : {&Config::ln_scale, &Config::attn_out_gate_enabled, &Config::smear_gate_enabled,
                 &Config::skip_gates_enabled, &Config::doc_mask, &Config::muon_polar_express,
                 &Config::muon_row_normalize, &Config::gptq_enabled, &Config::smear_bos_mask, &Config::ttt_enabled})
    p.flag(c, m);

  p.one_of(c, &Config::device, {"auto", "cpu", "cuda"});
  p.one_of(c, &Config::smear_input, {"normed", "raw"});
  p.one_of(c, &Config::parallel_mode, {"two_lane", "gptj", "none"});
  p.one_of(c, &Config::loader, {"packing", "coprime"});
  p.one_of(c, &Config::compressor, {"brotli", "pergroup", "golf"});

  // Seed attention variants.
  for (auto m : {&Config::smat_use_s, &Config::smat_use_g, &Config::value_residual, &Config::gated_attention,
                 &Config::bigram_hash, &Config::head_gate_enabled})
    p.flag(c, m);
  p.non_negative(c, &Config::smat_dim);
  p.one_of(c, &Config::smat_centrality, {"seq", "count"});
  p.one_of(c, &Config::smat_gonly_centrality, {"keep", "drop"});
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
  p.flag(c, &Config::sparse_attn_gate_enabled);
  p.non_negative(c, &Config::sparse_attn_gate_init_std);
  if (c.sparse_attn_gate_enabled && (c.attn_out_gate_enabled || c.gated_attention))
    p.add(fmt::format("SPARSE_ATTN_GATE_ENABLED=1 replaces the output gate: set ATTN_OUT_GATE_ENABLED=0 and "
                      "GATED_ATTENTION=0 (they are {} and {})",
                      c.attn_out_gate_enabled, c.gated_attention));
  // QuantGate and LQER (golf-pack).
  for (auto m : {&Config::gated_attn_quant_gate, &Config::lqer_enabled, &Config::lqer_asym_enabled}) p.flag(c, m);
  for (auto m : {&Config::lqer_rank, &Config::lqer_top_k, &Config::lqer_asym_group}) p.positive(c, m);
  if (c.lqer_factor_bits < 2 || c.lqer_factor_bits > 8)
    p.add(fmt::format("LQER_FACTOR_BITS={} must be in [2, 8]", c.lqer_factor_bits));
  if (c.gated_attention && c.attn_out_gate_enabled)
    p.add("GATED_ATTENTION=1 and ATTN_OUT_GATE_ENABLED=1 are exclusive output gates: set ATTN_OUT_GATE_ENABLED=0");
  if (c.bigram_hash) {
    p.positive(c, &Config::bigram_dim);
    if (c.bigram_buckets < 2) p.add(fmt::format("BIGRAM_BUCKETS={} must be at least 2", c.bigram_buckets));
  }

  // MoA.
  for (auto m : {&Config::moa_enabled, &Config::moa_bias_gate, &Config::moa_ball}) p.flag(c, m);
  p.one_of(c, &Config::moa_metric, {"l2", "cosine", "diag_mahalanobis"});
  for (auto m : {&Config::moa_router_hidden, &Config::moa_conv_kernel, &Config::moa_chan_mult, &Config::moa_ti_triples})
    p.positive(c, m);
  for (auto m : {&Config::moa_alpha_init, &Config::moa_radius_init, &Config::moa_ball_tau}) p.positive(c, m);
  for (auto m : {&Config::moa_ball_kappa, &Config::moa_ti_weight}) p.non_negative(c, m);
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

  if (!(c.warmdown_frac >= 0 && c.warmdown_frac <= 1))
    p.add(fmt::format("WARMDOWN_FRAC={} must be in [0, 1]", c.warmdown_frac));
  if (!(c.enable_looping_at >= 0 && c.enable_looping_at <= 1))
    p.add(fmt::format("ENABLE_LOOPING_AT={} must be in [0, 1]", c.enable_looping_at));
  if (!(c.ema_decay >= 0 && c.ema_decay < 1)) p.add(fmt::format("EMA_DECAY={} must be in [0, 1)", c.ema_decay));
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
  static const std::map<std::string, std::vector<std::string>> by_field = [] {
    std::map<std::string, std::vector<std::string>> m;
    for (auto& group : build_stage_table())
      for (auto& field : group.fields) m[field] = group.stages;
    return m;
  }();
  if (const auto it = by_field.find(name); it != by_field.end()) return it->second;
  if (find_field(name)) throw std::logic_error("config field " + name + " has no stage in build_stage_table()");
  fail("{} is not a setting", name);
}

std::vector<std::string> stage_fields(const std::string& stage) {
  const auto& stages = config_stages();
  if (std::find(stages.begin(), stages.end(), stage) == stages.end())
    fail("unknown stage {} (stages: {})", json_quoted(stage), fmt::join(stages, ", "));
  std::vector<std::string> names;
  for (const auto& field : config_fields()) {
    const auto& of = field_stages(field.name);
    if (std::find(of.begin(), of.end(), stage) != of.end()) names.push_back(field.name);
  }
  return names;
}

}  // namespace golf
