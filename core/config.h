// core/config.h — the one configuration struct that travels through every stage.
//
// Every field is named after the records' environment variable (SEED, NUM_LAYERS, MATRIX_LR…).
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

struct Config {
  // ---- run and data ---------------------------------------------------------------------------
  std::string run_id;                 // RUN_ID: run directory name under OUTPUT_DIR ("" → time-based)
  std::string output_dir = "runs";    // OUTPUT_DIR
  int64_t seed = 1337;                // SEED
  std::string data_path = "./data/datasets/fineweb10B_sp8192";               // DATA_PATH: shard dir
  std::string tokenizer_path = "./data/tokenizers/fineweb_8192_bpe.model";  // TOKENIZER_PATH
  std::string device = "auto";        // DEVICE: auto | cpu | cuda
  std::string tokenizer_sha256;       // TOKENIZER_SHA256: the tokenizer's identity, set by golf-train from TOKENIZER_PATH (artifact: golf-eval checks it)
  std::string tokenizer_kind;         // TOKENIZER_KIND: plain | caseops, set by golf-train with TOKENIZER_SHA256

  // ---- model (see tests/reference/golf_model.py, the readable spec) ----------------------------
  int64_t vocab_size = 8192;          // VOCAB_SIZE
  int64_t num_layers = 11;            // NUM_LAYERS
  int64_t model_dim = 512;            // MODEL_DIM
  int64_t num_heads = 8;              // NUM_HEADS
  int64_t num_kv_heads = 4;           // NUM_KV_HEADS
  double mlp_mult = 4.0;              // MLP_MULT
  double tied_embed_init_std = 0.005; // TIED_EMBED_INIT_STD
  double rope_base = 10000.0;         // ROPE_BASE
  int64_t rope_dims = 16;             // ROPE_DIMS: rotated dims per head
  double qk_gain_init = 5.25;         // QK_GAIN_INIT
  int64_t ln_scale = 1;               // LN_SCALE: block inputs scaled by 1/sqrt(layer+1)
  int64_t xsa_last_n = 11;            // XSA_LAST_N: exclusive self-attention on the last N layers (≥ NUM_LAYERS: all)
  int64_t attn_out_gate_enabled = 1;  // ATTN_OUT_GATE_ENABLED: y_h *= 2σ(W u[:GATE_WIDTH])
  int64_t gate_width = 12;            // GATE_WIDTH: input width of the attention and smear gates
  int64_t smear_gate_enabled = 1;     // SMEAR_GATE_ENABLED
  std::string smear_input = "normed"; // SMEAR_INPUT: normed (PR #1880) | raw (R29)
  int64_t bos_token_id = 1;           // BOS_TOKEN_ID: document start (smear mask, attention segments)
  int64_t smear_bos_mask = 1;         // SMEAR_BOS_MASK: 0 lets SmearGate leak across BOS (the PR #1797 bug; tests only)
  int64_t skip_gates_enabled = 1;     // SKIP_GATES_ENABLED: sigmoid-gated U-Net skips
  int64_t parallel_start_layer = 7;   // PARALLEL_START_LAYER: first parallel layer; 0 → no parallel layers (records)
  std::string parallel_mode = "two_lane";  // PARALLEL_MODE: two_lane (records) | gptj (PR #1880) | none
  int64_t num_loops = 2;              // NUM_LOOPS: extra visits of layers LOOP_START..LOOP_END
  int64_t loop_start = 3;             // LOOP_START
  int64_t loop_end = 5;               // LOOP_END
  double enable_looping_at = 0.35;    // ENABLE_LOOPING_AT: training fraction that switches recurrence on
  double logit_softcap = 15.0;        // LOGIT_SOFTCAP
  int64_t train_seq_len = 2048;       // TRAIN_SEQ_LEN: longest attention segment / dense row length
  int64_t doc_mask = 1;               // DOC_MASK: 1 attention stops at BOS; 0 dense rows (PR #1880)
  int64_t sparse_attn_gate_enabled = 0;  // SPARSE_ATTN_GATE_ENABLED: y_h *= σ(SCALE·(W u[:GATE_WIDTH])_h), 0.5 at init (R29)
  double sparse_attn_gate_init_std = 0.0;  // SPARSE_ATTN_GATE_INIT_STD: W ~ N(0, std²) at init (0 → zeros)
  double sparse_attn_gate_scale = 1.0;  // SPARSE_ATTN_GATE_SCALE: multiplies the gate logits

