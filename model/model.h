// model/model.h — the golf model: one definition used by training, calibration, evaluation and TTT.
//
// The readable spec is tests/reference/golf_model.py; this file's math is proven equal to it
// (tests/train/twin_test.cpp). In short, per token stream (B, T):
//   embed → RMSNorm → BOS-masked SmearGate → x0
//   encoder visits (U-Net: outputs pushed on a stack) → decoder visits (skips popped, gated)
//   layers ≥ PARALLEL_START_LAYER: two-lane (records) or GPT-J single-lane parallel residual
//   depth recurrence: layers LOOP_START..LOOP_END visited NUM_LOOPS+1 times once looping is on
//   attention: GQA, QK-RMSNorm, partial RoPE, q gain, causal inside BOS-delimited segments of
//   ≤ TRAIN_SEQ_LEN tokens, XSA, AttnOutGate; MLP: LeakyReLU(0.5)²; tied head, softcap, fp32 CE.
//   Seed variants, each off by default (model/variants.h): SMAT semantic bias and value gate, value
//   residual, gated attention, BigramHash embedding; MoA mixer in place of attention (model/moa.h).
//
// Parameters are fp32 masters; on CUDA the forward runs in bf16 (weights cast at use, norms and
// loss in fp32), on CPU in fp32. Names follow the records (tok_emb.weight, qo_bank, …).
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "model/fast_paths.h"

namespace golf {

// Test-time LoRA (golf-eval's LoRA TTT): additive low-rank deltas at the model's projections, one
// independent slice per batch row (a batch row is one document). For x (B, T, in):
//   delta(x) = scale · (x Aᵀ) Bᵀ,   A (B, r, in), B (B, out, r)   → (B, T, out)
// An undefined pair adds nothing. B = 0 gives exactly the base forward (the delta is skipped only
// when undefined; a zero B adds exact zeros).
struct LoraPair {
  at::Tensor a, b;
  double scale = 1.0;
  bool defined() const { return a.defined(); }
  at::Tensor apply(const at::Tensor& x) const;  // (B, T, in) → (B, T, out), in x's dtype
};
// The deltas of one executed layer visit: Q, K, V take the attention input u; O the attention
// output (before W_O); mlp is a parallel dim→dim adapter from the MLP input, added to the MLP output.
struct LoraVisit {
  LoraPair q, k, v, o, mlp;
};
struct LoraDelta {
  std::vector<LoraVisit> visits;  // one per executed layer visit, encoder then decoder (visit_order)
  LoraPair head;                  // hidden (d) → logits (V), added before the softcap
};

// Per-forward settings. seq_len_cut: attention segments restart every this many tokens counted from
// each document start (and at each BOS, with DOC_MASK=1); 0 = TRAIN_SEQ_LEN (training). Evaluation
// passes its own length (EVAL_SEQ_LEN, TTT_EVAL_SEQ_LEN) so it cuts only where the records do.
// cu_seqlens: for the varlen attention backends (GOLF_ATTN=flash|cudnn), the batch's packed
// segment bounds from varlen_segments (model/varlen.h) with the same cut, computed on the CPU side.
struct ForwardOptions {
  int64_t seq_len_cut = 0;
  const LoraDelta* lora = nullptr;
  at::Tensor cu_seqlens;
};

// Accumulates XᵀX of every quantized matrix's input during forward passes (GPTQ calibration).
// Keys are per-matrix names: blocks.{i}.attn.{c_q,c_k,c_v,proj}.weight, blocks.{i}.mlp.{fc,proj}.weight,
// tok_emb.weight. Q, K and V share their input, so they share one accumulated tensor.
struct HessianCollector {
  std::map<std::string, at::Tensor> sums;  // (in, in) fp32
  std::map<std::string, int64_t> rows;     // rows of X accumulated
  // Only matrices with more elements are quantized (golf-pack stores the rest fp16), so only they get
  // a Hessian: the packer's PASSTHROUGH_MAX_NUMEL, set by whoever collects (the model has no QuantConfig).
  int64_t passthrough_max_numel = QuantConfig{}.passthrough_max_numel;
  void add(const std::string& name, const at::Tensor& x);  // x (..., in)
  // Mean XᵀX per matrix name (each of c_q/c_k/c_v gets the shared attention-input Hessian).
  std::map<std::string, at::Tensor> hessians(int64_t num_layers) const;
};

// What one forward records besides its output, each optional (null: not recorded). The forward
// itself keeps nothing between calls: it is a function of (weights, tokens, options, probes).
// Recording never changes the output, except smat_gate_sums, which measures the real SMAT value
// gate: SMAT_ABLATION's g_one / g_mean replacements are not applied in that forward.
struct ForwardProbes {
  HessianCollector* hessians = nullptr;  // XᵀX of each quantized matrix's input (GPTQ calibration)
  // (Σ G, count) of the SMAT value gate per physical layer, added to (Model::calibrate_smat_gate_means)
  std::vector<std::pair<double, int64_t>>* smat_gate_sums = nullptr;
  // MoA's triangle-inequality penalties R_TI, one per (layer visit, metric branch) (Model::loss)
  std::vector<at::Tensor>* moa_triangle_penalties = nullptr;
};

class Model {
 public:
  // Takes only the model's settings (a Config converts), validated by the caller (resolve_config(),
  // validate()). Initialises every parameter as the records do (orthogonal Q/K/V/up, zero O/down, …)
  // from the current ATen generator state; call at::manual_seed first for reproducible weights.
  Model(const ModelConfig& config, at::Device device);

