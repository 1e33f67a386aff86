// core/config_fields.h — every setting, declared once (an X-macro list, included by core/config.h and
// core/config.cpp only, several times: it has no include guard; counted code like any core header).
//
//   GOLF_<PART>_FIELD(type, member, default, stages, rule, "help")
//
//   PART     the per-stage struct that holds it (core/config.h): RUN → RunConfig, MODEL → ModelConfig,
//            TRAIN → TrainConfig, OPTIM → OptimConfig, QUANT → QuantConfig, EVAL → EvalConfig
//   member   the C++ name; the setting's name (environment variable, JSON key, --set KEY) is the
//            member upper-cased, as in the records (SEED, NUM_LAYERS, MATRIX_LR…)
//   stages   the stage tools that read it, joined by |: data, model, train, quant, eval
//            (core/config.h "stages"; `model` = stored in the artifact and pinned by golf-eval)
//   rule     the one-field validation rule: none, positive, non_negative, flag (0 or 1),
//            one_of("a", "b", …), closed(lo, hi) for [lo, hi], half_open(lo, hi) for [lo, hi);
//            rules between fields are written in validate() (core/config.cpp)
//   help     one line for --print-config --json and the README ("" when the name says it all)
//
// Adding a setting: one line here (at the END of its part, so merges stay simple), then read it
// where it is used; --print-config, the stage lists, the artifact's key set (stage model), JSON and
// environment parsing and the one-field rule follow from the line. Rules between fields go in
// validate(). tests/core/config_test.cpp checks that the settings from before the split keep
// their names, defaults, stages and help (tests/core/data/config_fields_before_split.json).
//
// A part's macro that the includer does not define expands to nothing.
#ifndef GOLF_RUN_FIELD
#define GOLF_RUN_FIELD(...)
#endif
#ifndef GOLF_MODEL_FIELD
#define GOLF_MODEL_FIELD(...)
#endif
#ifndef GOLF_TRAIN_FIELD
#define GOLF_TRAIN_FIELD(...)
#endif
#ifndef GOLF_OPTIM_FIELD
#define GOLF_OPTIM_FIELD(...)
#endif
#ifndef GOLF_QUANT_FIELD
#define GOLF_QUANT_FIELD(...)
#endif
#ifndef GOLF_EVAL_FIELD
#define GOLF_EVAL_FIELD(...)
#endif

// ---- run and data
GOLF_RUN_FIELD(std::string, run_id, "", train, none, "run directory name under OUTPUT_DIR (\"\" → time-based)")
GOLF_RUN_FIELD(std::string, output_dir, "runs", train, none, "")
GOLF_RUN_FIELD(int64_t, seed, 1337, train | eval, none, "")  // eval: LoRA TTT initialization
// DATA_PATH: quant too (golf-pack --val); TOKENIZER_SHA256/KIND: model too (stored, golf-eval checks them)
GOLF_RUN_FIELD(std::string, data_path, "./data/datasets/fineweb10B_sp8192", data | train | quant | eval, none, "shard dir")
GOLF_RUN_FIELD(std::string, tokenizer_path, "./data/tokenizers/fineweb_8192_bpe.model", data | train | eval, none, "")
GOLF_RUN_FIELD(std::string, device, "auto", train | quant | eval, one_of("auto", "cpu", "cuda"), "auto | cpu | cuda")
GOLF_RUN_FIELD(std::string, tokenizer_sha256, "", data | model | train, none, "the tokenizer's identity, set by golf-train from TOKENIZER_PATH (artifact: golf-eval checks it)")
GOLF_RUN_FIELD(std::string, tokenizer_kind, "", data | model | train, none, "plain | caseops, set by golf-train with TOKENIZER_SHA256")