  // ---- seed attention variants (core/variants.h; all off by default) ---------------------------
  int64_t smat_use_s = 0;             // SMAT_USE_S: SMAT semantic bias λ·cos(W_s h_i, W_s h_j) on the attention logits
  int64_t smat_use_g = 0;             // SMAT_USE_G: SMAT value gate G_j = σ(w_g·h_j + μ·c_j + β) on V
  int64_t smat_dim = 0;               // SMAT_DIM: width d_s of W_s (0 → head dim)
  std::string smat_centrality = "seq";  // SMAT_CENTRALITY: divisor n_j of c_j: seq (TRAIN_SEQ_LEN) | count (j+1 in its segment)
  std::string smat_gonly_centrality = "keep";  // SMAT_GONLY_CENTRALITY: without SMAT_USE_S: keep (W_s feeds c_j) | drop (no W_s, μ)
  double smat_beta_init = 3.0;        // SMAT_BETA_INIT: gate bias β at init (σ(3) ≈ 0.953)
  double smat_lambda_raw_init = 0.0;  // SMAT_LAMBDA_RAW_INIT: λ = softplus(λ_raw) at init (0 → ln 2)
  std::string smat_ablation = "none"; // SMAT_ABLATION: eval-time override, comma-separated: none | lambda0 | no_s | random_s | g_mean | g_one
  int64_t value_residual = 0;         // VALUE_RESIDUAL: layers ≥ 1 use v ← a·v0 + b·v, (a, b) init (0.5, 0.5) (PR #413)
  int64_t gated_attention = 0;        // GATED_ATTENTION: y_h *= σ(W u + b) per head, W = 0, b = 4 (PR #413)
  int64_t bigram_hash = 0;            // BIGRAM_HASH: add s·P·E[hash(prev, cur)] to the token embedding
  int64_t bigram_buckets = 4096;      // BIGRAM_BUCKETS: BigramHash table rows (the last is reserved for t = 0 and BOS)
  int64_t bigram_dim = 128;           // BIGRAM_DIM: BigramHash table width (projected to MODEL_DIM unless equal)
  // MoA, mixture of attentions (core/moa.h; docs/reference/seed-techniques.md §4): off by default.
  int64_t moa_enabled = 0;            // MOA_ENABLED: each block's attention becomes a router-mixed set of branches
  std::string moa_branches = "conv,mha,mqa,chan";  // MOA_BRANCHES: comma-separated subset of conv | mha | mqa | chan (mha required)
  std::string moa_metric = "l2";      // MOA_METRIC: metric-head logits −α·D: l2 | cosine | diag_mahalanobis
  int64_t moa_router_hidden = 128;    // MOA_ROUTER_HIDDEN: width of the token-wise router r = GELU(W u + b)
  double moa_alpha_init = 1.0;        // MOA_ALPHA_INIT: metric scale α = softplus(α_raw) per head at init
  int64_t moa_bias_gate = 1;          // MOA_BIAS_GATE: per-branch scalar gate σ(w·r + c), c = 3 at init
  int64_t moa_conv_kernel = 4;        // MOA_CONV_KERNEL: causal depthwise conv width (resets at BOS)
  int64_t moa_chan_mult = 2;          // MOA_CHAN_MULT: channel-mix head hidden width, in MODEL_DIM
  int64_t moa_ball = 0;               // MOA_BALL: ball pruning: soft key mask −κ·softplus((‖k−o_h‖ − r_h)/τ)
  double moa_radius_init = 3.0;       // MOA_RADIUS_INIT: ball radius r_h = softplus(ρ_h) at init
  double moa_ball_kappa = 10.0;       // MOA_BALL_KAPPA: ball mask strength κ
  double moa_ball_tau = 0.1;          // MOA_BALL_TAU: ball mask softness τ
  double moa_ti_weight = 0.0;         // MOA_TI_WEIGHT: λ of the triangle-inequality penalty on metric keys (0 → off)
  int64_t moa_ti_triples = 64;        // MOA_TI_TRIPLES: key triples sampled per layer visit for the penalty
  int64_t head_gate_enabled = 0;      // HEAD_GATE_ENABLED: y_h *= γ_h, a learned scalar per layer and head (γ = 1 at init)

  // ---- training -------------------------------------------------------------------------------
  int64_t iterations = 20000;         // ITERATIONS: step budget (also the schedule when no wall clock)
  double max_wallclock_seconds = 600; // MAX_WALLCLOCK_SECONDS: 0 → step-based schedule (ITERATIONS)
  double gptq_reserve_seconds = 13;   // GPTQ_RESERVE_SECONDS: kept for Hessian collection
  int64_t warmup_steps = 20;          // WARMUP_STEPS: rolled-back warm-up steps per loop mode
  int64_t train_batch_tokens = 786432;  // TRAIN_BATCH_TOKENS: global tokens per optimizer step
  int64_t grad_accum_steps = 0;       // GRAD_ACCUM_STEPS: 0 → 8 / world size
  std::string loader = "packing";     // LOADER: packing (document packing) | coprime (coprime stride)
  int64_t val_batch_tokens = 524288;  // VAL_BATCH_TOKENS
  int64_t val_loss_every = 4000;      // VAL_LOSS_EVERY: 0 → only at the end
  int64_t val_max_tokens = 0;         // VAL_MAX_TOKENS: 0 → the whole validation split
  int64_t train_log_every = 100;      // TRAIN_LOG_EVERY
  int64_t checkpoint_every = 1000;    // CHECKPOINT_EVERY: steps between checkpoints (0 → off)
  int64_t gptq_calibration_batches = 64;  // GPTQ_CALIBRATION_BATCHES
  double dist_timeout_seconds = 600;  // DIST_TIMEOUT_SECONDS: collective timeout before a rank gives up