  // (B, T) int64 tokens → softcapped logits (B, T, V), fp32.
  // probes: what to record on the side (ForwardProbes), or null.
  // options: the evaluation cut length, test-time LoRA deltas, and (varlen attention backends)
  // the batch's packed segment bounds from varlen_segments (model/varlen.h) computed on the CPU by
  // the caller, so the forward needs no device sync; without them the model computes the bounds
  // from the tokens (one device→host copy).
  at::Tensor logits(const at::Tensor& tokens, bool looping, const ForwardProbes* probes = nullptr,
                    const ForwardOptions& options = {}) const;
  // Per-position cross-entropy (B, T), fp32 (for bpb) and its mean (for training).
  at::Tensor token_losses(const at::Tensor& tokens, const at::Tensor& targets, bool looping,
                          const ForwardProbes* probes = nullptr, const ForwardOptions& options = {}) const;
  // The training loss: mean cross-entropy, plus MOA_TI_WEIGHT · Σ R_TI (recorded through ForwardProbes).
  at::Tensor loss(const at::Tensor& tokens, const at::Tensor& targets, bool looping,
                  const ForwardOptions& options = {}) const;

  // The speed switches (model/fast_paths.h); read from the environment at construction.
  const FastPaths& fast_paths() const { return fast_; }
  void set_fast_paths(const FastPaths& f);

  // Parameters in a fixed order, by record name.
  const std::vector<std::string>& names() const { return names_; }
  at::Tensor& param(const std::string& name);
  const at::Tensor& param(const std::string& name) const;
  std::map<std::string, at::Tensor> state() const;  // name → parameter (shared storage)
  // Copies values in (shapes must match; every parameter must be present). Throws golf::Error.
  void load_state(const std::map<std::string, at::Tensor>& tensors);
  int64_t num_params() const;
  const ModelConfig& config() const { return cfg_; }
  at::Device device() const { return device_; }

  // SMAT_ABLATION=g_mean replaces each layer's value gate G by a per-layer constant Ḡ_ℓ: the mean
  // of the real gate over every token of these batches (B, T) (calibration data, not the scored
  // text, so no future token leaks in). Returns and keeps Ḡ_ℓ per physical layer.
  const std::vector<double>& calibrate_smat_gate_means(const std::vector<at::Tensor>& batches, bool looping);
  void set_smat_gate_means(std::vector<double> means) { smat_gate_means_ = std::move(means); }

  // MOA_ENABLED: the router's mixture weights π (B, T, branches in moa::branches order) of layer
  // `layer` for the normed block input u (B, T, d). For tests and inspection.
  at::Tensor moa_routing(int layer, const at::Tensor& u) const;

  // Layer visit order (encoder, decoder) and the number of U-Net skip rows.
  std::pair<std::vector<int>, std::vector<int>> visit_order(bool looping) const;
  int num_skip_rows() const;