// ---- model: what Model(const ModelConfig&) reads, stored in the artifact unless train-only (see tests/reference/golf_model.py, the readable spec)
GOLF_MODEL_FIELD(int64_t, vocab_size, 8192, model | train, positive, "")
GOLF_MODEL_FIELD(int64_t, num_layers, 11, model | train, positive, "")
GOLF_MODEL_FIELD(int64_t, model_dim, 512, model | train, positive, "")
GOLF_MODEL_FIELD(int64_t, num_heads, 8, model | train, positive, "")
GOLF_MODEL_FIELD(int64_t, num_kv_heads, 4, model | train, positive, "")
GOLF_MODEL_FIELD(double, mlp_mult, 4.0, model | train, positive, "")
GOLF_MODEL_FIELD(double, tied_embed_init_std, 0.005, train, non_negative, "")
GOLF_MODEL_FIELD(double, rope_base, 10000.0, model | train, positive, "")
GOLF_MODEL_FIELD(int64_t, rope_dims, 16, model | train, positive, "rotated dims per head")
GOLF_MODEL_FIELD(double, qk_gain_init, 5.25, model | train, none, "")
GOLF_MODEL_FIELD(int64_t, ln_scale, 1, model | train, flag, "block inputs scaled by 1/sqrt(layer+1)")
GOLF_MODEL_FIELD(int64_t, xsa_last_n, 11, model | train, non_negative, "exclusive self-attention on the last N layers (≥ NUM_LAYERS: all)")
GOLF_MODEL_FIELD(int64_t, attn_out_gate_enabled, 1, model | train, flag, "y_h *= 2σ(W u[:GATE_WIDTH])")
GOLF_MODEL_FIELD(int64_t, gate_width, 12, model | train, positive, "input width of the attention and smear gates")
GOLF_MODEL_FIELD(int64_t, smear_gate_enabled, 1, model | train, flag, "")
GOLF_MODEL_FIELD(std::string, smear_input, "normed", model | train, one_of("normed", "raw"), "normed (PR #1880) | raw (R29)")
GOLF_MODEL_FIELD(int64_t, bos_token_id, 1, model | train, non_negative, "document start (smear mask, attention segments)")
GOLF_MODEL_FIELD(int64_t, smear_bos_mask, 1, model | train, flag, "0 lets SmearGate leak across BOS (the PR #1797 bug; tests only)")
GOLF_MODEL_FIELD(int64_t, skip_gates_enabled, 1, model | train, flag, "sigmoid-gated U-Net skips")
GOLF_MODEL_FIELD(int64_t, parallel_start_layer, 7, model | train, non_negative, "first parallel layer; 0 → no parallel layers (records)")
GOLF_MODEL_FIELD(std::string, parallel_mode, "two_lane", model | train, one_of("two_lane", "gptj", "none"), "two_lane (records) | gptj (PR #1880) | none")
GOLF_MODEL_FIELD(int64_t, num_loops, 2, model | train, non_negative, "extra visits of layers LOOP_START..LOOP_END")
GOLF_MODEL_FIELD(int64_t, loop_start, 3, model | train, none, "")
GOLF_MODEL_FIELD(int64_t, loop_end, 5, model | train, none, "")
GOLF_MODEL_FIELD(double, enable_looping_at, 0.35, train, closed(0, 1), "training fraction that switches recurrence on")
GOLF_MODEL_FIELD(double, logit_softcap, 15.0, model | train, positive, "")
GOLF_MODEL_FIELD(int64_t, train_seq_len, 2048, model | train, positive, "longest attention segment / dense row length")
GOLF_MODEL_FIELD(int64_t, doc_mask, 1, model | train, flag, "1 attention stops at BOS; 0 dense rows (PR #1880)")
GOLF_MODEL_FIELD(int64_t, sparse_attn_gate_enabled, 0, model | train, flag, "y_h *= σ(SCALE·(W u[:GATE_WIDTH])_h), 0.5 at init (R29)")
GOLF_MODEL_FIELD(double, sparse_attn_gate_init_std, 0.0, train, non_negative, "W ~ N(0, std²) at init (0 → zeros)")
GOLF_MODEL_FIELD(double, sparse_attn_gate_scale, 1.0, model | train, none, "multiplies the gate logits")