  // ---- optimizers -----------------------------------------------------------------------------
  double matrix_lr = 0.026;           // MATRIX_LR: Muon
  double scalar_lr = 0.02;            // SCALAR_LR: AdamW, scalars and gates
  double tied_embed_lr = 0.03;        // TIED_EMBED_LR: AdamW, embedding
  double muon_wd = 0.095;             // MUON_WD
  double adam_wd = 0.02;              // ADAM_WD
  double embed_wd = 0.085;            // EMBED_WD
  double beta1 = 0.9;                 // BETA1
  double beta2 = 0.95;                // BETA2
  double adam_eps = 1e-8;             // ADAM_EPS
  double muon_momentum = 0.97;        // MUON_MOMENTUM
  double muon_momentum_warmup_start = 0.92;  // MUON_MOMENTUM_WARMUP_START
  int64_t muon_momentum_warmup_steps = 1500; // MUON_MOMENTUM_WARMUP_STEPS
  int64_t muon_backend_steps = 5;     // MUON_BACKEND_STEPS: Newton–Schulz iterations
  int64_t muon_polar_express = 0;     // MUON_POLAR_EXPRESS: 1 → per-iteration Polar Express coefficients
  int64_t muon_row_normalize = 1;     // MUON_ROW_NORMALIZE: MuonEq-R
  double grad_clip_norm = 0.3;        // GRAD_CLIP_NORM
  double ema_decay = 0.9965;          // EMA_DECAY
  double warmdown_frac = 0.72;        // WARMDOWN_FRAC
  double min_lr = 0.0;                // MIN_LR: floor of the LR multiplier

  // ---- quantization and packing (golf-pack) ---------------------------------------------------
  int64_t matrix_bits = 6;            // MATRIX_BITS: attention and MLP matrices
  int64_t embed_bits = 7;             // EMBED_BITS: the tied embedding
  double attn_clip_sigmas = 13.0;     // ATTN_CLIP_SIGMAS: SDClip k for attention matrices
  double mlp_clip_sigmas = 12.0;      // MLP_CLIP_SIGMAS: SDClip k for MLP matrices
  double embed_clip_sigmas = 15.0;    // EMBED_CLIP_SIGMAS: SDClip k for the embedding
  double matrix_clip_sigmas = 12.85;  // MATRIX_CLIP_SIGMAS: SDClip k for any other quantized matrix
  double hessian_clip_lambda = 0.0;   // HESSIAN_CLIP_LAMBDA: Hessian-aware SDClip (0: plain SDClip)
  int64_t gptq_enabled = 1;           // GPTQ_ENABLED: 0 rounds to nearest with the same scales
  int64_t passthrough_max_numel = 65536;  // PASSTHROUGH_MAX_NUMEL: tensors this small are stored fp16
  int64_t shuffle_stride = 2;         // SHUFFLE_STRIDE: byte shuffle before Brotli
  int64_t artifact_budget = 16000000; // ARTIFACT_BUDGET: bytes allowed for artifact + counted code
  int64_t gated_attn_quant_gate = 0;  // GATED_ATTN_QUANT_GATE: attention gate weights stored int8 per row (QuantGate, R0419)
  int64_t lqer_enabled = 0;           // LQER_ENABLED: low-rank correction of the quantization error (R0427L)
  int64_t lqer_rank = 4;              // LQER_RANK: rank r of E ≈ A·B
  int64_t lqer_top_k = 3;             // LQER_TOP_K: corrected tensors, largest ‖W − Ŵ‖_F first
  int64_t lqer_factor_bits = 4;       // LQER_FACTOR_BITS: bits of both factors in the symmetric per-row form
  int64_t lqer_asym_enabled = 1;      // LQER_ASYM_ENABLED: A int2 (one scale), B int4 per group of LQER_ASYM_GROUP
  int64_t lqer_asym_group = 64;       // LQER_ASYM_GROUP: B values per fp16 scale (asymmetric form)
  std::string compressor = "brotli";  // COMPRESSOR: brotli | pergroup (records' R0427L scheme) | golf (golf's coder)