 private:
  // One forward's state, built by make_pass() and handed down explicitly (passed as `s`): segment
  // ids/positions (B, T), RoPE cos/sin (B, T, 1, r/2) in the compute dtype, the cut length (the
  // longest segment), for the varlen backends the packed segment bounds on the device; the banks
  // cast once for this forward (GOLF_BANK_UNBIND); and the forward's probes.
  struct Pass {
    at::Tensor seg, pos, cos, sin, cu_seqlens;
    int64_t seg_len = 0, max_len = 0;
    std::map<std::string, std::vector<at::Tensor>> bank_views;  // bank name → its matrices, cast
    ForwardProbes probes;
  };
  Pass make_pass(const at::Tensor& tokens, const ForwardOptions& options, const ForwardProbes* probes) const;
  at::Tensor hidden(const at::Tensor& tokens, bool looping, const ForwardProbes* probes,
                    const ForwardOptions& options = {}) const;
  at::Tensor embed(const at::Tensor& tokens, const Pass& s) const;
  // Attention is a fixed sequence of steps; a variant or a fast path plugs into one of them:
  //   project_qkv → mix_values → attend (QK-norm, RoPE, q gain, SMAT, the backend) →
  //   attn_gates (XSA, gated attention, AttnOutGate) → attn_out.
  // v_first: VALUE_RESIDUAL's v0, set by the first attention visit of a forward, read by the rest.
  struct Qkv {
    at::Tensor q, k, v;  // (B, T, H, Dh), (B, T, Hkv, Dh), (B, T, Hkv, Dh)
  };
  // lora: this visit's test-time LoRA deltas (Q, K, V at project_qkv, O at attn_out), or null.
  at::Tensor attention(int layer, const at::Tensor& u, const Pass& s, at::Tensor& v_first,
                       const LoraVisit* lora = nullptr) const;
  Qkv project_qkv(int layer, const at::Tensor& u, const Pass& s, const LoraVisit* lora = nullptr) const;
  void mix_values(int layer, Qkv& qkv, at::Tensor& v_first) const;
  at::Tensor attend(int layer, const at::Tensor& u, const Qkv& qkv, const Pass& s) const;
  at::Tensor attend_core(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Pass& s) const;
  at::Tensor attn_gates(int layer, const at::Tensor& u, const Qkv& qkv, at::Tensor y, const Pass& s) const;
  at::Tensor attn_gates_fused(int layer, const at::Tensor& u, const Qkv& qkv, const at::Tensor& y, const Pass& s) const;
  at::Tensor attn_out(int layer, const at::Tensor& y, const Pass& s, const LoraVisit* lora = nullptr) const;
  at::Tensor rope(const at::Tensor& x, const Pass& s) const;
  at::Tensor rms(const at::Tensor& x) const;  // golf::rms_norm or the fused at::rms_norm (GOLF_FUSED_OPS)
  at::Tensor smat_gate(int layer, const at::Tensor& u, const at::Tensor& uhat, const Pass& s) const;
  at::Tensor bigram(const at::Tensor& tokens, const Pass& s) const;
  at::Tensor mlp(int layer, const at::Tensor& u, const Pass& s, const LoraVisit* lora = nullptr) const;
  // MoA (model/moa.h): the mixer that replaces attention, and one metric attention branch (mha | mqa).
  at::Tensor moa_mixer(int layer, const at::Tensor& u, const Pass& s, at::Tensor& v_first) const;
  at::Tensor metric_attention(int layer, const std::string& branch, const at::Tensor& q, const at::Tensor& k,
                              const at::Tensor& v, const Pass& s) const;
  // x Wᵀ for a variant matrix, recording x for the Hessians when the matrix is large enough to be quantized.
  at::Tensor linear(const std::string& name, const at::Tensor& x, const Pass& s) const;
  void add_moa_params(int layer);
  at::Tensor w(const std::string& name) const;                                   // parameter in the compute dtype
  at::Tensor bank(const std::string& name, int64_t index, const Pass& s) const;  // one matrix of a bank, ditto
  void add_param(const std::string& name, at::Tensor value);
  void add_variant_params(int layer);
  bool has_smat_ws() const;  // SMAT's W_s exists (S bias on, or the gate's centrality kept)
  int64_t smat_dim() const;  // d_s

  ModelConfig cfg_;
  at::Device device_;
  at::ScalarType compute_dtype_;
  std::vector<std::string> names_;
  std::map<std::string, at::Tensor> params_;
  std::vector<double> smat_gate_means_;  // Ḡ_ℓ for SMAT_ABLATION=g_mean
  FastPaths fast_;
  // The variants' fixed random tensors, built once on the model's device instead of on the CPU and
  // copied every forward (a copy per layer visit, and nothing a captured graph could replay):
  // SMAT_ABLATION=random_s's projection R per layer (compute dtype), built at construction; MoA's
  // triangle-penalty key indices per (seed, B·T), built at first use (VariantCache, model.cpp).
  std::vector<at::Tensor> smat_random_projections_;
  struct VariantCache;
  std::shared_ptr<VariantCache> variant_cache_;
};

// Segment id and position inside the segment for every token (both (B, T) int64): a segment starts
// at position 0, at every BOS and every `seq_len_cut` tokens into a document (DOC_MASK=1), or at
// every `seq_len_cut` tokens of the row (DOC_MASK=0). seq_len_cut 0 = TRAIN_SEQ_LEN.
std::pair<at::Tensor, at::Tensor> segments(const at::Tensor& tokens, const ModelConfig& config, int64_t seq_len_cut = 0);

// Causal attention restricted to equal segment ids, computed block by block so memory grows with
// T·W rather than T²: queries of block b see keys of blocks b-1 and b (W = block_len ≥ longest
// segment). q (B, T, H, Dh), k/v (B, T, Hkv, Dh), seg (B, T) → (B, T, H, Dh).
// scale: the logit scale (default 1/√ of q's head dim; SMAT's folded q/k pass 1/√Dh of the
// unfolded head).
at::Tensor segment_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& seg,
                             int64_t block_len, std::optional<double> scale = std::nullopt);

// Whether physical layer i runs as a parallel (two-lane or GPT-J) block: PARALLEL_MODE is not none
// and i ≥ PARALLEL_START_LAYER > 0. As in the records, PARALLEL_START_LAYER=0 means "no parallel
// layers" (not "every layer parallel").
bool is_parallel_layer(const ModelConfig& config, int64_t layer);

at::Tensor rms_norm(const at::Tensor& x);  // parameter-free, eps = fp32 epsilon, statistics in fp32

}  // namespace golf