// ---- seed attention variants (model/variants.h; all off by default)
GOLF_MODEL_FIELD(int64_t, smat_use_s, 0, model | train, flag, "SMAT semantic bias λ·cos(W_s h_i, W_s h_j) on the attention logits")
GOLF_MODEL_FIELD(int64_t, smat_use_g, 0, model | train, flag, "SMAT value gate G_j = σ(w_g·h_j + μ·c_j + β) on V")
GOLF_MODEL_FIELD(int64_t, smat_dim, 0, model | train, non_negative, "width d_s of W_s (0 → head dim)")
GOLF_MODEL_FIELD(std::string, smat_centrality, "seq", model | train, one_of("seq", "count"), "divisor n_j of c_j: seq (TRAIN_SEQ_LEN) | count (j+1 in its segment)")
GOLF_MODEL_FIELD(std::string, smat_gonly_centrality, "keep", model | train, one_of("keep", "drop"), "without SMAT_USE_S: keep (W_s feeds c_j) | drop (no W_s, μ)")
GOLF_MODEL_FIELD(double, smat_beta_init, 3.0, train, none, "gate bias β at init (σ(3) ≈ 0.953)")
GOLF_MODEL_FIELD(double, smat_lambda_raw_init, 0.0, train, none, "λ = softplus(λ_raw) at init (0 → ln 2)")
// SMAT_ABLATION: an eval-time override of the model, checked against the artifact's settings
GOLF_MODEL_FIELD(std::string, smat_ablation, "none", eval, none, "eval-time override, comma-separated: none | lambda0 | no_s | random_s | g_mean | g_one")
GOLF_MODEL_FIELD(int64_t, value_residual, 0, model | train, flag, "layers ≥ 1 use v ← a·v0 + b·v, (a, b) init (0.5, 0.5) (PR #413)")
GOLF_MODEL_FIELD(int64_t, gated_attention, 0, model | train, flag, "y_h *= σ(W u + b) per head, W = 0, b = 4 (PR #413)")
GOLF_MODEL_FIELD(int64_t, bigram_hash, 0, model | train, flag, "add s·P·E[hash(prev, cur)] to the token embedding")
GOLF_MODEL_FIELD(int64_t, bigram_buckets, 4096, model | train, none, "BigramHash table rows (the last is reserved for t = 0 and BOS)")
GOLF_MODEL_FIELD(int64_t, bigram_dim, 128, model | train, none, "BigramHash table width (projected to MODEL_DIM unless equal)")
// MoA, mixture of attentions (model/moa.h; docs/reference/seed-techniques.md §4): off by default.
GOLF_MODEL_FIELD(int64_t, moa_enabled, 0, model | train, flag, "each block's attention becomes a router-mixed set of branches")
GOLF_MODEL_FIELD(std::string, moa_branches, "conv,mha,mqa,chan", model | train, none, "comma-separated subset of conv | mha | mqa | chan (mha required)")
GOLF_MODEL_FIELD(std::string, moa_metric, "l2", model | train, one_of("l2", "cosine", "diag_mahalanobis"), "metric-head logits −α·D: l2 | cosine | diag_mahalanobis")
GOLF_MODEL_FIELD(int64_t, moa_router_hidden, 128, model | train, positive, "width of the token-wise router r = GELU(W u + b)")
GOLF_MODEL_FIELD(double, moa_alpha_init, 1.0, train, positive, "metric scale α = softplus(α_raw) per head at init")
GOLF_MODEL_FIELD(int64_t, moa_bias_gate, 1, model | train, flag, "per-branch scalar gate σ(w·r + c), c = 3 at init")
GOLF_MODEL_FIELD(int64_t, moa_conv_kernel, 4, model | train, positive, "causal depthwise conv width (resets at BOS)")
GOLF_MODEL_FIELD(int64_t, moa_chan_mult, 2, model | train, positive, "channel-mix head hidden width, in MODEL_DIM")
GOLF_MODEL_FIELD(int64_t, moa_ball, 0, model | train, flag, "ball pruning: soft key mask −κ·softplus((‖k−o_h‖ − r_h)/τ)")
GOLF_MODEL_FIELD(double, moa_radius_init, 3.0, train, positive, "ball radius r_h = softplus(ρ_h) at init")
GOLF_MODEL_FIELD(double, moa_ball_kappa, 10.0, model | train, non_negative, "ball mask strength κ")
GOLF_MODEL_FIELD(double, moa_ball_tau, 0.1, model | train, positive, "ball mask softness τ")
// The training-only penalty:
GOLF_MODEL_FIELD(double, moa_ti_weight, 0.0, train, non_negative, "λ of the triangle-inequality penalty on metric keys (0 → off)")
GOLF_MODEL_FIELD(int64_t, moa_ti_triples, 64, train, positive, "key triples sampled per layer visit for the penalty")
GOLF_MODEL_FIELD(int64_t, head_gate_enabled, 0, model | train, flag, "y_h *= γ_h, a learned scalar per layer and head (γ = 1 at init)")