  // ---- evaluation and test-time training (golf-eval) ------------------------------------------
  int64_t eval_seq_len = 2048;        // EVAL_SEQ_LEN: rows of plain eval and sliding-window length
  int64_t eval_stride = 64;           // EVAL_STRIDE: sliding window stride (scored tokens per window)
  int64_t eval_batch_seqs = 32;       // EVAL_BATCH_SEQS: windows per forward
  int64_t ttt_enabled = 0;            // TTT_ENABLED: score-first test-time training (golf-eval --ttt)
  double ttt_lr = 0.005;              // TTT_LR: SGD learning rate, cosine-decayed over chunks
  double ttt_momentum = 0.9;          // TTT_MOMENTUM: SGD momentum (persists across chunks)
  int64_t ttt_epochs = 3;             // TTT_EPOCHS: passes over each chunk after scoring it
  int64_t ttt_chunk_tokens = 32768;   // TTT_CHUNK_TOKENS: predictions per chunk
  double ttt_grad_clip = 1.0;         // TTT_GRAD_CLIP: gradient-norm clip
  int64_t ttt_freeze_blocks = 0;      // TTT_FREEZE_BLOCKS: first N blocks not trained
  double eval_time_limit = 600;       // EVAL_TIME_LIMIT: seconds allowed on 8 GPUs (warning only)
  int64_t ttt_batch_seqs = 32;        // TTT_BATCH_SEQS: rows per rank per SGD step of global TTT (records: 32)
  std::string ttt_mode = "sgd";       // TTT_MODE: sgd (global score-first SGD) | lora | phased
  int64_t ttt_lora_rank = 96;         // TTT_LORA_RANK: LoRA rank
  double ttt_lora_alpha = 144;        // TTT_LORA_ALPHA: LoRA output scaled by alpha / rank
  double ttt_lora_lr = 1e-4;          // TTT_LORA_LR: AdamW learning rate of the LoRA
  int64_t ttt_chunk_size = 48;        // TTT_CHUNK_SIZE: predictions per LoRA chunk (score, then one step)
  int64_t ttt_eval_seq_len = 2048;    // TTT_EVAL_SEQ_LEN: LoRA TTT context (last predictions of the document)
  int64_t ttt_batch_size = 64;        // TTT_BATCH_SIZE: documents per LoRA batch
  int64_t ttt_grad_steps = 1;         // TTT_GRAD_STEPS: AdamW steps per chunk
  double ttt_weight_decay = 1.0;      // TTT_WEIGHT_DECAY: AdamW decoupled weight decay
  double ttt_beta1 = 0.0;             // TTT_BETA1: AdamW beta1
  double ttt_beta2 = 0.999;           // TTT_BETA2: AdamW beta2
  int64_t ttt_k_lora = 1;             // TTT_K_LORA: LoRA on K (Q, V and the head always)
  int64_t ttt_o_lora = 1;             // TTT_O_LORA: LoRA on the attention output projection
  int64_t ttt_mlp_lora = 1;           // TTT_MLP_LORA: dim->dim LoRA beside each MLP
  int64_t ttt_warm_start_a = 0;       // TTT_WARM_START_A: keep A across per-batch resets (not document-independent)
  int64_t phased_ttt_prefix_docs = 2000;  // PHASED_TTT_PREFIX_DOCS: queue-order documents before the last phase
  int64_t phased_ttt_num_phases = 3;  // PHASED_TTT_NUM_PHASES: global SGD phases over the prefix
  double global_ttt_lr = 0.001;       // GLOBAL_TTT_LR: phased TTT's global SGD learning rate (cosine over chunks)
  double global_ttt_momentum = 0.9;   // GLOBAL_TTT_MOMENTUM: its SGD momentum
  int64_t global_ttt_chunk_tokens = 32768;  // GLOBAL_TTT_CHUNK_TOKENS: tokens per global SGD chunk
  int64_t global_ttt_epochs = 1;      // GLOBAL_TTT_EPOCHS: passes over each chunk
};

// One field of Config: its environment-variable name, a pointer to the member, and a help line.
struct ConfigField {
  std::string name;  // e.g. "MATRIX_LR"
  std::variant<int64_t Config::*, double Config::*, std::string Config::*> member;
  std::string help;
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
// Invariants between fields (heads divide the model dim, KV heads divide heads, loop range inside
// the layers, rope dims even and ≤ head dim, …). Throws golf::Error.
void validate(const Config& config);

nlohmann::json to_json(const Config& config);          // {"SEED": 1337, ...}
Config config_from_json(const nlohmann::json& j);       // strict: unknown keys are errors
// Human-readable "KEY = value" lines, one per field, for the top of train.log.
std::string describe(const Config& config);

// ---- stages: which stage tool reads each setting (the one list; scripts read it through
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