// ---- training
GOLF_TRAIN_FIELD(int64_t, iterations, 20000, train, positive, "step budget (also the schedule when no wall clock)")
GOLF_TRAIN_FIELD(double, max_wallclock_seconds, 600, train, non_negative, "0 → step-based schedule (ITERATIONS)")
GOLF_TRAIN_FIELD(double, gptq_reserve_seconds, 13, train, non_negative, "kept for Hessian collection")
GOLF_TRAIN_FIELD(int64_t, warmup_steps, 20, train, non_negative, "rolled-back warm-up steps per loop mode")
GOLF_TRAIN_FIELD(int64_t, train_batch_tokens, 786432, train, positive, "global tokens per optimizer step")
GOLF_TRAIN_FIELD(int64_t, grad_accum_steps, 0, train, non_negative, "0 → 8 / world size")
GOLF_TRAIN_FIELD(std::string, loader, "packing", train, one_of("packing", "coprime"), "packing (document packing) | coprime (coprime stride)")
GOLF_TRAIN_FIELD(int64_t, val_batch_tokens, 524288, train, positive, "")
GOLF_TRAIN_FIELD(int64_t, val_loss_every, 4000, train, non_negative, "0 → only at the end")
GOLF_TRAIN_FIELD(int64_t, val_max_tokens, 0, train | eval, non_negative, "0 → the whole validation split")
GOLF_TRAIN_FIELD(int64_t, train_log_every, 100, train, non_negative, "")
GOLF_TRAIN_FIELD(int64_t, checkpoint_every, 1000, train, non_negative, "steps between checkpoints (0 → off)")
GOLF_TRAIN_FIELD(int64_t, gptq_calibration_batches, 64, train, non_negative, "")
GOLF_TRAIN_FIELD(double, dist_timeout_seconds, 600, train | eval, positive, "collective timeout before a rank gives up")

// ---- optimizers
GOLF_OPTIM_FIELD(double, matrix_lr, 0.026, train, non_negative, "Muon")
GOLF_OPTIM_FIELD(double, scalar_lr, 0.02, train, non_negative, "AdamW, scalars and gates")
GOLF_OPTIM_FIELD(double, tied_embed_lr, 0.03, train, non_negative, "AdamW, embedding")
GOLF_OPTIM_FIELD(double, muon_wd, 0.095, train, non_negative, "")
GOLF_OPTIM_FIELD(double, adam_wd, 0.02, train, non_negative, "")
GOLF_OPTIM_FIELD(double, embed_wd, 0.085, train, non_negative, "")
GOLF_OPTIM_FIELD(double, beta1, 0.9, train, none, "")
GOLF_OPTIM_FIELD(double, beta2, 0.95, train, none, "")
GOLF_OPTIM_FIELD(double, adam_eps, 1e-8, train, positive, "")
GOLF_OPTIM_FIELD(double, muon_momentum, 0.97, train, none, "")
GOLF_OPTIM_FIELD(double, muon_momentum_warmup_start, 0.92, train, none, "")
GOLF_OPTIM_FIELD(int64_t, muon_momentum_warmup_steps, 1500, train, non_negative, "")
GOLF_OPTIM_FIELD(int64_t, muon_backend_steps, 5, train, positive, "Newton–Schulz iterations")
GOLF_OPTIM_FIELD(int64_t, muon_polar_express, 0, train, flag, "1 → per-iteration Polar Express coefficients")
GOLF_OPTIM_FIELD(int64_t, muon_row_normalize, 1, train, flag, "MuonEq-R")
GOLF_OPTIM_FIELD(double, grad_clip_norm, 0.3, train, non_negative, "")
GOLF_OPTIM_FIELD(double, ema_decay, 0.9965, train, half_open(0, 1), "")
GOLF_OPTIM_FIELD(double, warmdown_frac, 0.72, train, closed(0, 1), "")
GOLF_OPTIM_FIELD(double, min_lr, 0.0, train, non_negative, "floor of the LR multiplier")

// ---- quantization and packing (golf-pack)
GOLF_QUANT_FIELD(int64_t, matrix_bits, 6, quant, closed(2, 8), "attention and MLP matrices")
GOLF_QUANT_FIELD(int64_t, embed_bits, 7, quant, closed(2, 8), "the tied embedding")
GOLF_QUANT_FIELD(double, attn_clip_sigmas, 13.0, quant, positive, "SDClip k for attention matrices")
GOLF_QUANT_FIELD(double, mlp_clip_sigmas, 12.0, quant, positive, "SDClip k for MLP matrices")
GOLF_QUANT_FIELD(double, embed_clip_sigmas, 15.0, quant, positive, "SDClip k for the embedding")
GOLF_QUANT_FIELD(double, matrix_clip_sigmas, 12.85, quant, positive, "SDClip k for any other quantized matrix")
GOLF_QUANT_FIELD(double, hessian_clip_lambda, 0.0, quant, non_negative, "Hessian-aware SDClip (0: plain SDClip)")
GOLF_QUANT_FIELD(int64_t, gptq_enabled, 1, quant, flag, "0 rounds to nearest with the same scales")
GOLF_QUANT_FIELD(int64_t, passthrough_max_numel, 65536, quant, non_negative, "tensors this small are stored fp16")
GOLF_QUANT_FIELD(int64_t, shuffle_stride, 2, quant, positive, "byte shuffle before Brotli")
GOLF_QUANT_FIELD(int64_t, artifact_budget, 16000000, quant, positive, "bytes allowed for artifact + counted code")
GOLF_QUANT_FIELD(int64_t, gated_attn_quant_gate, 0, quant, flag, "attention gate weights stored int8 per row (QuantGate, R0419)")
GOLF_QUANT_FIELD(int64_t, lqer_enabled, 0, quant, flag, "low-rank correction of the quantization error (R0427L)")
GOLF_QUANT_FIELD(int64_t, lqer_rank, 4, quant, positive, "rank r of E ≈ A·B")
GOLF_QUANT_FIELD(int64_t, lqer_top_k, 3, quant, positive, "corrected tensors, largest ‖W − Ŵ‖_F first")
GOLF_QUANT_FIELD(int64_t, lqer_factor_bits, 4, quant, closed(2, 8), "bits of both factors in the symmetric per-row form")
GOLF_QUANT_FIELD(int64_t, lqer_asym_enabled, 1, quant, flag, "A int2 (one scale), B int4 per group of LQER_ASYM_GROUP")
GOLF_QUANT_FIELD(int64_t, lqer_asym_group, 64, quant, positive, "B values per fp16 scale (asymmetric form)")
GOLF_QUANT_FIELD(std::string, compressor, "golf", quant, one_of("brotli", "pergroup", "golf"), "golf (golf's coder, the default) | brotli | pergroup (records' R0427L scheme)")

// ---- evaluation and test-time training (golf-eval)
GOLF_EVAL_FIELD(int64_t, eval_seq_len, 2048, eval, positive, "rows of plain eval and sliding-window length")
GOLF_EVAL_FIELD(int64_t, eval_stride, 64, eval, positive, "sliding window stride (scored tokens per window)")
GOLF_EVAL_FIELD(int64_t, eval_batch_seqs, 32, eval, positive, "windows per forward")
GOLF_EVAL_FIELD(int64_t, ttt_enabled, 0, eval, flag, "score-first test-time training (golf-eval --ttt)")
GOLF_EVAL_FIELD(double, ttt_lr, 0.005, eval, non_negative, "SGD learning rate, cosine-decayed over chunks")
GOLF_EVAL_FIELD(double, ttt_momentum, 0.9, eval, non_negative, "SGD momentum (persists across chunks)")
GOLF_EVAL_FIELD(int64_t, ttt_epochs, 3, eval, non_negative, "passes over each chunk after scoring it")
GOLF_EVAL_FIELD(int64_t, ttt_chunk_tokens, 32768, eval, positive, "predictions per chunk")
GOLF_EVAL_FIELD(double, ttt_grad_clip, 1.0, eval, non_negative, "gradient-norm clip")
GOLF_EVAL_FIELD(int64_t, ttt_freeze_blocks, 0, eval, non_negative, "first N blocks not trained")
GOLF_EVAL_FIELD(double, eval_time_limit, 600, eval, non_negative, "seconds allowed on 8 GPUs (warning only)")
GOLF_EVAL_FIELD(int64_t, ttt_batch_seqs, 32, eval, positive, "rows per rank per SGD step of global TTT (records: 32)")
GOLF_EVAL_FIELD(std::string, ttt_mode, "sgd", eval, one_of("sgd", "lora", "phased"), "sgd (global score-first SGD) | lora | phased")
GOLF_EVAL_FIELD(int64_t, ttt_lora_rank, 96, eval, positive, "LoRA rank")
GOLF_EVAL_FIELD(double, ttt_lora_alpha, 144, eval, non_negative, "LoRA output scaled by alpha / rank")
GOLF_EVAL_FIELD(double, ttt_lora_lr, 1e-4, eval, non_negative, "AdamW learning rate of the LoRA")
GOLF_EVAL_FIELD(int64_t, ttt_chunk_size, 48, eval, positive, "predictions per LoRA chunk (score, then one step)")
GOLF_EVAL_FIELD(int64_t, ttt_eval_seq_len, 2048, eval, positive, "LoRA TTT context (last predictions of the document)")
GOLF_EVAL_FIELD(int64_t, ttt_batch_size, 64, eval, positive, "documents per LoRA batch")
GOLF_EVAL_FIELD(int64_t, ttt_grad_steps, 1, eval, non_negative, "AdamW steps per chunk")
GOLF_EVAL_FIELD(double, ttt_weight_decay, 1.0, eval, non_negative, "AdamW decoupled weight decay")
GOLF_EVAL_FIELD(double, ttt_beta1, 0.0, eval, half_open(0, 1), "AdamW beta1")
GOLF_EVAL_FIELD(double, ttt_beta2, 0.999, eval, half_open(0, 1), "AdamW beta2")
GOLF_EVAL_FIELD(int64_t, ttt_k_lora, 1, eval, flag, "LoRA on K (Q, V and the head always)")
GOLF_EVAL_FIELD(int64_t, ttt_o_lora, 1, eval, flag, "LoRA on the attention output projection")
GOLF_EVAL_FIELD(int64_t, ttt_mlp_lora, 1, eval, flag, "dim->dim LoRA beside each MLP")
GOLF_EVAL_FIELD(int64_t, ttt_warm_start_a, 0, eval, flag, "keep A across per-batch resets (not document-independent)")
GOLF_EVAL_FIELD(int64_t, phased_ttt_prefix_docs, 2000, eval, non_negative, "queue-order documents before the last phase")
GOLF_EVAL_FIELD(int64_t, phased_ttt_num_phases, 3, eval, positive, "global SGD phases over the prefix")
GOLF_EVAL_FIELD(double, global_ttt_lr, 0.001, eval, non_negative, "phased TTT's global SGD learning rate (cosine over chunks)")
GOLF_EVAL_FIELD(double, global_ttt_momentum, 0.9, eval, non_negative, "its SGD momentum")
GOLF_EVAL_FIELD(int64_t, global_ttt_chunk_tokens, 32768, eval, positive, "tokens per global SGD chunk")
GOLF_EVAL_FIELD(int64_t, global_ttt_epochs, 1, eval, non_negative, "passes over each chunk")

#undef GOLF_RUN_FIELD
#undef GOLF_MODEL_FIELD
#undef GOLF_TRAIN_FIELD
#undef GOLF_OPTIM_FIELD
#undef GOLF_QUANT_FIELD
#undef GOLF_EVAL_FIELD
