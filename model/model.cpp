#include "model/model.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn/init.h>

#include <cmath>
#include <limits>
#include <mutex>

#include "core/error.h"
#include "model/moa.h"
#include "model/ops/fused.h"
#include "model/ops/mix.h"
#include "model/ops/softcap_ce.h"
#include "model/variants.h"
#include "model/varlen.h"

namespace golf {

namespace {
using Weights = std::map<std::string, at::Tensor>;  // parameters cast to the compute dtype, per forward
std::string block(int i, const char* name) { return fmt::format("blocks.{}.{}", i, name); }
}  // namespace

// ---- free functions --------------------------------------------------------------------------
at::Tensor rms_norm(const at::Tensor& x) {
  const at::Tensor xf = x.to(at::kFloat);
  const double eps = std::numeric_limits<float>::epsilon();
  return (xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps)).to(x.scalar_type());
}

bool is_parallel_layer(const ModelConfig& cfg, int64_t i) {
  return cfg.parallel_mode != "none" && cfg.parallel_start_layer > 0 && i >= cfg.parallel_start_layer;
}

at::Tensor LoraPair::apply(const at::Tensor& x) const {
  const at::Tensor xa = at::bmm(x, a.to(x.scalar_type()).transpose(1, 2));  // (B, T, r)
  return at::bmm(xa, b.to(x.scalar_type()).transpose(1, 2)) * scale;       // (B, T, out)
}

std::pair<at::Tensor, at::Tensor> segments(const at::Tensor& tokens, const ModelConfig& cfg, int64_t seq_len_cut) {
  const int64_t B = tokens.size(0), T = tokens.size(1);
  const at::Tensor pos = at::arange(T, tokens.options().dtype(at::kLong)).expand({B, T});
  at::Tensor in_doc = pos;
  if (cfg.doc_mask) {
    const at::Tensor doc_start = (tokens == cfg.bos_token_id).logical_or(pos == 0);
    const at::Tensor start_pos = std::get<0>(at::cummax(at::where(doc_start, pos, at::zeros_like(pos)), 1));
    in_doc = pos - start_pos;
  }
  const at::Tensor in_seg = in_doc.remainder(seq_len_cut > 0 ? seq_len_cut : cfg.train_seq_len);
  return {(in_seg == 0).to(at::kLong).cumsum(1), in_seg};
}

namespace {
// Partial RoPE on the first `dims` dims of each head, half-split pairing, rotation by −θ.
// The cos/sin tables (B, T, 1, r/2) depend only on the positions: computed once per forward.
std::pair<at::Tensor, at::Tensor> rope_tables(const at::Tensor& pos, const ModelConfig& cfg, at::ScalarType dtype) {
  const int64_t r = cfg.rope_dims, half = r / 2;
  const at::Tensor inv_freq =
      at::pow(cfg.rope_base, at::arange(half, pos.options().dtype(at::kFloat)) * (-2.0 / static_cast<double>(r)));
  const at::Tensor ang = pos.to(at::kFloat).unsqueeze(-1) * inv_freq;  // (B, T, r/2)
  return {ang.cos().unsqueeze(2).to(dtype), ang.sin().unsqueeze(2).to(dtype)};
}
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, int64_t r) {
  const int64_t half = r / 2;
  const at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  const at::Tensor rest = x.narrow(-1, r, x.size(-1) - r);
  return at::cat({x1 * cos + x2 * sin, -x1 * sin + x2 * cos, rest}, -1);
}
}  // namespace

// ---- Hessians --------------------------------------------------------------------------------
void HessianCollector::add(const std::string& name, const at::Tensor& x) {
  const at::Tensor x2 = x.detach().reshape({-1, x.size(-1)}).to(at::kFloat);
  const at::Tensor xtx = x2.t().mm(x2);
  auto it = sums.find(name);
  if (it == sums.end()) sums.emplace(name, xtx);
  else it->second.add_(xtx);
  rows[name] += x2.size(0);
}

std::map<std::string, at::Tensor> HessianCollector::hessians(int64_t num_layers) const {
  std::map<std::string, at::Tensor> out;
  auto mean = [&](const std::string& key) {
    const auto it = sums.find(key);
    if (it == sums.end()) fail("no calibration activations were recorded for {}", key);
    return it->second / static_cast<double>(rows.at(key));
  };
  for (int i = 0; i < num_layers; ++i) {
    const at::Tensor qkv = mean(block(i, "attn.c_q.weight"));
    for (const char* m : {"attn.c_q.weight", "attn.c_k.weight", "attn.c_v.weight"}) out[block(i, m)] = qkv;
    for (const char* m : {"attn.proj.weight", "mlp.fc.weight", "mlp.proj.weight"}) out[block(i, m)] = mean(block(i, m));
  }
  out["tok_emb.weight"] = mean("tok_emb.weight");
  for (const auto& [key, _] : sums)  // variant matrices large enough to be quantized (SMAT W_s, BigramHash, …)
    if (!out.count(key)) out[key] = mean(key);
  return out;
}

// ---- construction ----------------------------------------------------------------------------
void Model::add_param(const std::string& name, at::Tensor value) {
  names_.push_back(name);
  params_.emplace(name, value.to(device_).requires_grad_(true));
}

Model::Model(const ModelConfig& cfg, at::Device device)
    : cfg_(cfg),
      device_(device),
      compute_dtype_(device.is_cuda() ? at::kBFloat16 : at::kFloat),
      fast_(fast_paths_from_env(device.is_cuda())) {
  // No validate() here: the tool that resolved or read the configuration validated it once.
  const int64_t L = cfg.num_layers, d = cfg.model_dim, H = cfg.num_heads;
  const int64_t kv = cfg.num_kv_heads * (d / H), F = static_cast<int64_t>(cfg.mlp_mult * static_cast<double>(d));
  // Initialised on the CPU generator whatever the device, so a seed gives the same weights everywhere.
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  add_param("tok_emb.weight", at::randn({cfg.vocab_size, d}, f32) * cfg.tied_embed_init_std);
  at::Tensor qo = at::zeros({2 * L, d, d}, f32), kvb = at::zeros({2 * L, kv, d}, f32);
  at::Tensor up = at::zeros({L, F, d}, f32), down = at::zeros({L, d, F}, f32);
  {
    at::NoGradGuard no_grad;
    for (int64_t i = 0; i < L; ++i) {  // Q, K, V, up orthogonal; O and down stay zero (identity blocks)
      torch::nn::init::orthogonal_(qo[i]);
      torch::nn::init::orthogonal_(kvb[i]);
      torch::nn::init::orthogonal_(kvb[L + i]);
      torch::nn::init::orthogonal_(up[i]);
    }
  }
  add_param("qo_bank", qo);
  add_param("kv_bank", kvb);
  add_param("mlp_up_bank", up);
  add_param("mlp_down_bank", down);
  for (int i = 0; i < L; ++i) {
    if (!cfg.moa_enabled) add_param(block(i, "attn.q_gain"), at::full({H}, cfg.qk_gain_init, f32));
    add_param(block(i, "attn_scale"), at::ones({d}, f32));
    add_param(block(i, "mlp_scale"), at::ones({d}, f32));
    add_param(block(i, "resid_mix"), at::stack({at::ones({d}, f32), at::zeros({d}, f32)}));
    if (cfg.attn_out_gate_enabled) add_param(block(i, "attn.attn_gate_proj.weight"), at::zeros({H, cfg.gate_width}, f32));
    if (cfg.sparse_attn_gate_enabled)  // R29's attn_gate_w (H, GATE_WIDTH): zeros, or N(0, std²)
      add_param(block(i, "attn.attn_gate_w"), cfg.sparse_attn_gate_init_std > 0
                                                  ? at::randn({H, cfg.gate_width}, f32) * cfg.sparse_attn_gate_init_std
                                                  : at::zeros({H, cfg.gate_width}, f32));
    add_variant_params(i);
    if (cfg.moa_enabled) add_moa_params(i);
  }
  const int S = num_skip_rows();
  add_param("skip_weights", at::ones({S, d}, f32));
  if (cfg.skip_gates_enabled) add_param("skip_gates", at::zeros({S, d}, f32));
  if (cfg.parallel_mode == "two_lane") {
    add_param("parallel_post_lambdas", at::ones({L, 2, 2}, f32));
    add_param("parallel_resid_lambdas", at::full({L, 2}, 1.1, f32));
  }
  variant_cache_ = std::make_shared<VariantCache>();
  if (variants::smat_ablation_has(cfg, "random_s"))
    for (int i = 0; i < L; ++i)
      smat_random_projections_.push_back(
          variants::smat_random_projection(smat_dim(), d, i).to(device_, compute_dtype_));
  if (cfg.smear_gate_enabled) {
    add_param("smear_gate.weight", at::zeros({1, cfg.gate_width}, f32));
    add_param("smear_lambda", at::zeros({1}, f32));
  }
  if (cfg.bigram_hash) {  // E = 0 with P ≠ 0 and s ≠ 0, so E gets a gradient (the dead-init pitfall)
    add_param("bigram.embed.weight", at::zeros({cfg.bigram_buckets, cfg.bigram_dim}, f32));
    if (cfg.bigram_dim != d) {
      at::Tensor proj = at::empty({d, cfg.bigram_dim}, f32);
      {
        at::NoGradGuard no_grad;
        torch::nn::init::orthogonal_(proj);
        proj.mul_(1.0 / std::sqrt(2.0 * static_cast<double>(L)));
      }
      add_param("bigram.proj.weight", proj);
    }
    add_param("bigram.scale", at::full({1}, 0.05, f32));
  }
}

// MoA's triangle-penalty indices by (seed, B·T) on the model's device: drawn once on the CPU by
// the same seeded generator (so every device gets the same triples), then reused by every forward
// of that shape. Guarded, as forwards of one model may run on several threads.
struct Model::VariantCache {
  std::mutex mutex;
  std::map<std::pair<uint64_t, int64_t>, at::Tensor> triangle_indices;
};

// Per-layer parameters of the seed variants (names and inits: model/variants.h).
void Model::add_variant_params(int i) {
  const int64_t d = cfg_.model_dim, H = cfg_.num_heads;
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  if (has_smat_ws()) {
    at::Tensor ws = at::empty({smat_dim(), d}, f32);
    {
      at::NoGradGuard no_grad;
      torch::nn::init::orthogonal_(ws);
    }
    add_param(block(i, "attn.smat_ws.weight"), ws);
  }
  if (cfg_.smat_use_s) add_param(block(i, "attn.smat_lambda_raw"), at::full({1}, cfg_.smat_lambda_raw_init, f32));
  if (cfg_.smat_use_g) {
    add_param(block(i, "attn.smat_gate.weight"), at::zeros({1, d}, f32));
    add_param(block(i, "attn.smat_gate.bias"), at::full({1}, cfg_.smat_beta_init, f32));
    if (has_smat_ws()) add_param(block(i, "attn.smat_mu"), at::zeros({1}, f32));
  }
  if (cfg_.value_residual && i > 0) add_param(block(i, "attn.vr_lambda"), at::full({2}, 0.5, f32));
  if (cfg_.gated_attention) {
    add_param(block(i, "attn.attn_gate.weight"), at::zeros({H, d}, f32));
    add_param(block(i, "attn.attn_gate.bias"), at::full({H}, 4.0, f32));
  }
  if (cfg_.head_gate_enabled) add_param(block(i, "attn.head_gate"), at::ones({H}, f32));
}

// Per-layer MoA parameters (names and inits: model/moa.h).
void Model::add_moa_params(int i) {
  const int64_t d = cfg_.model_dim, H = cfg_.num_heads, Dh = d / H, R = cfg_.moa_router_hidden;
  const auto nb = static_cast<int64_t>(moa::branches(cfg_).size());
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  auto name = [&](const std::string& n) { return fmt::format("blocks.{}.moa.{}", i, n); };
  auto orthogonal = [&](int64_t rows, int64_t cols) {
    at::Tensor t = at::empty({rows, cols}, f32);
    at::NoGradGuard no_grad;
    torch::nn::init::orthogonal_(t);
    return t;
  };
  add_param(name("router_fc.weight"), orthogonal(R, d));
  add_param(name("router_fc.bias"), at::zeros({R}, f32));
  add_param(name("router_out.weight"), at::zeros({nb, R}, f32));  // π uniform at init
  add_param(name("router_out.bias"), at::zeros({nb}, f32));
  add_param(name("film.weight"), at::zeros({nb * 2 * d, R}, f32));  // FiLM the identity at init
  if (cfg_.moa_bias_gate) {
    add_param(name("bias_gate.weight"), at::zeros({nb, R}, f32));
    add_param(name("bias_gate.bias"), at::full({nb}, 3.0, f32));
  }
  if (moa::has_branch(cfg_, "conv")) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(cfg_.moa_conv_kernel));  // Conv1d's default (fan-in k)
    add_param(name("conv.weight"), (at::rand({d, cfg_.moa_conv_kernel}, f32) * 2 - 1) * bound);
    add_param(name("conv_proj.weight"), at::zeros({d, d}, f32));
  }
  if (moa::has_branch(cfg_, "chan")) {
    add_param(name("chan_fc.weight"), orthogonal(cfg_.moa_chan_mult * d, d));
    add_param(name("chan_proj.weight"), at::zeros({d, cfg_.moa_chan_mult * d}, f32));
  }
  if (moa::has_branch(cfg_, "mqa")) {
    add_param(name("mqa_q.weight"), orthogonal(d, d));
    add_param(name("mqa_kv.weight"), orthogonal(2 * Dh, d));
    add_param(name("mqa_o.weight"), at::zeros({d, d}, f32));
  }
  for (const std::string p : {"mha", "mqa"}) {
    if (!moa::has_branch(cfg_, p)) continue;
    add_param(name(p + "_alpha_raw"), at::full({H}, moa::inverse_softplus(cfg_.moa_alpha_init), f32));
    if (cfg_.moa_metric == "diag_mahalanobis")
      add_param(name(p + "_metric_w_raw"), at::full({H, Dh}, moa::inverse_softplus(1.0), f32));
    if (cfg_.moa_ball) {
      add_param(name(p + "_ball_origin"), at::zeros({H, Dh}, f32));
      add_param(name(p + "_ball_rho"), at::full({H}, moa::inverse_softplus(cfg_.moa_radius_init), f32));
    }
  }
}

bool Model::has_smat_ws() const {
  return cfg_.smat_use_s || (cfg_.smat_use_g && cfg_.smat_gonly_centrality == "keep");
}
int64_t Model::smat_dim() const { return cfg_.smat_dim > 0 ? cfg_.smat_dim : cfg_.model_dim / cfg_.num_heads; }

at::Tensor& Model::param(const std::string& name) {
  const auto it = params_.find(name);
  if (it == params_.end()) fail("model has no parameter {}", name);
  return it->second;
}
const at::Tensor& Model::param(const std::string& name) const { return const_cast<Model*>(this)->param(name); }

std::map<std::string, at::Tensor> Model::state() const { return params_; }

void Model::load_state(const std::map<std::string, at::Tensor>& tensors) {
  at::NoGradGuard no_grad;
  for (const auto& name : names_) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) fail("weights lack parameter {}", name);
    at::Tensor& p = params_.at(name);
    if (it->second.sizes() != p.sizes())
      fail("parameter {}: weights have shape {}, the model {}", name, fmt::join(it->second.sizes(), "x"),
           fmt::join(p.sizes(), "x"));
    p.copy_(it->second);
  }
  for (const auto& [name, _] : tensors)
    if (!params_.count(name)) fail("weights hold {}, which this model configuration does not have", name);
}

int64_t Model::num_params() const {
  int64_t n = 0;
  for (const auto& [_, p] : params_) n += p.numel();
  return n;
}

std::pair<std::vector<int>, std::vector<int>> Model::visit_order(bool looping) const {
  std::vector<int> layers;
  for (int i = 0; i < cfg_.num_layers; ++i) {
    layers.push_back(i);
    if (looping && cfg_.num_loops > 0 && i == cfg_.loop_end)  // repeat loop_start..loop_end
      for (int r = 0; r < cfg_.num_loops; ++r)
        for (int j = static_cast<int>(cfg_.loop_start); j <= cfg_.loop_end; ++j) layers.push_back(j);
  }
  const auto half = static_cast<std::ptrdiff_t>(layers.size() / 2);
  return {{layers.begin(), layers.begin() + half}, {layers.begin() + half, layers.end()}};
}

int Model::num_skip_rows() const {
  const auto [enc, dec] = visit_order(cfg_.num_loops > 0);
  return static_cast<int>(std::min(enc.size(), dec.size()));
}

void Model::set_fast_paths(const FastPaths& f) {
  fast_ = f;
  if (!device_.is_cuda() && (f.attn == AttnBackend::flash || f.attn == AttnBackend::cudnn)) fast_.attn = AttnBackend::sdpa;
}

at::Tensor Model::w(const std::string& name) const { return param(name).to(compute_dtype_); }
at::Tensor Model::bank(const std::string& name, int64_t index, const Pass& s) const {
  // GOLF_BANK_UNBIND: a view of the bank cast once per forward, so backward stacks one bank-sized
  // gradient per forward instead of a zero-filled bank (select_backward) per use.
  const auto it = s.bank_views.find(name);
  if (it != s.bank_views.end()) return it->second[static_cast<size_t>(index)];
  return param(name)[index].to(compute_dtype_);
}

at::Tensor Model::rms(const at::Tensor& x) const { return fast_.fused_ops ? ops::rms_norm_fused(x) : rms_norm(x); }

at::Tensor Model::rope(const at::Tensor& x, const Pass& s) const {
  if (x.scalar_type() == s.cos.scalar_type()) return apply_rope(x, s.cos, s.sin, cfg_.rope_dims);
  return apply_rope(x, s.cos.to(x.scalar_type()), s.sin.to(x.scalar_type()), cfg_.rope_dims);
}

Model::Pass Model::make_pass(const at::Tensor& tokens, const ForwardOptions& options, const ForwardProbes* probes) const {
  Pass s;
  if (probes) s.probes = *probes;
  s.seg_len = options.seq_len_cut > 0 ? options.seq_len_cut : cfg_.train_seq_len;
  std::tie(s.seg, s.pos) = segments(tokens, cfg_, s.seg_len);
  std::tie(s.cos, s.sin) = rope_tables(s.pos, cfg_, compute_dtype_);
  if (fast_.attn != AttnBackend::sdpa) {
    // Given by the caller (computed on the CPU side), or computed here from a host copy of the tokens:
    // that fallback is the forward's only device→host read (a sync on CUDA, refused by graph
    // capture); golf-train, validation, calibration and golf-eval all pass cu_seqlens.
    const at::Tensor& given = options.cu_seqlens;
    const at::Tensor cu = given.defined() ? given : varlen_segments(tokens.cpu(), cfg_, 64, s.seg_len).cu_seqlens;
    const bool in_place = cu.device() == tokens.device() && cu.scalar_type() == at::kInt;  // nothing to copy
    s.cu_seqlens = in_place ? cu : cu.to(tokens.device(), at::kInt, /*non_blocking=*/true);
    s.max_len = std::min(tokens.size(1), s.seg_len);
  }
  if (fast_.bank_unbind)
    for (const char* b : {"qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank"})
      s.bank_views[b] = param(b).to(compute_dtype_).unbind(0);
  return s;
}

// ---- forward ---------------------------------------------------------------------------------
at::Tensor Model::embed(const at::Tensor& tokens, const Pass& s) const {
  const int64_t T = tokens.size(1);
  at::Tensor e = at::embedding(w("tok_emb.weight"), tokens);  // (B, T, d)
  if (cfg_.bigram_hash) e = e + bigram(tokens, s);
  const bool smear = cfg_.smear_gate_enabled;
  if (!smear || cfg_.smear_input == "normed") e = rms(e);
  if (smear) {
    // g_t = λ σ(w · e_t[:12]); zero at t = 0 and wherever the current token is BOS, so a document
    // never takes in the last token of the one before it.
    at::Tensor g = w("smear_lambda") * at::sigmoid(at::matmul(e.narrow(-1, 0, cfg_.gate_width), w("smear_gate.weight").t()));
    if (cfg_.smear_bos_mask) g = g * (tokens != cfg_.bos_token_id).unsqueeze(-1).to(g.scalar_type());  // (B, T, 1)
    g = at::cat({at::zeros_like(g.narrow(1, 0, 1)), g.narrow(1, 1, T - 1)}, 1);
    if (fast_.fused_mix) {  // GOLF_FUSED_MIX: the shift and the add as one op (model/ops/mix.h)
      e = ops::smear(e, g);
    } else {
      const at::Tensor prev = at::cat({at::zeros_like(e.narrow(1, 0, 1)), e.narrow(1, 0, T - 1)}, 1);
      e = e + g * prev;
    }
    if (cfg_.smear_input == "raw") e = rms(e);
  }
  return e;
}

at::Tensor Model::bigram(const at::Tensor& tokens, const Pass& pass) const {
  HessianCollector* hessians = pass.probes.hessians;
  // b_t = s · P · E[id_t] (B, T, d); P is absent when BIGRAM_DIM = MODEL_DIM.
  const at::Tensor ids = variants::bigram_hash_ids(tokens, cfg_.bigram_buckets, cfg_.bos_token_id);
  at::Tensor b = at::embedding(w("bigram.embed.weight"), ids);  // (B, T, BIGRAM_DIM)
  const bool proj = cfg_.bigram_dim != cfg_.model_dim;
  if (hessians) {
    // Only matrices over PASSTHROUGH_MAX_NUMEL are quantized and need one. A row of E enters the
    // residual as s·P·E[id]: its column errors are weighted by (sP)ᵀ(sP) (sI without P).
    const at::Tensor s = param("bigram.scale").detach();
    if (param("bigram.embed.weight").numel() > hessians->passthrough_max_numel)
      hessians->add("bigram.embed.weight",
                    proj ? param("bigram.proj.weight").detach() * s : at::eye(cfg_.bigram_dim, s.options()) * s);
    if (proj && param("bigram.proj.weight").numel() > hessians->passthrough_max_numel) hessians->add("bigram.proj.weight", b);
  }
  if (proj) b = at::matmul(b, w("bigram.proj.weight").t());
  return w("bigram.scale") * b;
}

// G_j = σ(w_g·u_j + μ c_j + β) (B, T, 1), or its SMAT_ABLATION replacement.
at::Tensor Model::smat_gate(int i, const at::Tensor& u, const at::Tensor& uhat, const Pass& s) const {
  auto ablated = [&](std::string_view item) { return variants::smat_ablation_has(cfg_, item); };
  auto* const gate_sums = s.probes.smat_gate_sums;  // measuring the real gate: no ablation
  if (ablated("g_one") && !gate_sums) return at::ones({u.size(0), u.size(1), 1}, u.options());
  if (ablated("g_mean") && !gate_sums) {
    if (static_cast<int64_t>(smat_gate_means_.size()) != cfg_.num_layers)
      fail("SMAT_ABLATION=g_mean needs the per-layer gate means: call Model::calibrate_smat_gate_means first");
    return at::full({u.size(0), u.size(1), 1}, smat_gate_means_[static_cast<size_t>(i)], u.options());
  }
  at::Tensor z = at::matmul(u, w(block(i, "attn.smat_gate.weight")).t()) + w(block(i, "attn.smat_gate.bias"));
  if (uhat.defined() && !ablated("no_s"))  // c_j, by the running sum (fp32)
    z = z + w(block(i, "attn.smat_mu")) * variants::smat_centrality(uhat, s.pos, cfg_).unsqueeze(-1).to(z.scalar_type());
  const at::Tensor g = at::sigmoid(z);
  if (gate_sums) {
    // One host read per layer visit, in calibration only (SMAT_ABLATION=g_mean: a few batches, once
    // per run; training and scoring forwards never pass the probe). Kept: a device-side sum would
    // change ForwardProbes' type in model/model.h, which every stage includes, for no gain there.
    auto& [sum, count] = (*gate_sums)[static_cast<size_t>(i)];
    sum += g.detach().to(at::kDouble).sum().item<double>();
    count += g.numel();
  }
  return g;
}

const std::vector<double>& Model::calibrate_smat_gate_means(const std::vector<at::Tensor>& batches, bool looping) {
  if (!cfg_.smat_use_g) fail("calibrate_smat_gate_means: the model has no SMAT value gate (SMAT_USE_G=0)");
  at::NoGradGuard no_grad;
  std::vector<std::pair<double, int64_t>> sums(static_cast<size_t>(cfg_.num_layers), {0.0, 0});
  const ForwardProbes probes{.smat_gate_sums = &sums};
  for (const auto& tokens : batches) hidden(tokens.to(device_), looping, &probes);
  smat_gate_means_.clear();
  for (const auto& [sum, count] : sums) smat_gate_means_.push_back(count ? sum / static_cast<double>(count) : 1.0);
  return smat_gate_means_;
}

at::Tensor Model::linear(const std::string& name, const at::Tensor& x, const Pass& s) const {
  if (s.probes.hessians && param(name).numel() > s.probes.hessians->passthrough_max_numel) s.probes.hessians->add(name, x);
  return at::matmul(x, w(name).t());
}

at::Tensor Model::metric_attention(int i, const std::string& branch, const at::Tensor& q, const at::Tensor& k,
                                   const at::Tensor& v, const Pass& s) const {
  // One key head per query head (the ball and the Mahalanobis weights are per query head), in
  // fp32: the folded −α‖k‖² column would lose the logits' precision in bf16.
  const int64_t H = q.size(2), Dh = q.size(3), group = H / k.size(2);
  auto p = [&](const std::string& n) { return param(fmt::format("blocks.{}.moa.{}_{}", i, branch, n)); };
  const at::Tensor qf = q.to(at::kFloat), kf = k.repeat_interleave(group, 2).to(at::kFloat);
  const at::Tensor vf = v.repeat_interleave(group, 2).to(at::kFloat);
  const at::Tensor alpha = at::softplus(p("alpha_raw"));
  const at::Tensor wd = cfg_.moa_metric == "diag_mahalanobis" ? at::softplus(p("metric_w_raw")) : at::Tensor();
  at::Tensor bias;
  if (cfg_.moa_ball)
    bias = moa::ball_bias(kf, p("ball_origin"), at::softplus(p("ball_rho")), cfg_.moa_ball_kappa, cfg_.moa_ball_tau);
  if (auto* penalties = s.probes.moa_triangle_penalties) {
    const uint64_t seed = 0x7E1A0000ULL + 2 * static_cast<uint64_t>(i) + (branch == "mqa");
    at::Tensor idx;
    {
      const std::lock_guard<std::mutex> lock(variant_cache_->mutex);
      at::Tensor& cached = variant_cache_->triangle_indices[{seed, kf.size(0) * kf.size(1)}];
      if (!cached.defined()) cached = moa::triangle_indices(kf.size(0) * kf.size(1), cfg_.moa_ti_triples, seed).to(kf.device());
      idx = cached;
    }
    penalties->push_back(moa::triangle_penalty_at(kf, cfg_.moa_metric, wd, idx));
  }
  const auto [qm, km] = moa::metric_fold(qf, kf, alpha, cfg_.moa_metric, wd, bias);  // head dim Dh + 1
  const at::Tensor y = segment_attention(qm, km, at::constant_pad_nd(vf, {0, 1}), s.seg, s.seg_len, 1.0);
  return y.narrow(-1, 0, Dh).to(q.scalar_type());
}

at::Tensor Model::moa_routing(int i, const at::Tensor& u) const {
  auto name = [&](const char* n) { return fmt::format("blocks.{}.moa.{}", i, n); };
  const at::Tensor r = at::gelu(at::matmul(u, w(name("router_fc.weight")).t()) + w(name("router_fc.bias")));
  return at::softmax(at::matmul(r, w(name("router_out.weight")).t()) + w(name("router_out.bias")), -1);
}

// Σ_b π_b · g_b · ((1 + γ_b) ⊙ o_b + β_b) over the branches (model/moa.h).
at::Tensor Model::moa_mixer(int i, const at::Tensor& u, const Pass& s, at::Tensor& v_first) const {
  const int64_t B = u.size(0), T = u.size(1), d = u.size(2), H = cfg_.num_heads, Dh = d / H;
  auto name = [&](const char* n) { return fmt::format("blocks.{}.moa.{}", i, n); };
  const std::vector<std::string> branches = moa::branches(cfg_);
  const auto nb = static_cast<int64_t>(branches.size());
  const at::Tensor r = at::gelu(linear(name("router_fc.weight"), u, s) + w(name("router_fc.bias")));  // (B, T, R)
  const at::Tensor pi = at::softmax(linear(name("router_out.weight"), r, s) + w(name("router_out.bias")), -1);
  const at::Tensor film = linear(name("film.weight"), r, s).view({B, T, nb, 2, d});
  at::Tensor weight = pi;  // (B, T, nb)
  if (cfg_.moa_bias_gate)
    weight = weight * at::sigmoid(linear(name("bias_gate.weight"), r, s) + w(name("bias_gate.bias")));
  at::Tensor out;
  for (int64_t b = 0; b < nb; ++b) {
    const std::string& branch = branches[static_cast<size_t>(b)];
    at::Tensor o;
    if (branch == "conv") {
      o = linear(name("conv_proj.weight"), moa::local_conv(u, w(name("conv.weight")), s.pos), s);
    } else if (branch == "mha") {
      o = attention(i, u, s, v_first);
    } else if (branch == "mqa") {
      const at::Tensor q = linear(name("mqa_q.weight"), u, s).view({B, T, H, Dh});
      const at::Tensor kv = linear(name("mqa_kv.weight"), u, s).view({B, T, 2, Dh});
      const at::Tensor k = kv.select(2, 0).unsqueeze(2), v = kv.select(2, 1).unsqueeze(2);  // (B, T, 1, Dh)
      const at::Tensor y = metric_attention(i, "mqa", rope(q, s), rope(k, s), v, s);
      o = linear(name("mqa_o.weight"), y.reshape({B, T, d}), s);
    } else {  // chan
      o = linear(name("chan_proj.weight"), at::gelu(linear(name("chan_fc.weight"), u, s)), s);
    }
    const at::Tensor f = film.select(2, b);  // (B, T, 2, d)
    const at::Tensor term = weight.narrow(-1, b, 1) * ((1 + f.select(2, 0)) * o + f.select(2, 1));
    out = out.defined() ? out + term : term;
  }
  return out;
}

at::Tensor Model::mlp(int i, const at::Tensor& u, const Pass& s, const LoraVisit* lora) const {
  const at::Tensor pre = at::matmul(u, bank("mlp_up_bank", i, s).t());  // (B, T, F)
  const at::Tensor h = fast_.fused_ops ? ops::leaky_relu_sq(pre) : ops::leaky_relu_sq_reference(pre);
  if (HessianCollector* hessians = s.probes.hessians) {
    hessians->add(block(i, "mlp.fc.weight"), u);
    hessians->add(block(i, "mlp.proj.weight"), h);
  }
  const at::Tensor out = at::matmul(h, bank("mlp_down_bank", i, s).t());
  return lora && lora->mlp.defined() ? out + lora->mlp.apply(u) : out;
}

at::Tensor Model::hidden(const at::Tensor& tokens, bool looping, const ForwardProbes* probes,
                         const ForwardOptions& options) const {
  const Pass pass = make_pass(tokens, options, probes);
  // Test-time LoRA: visit n (encoder then decoder order) uses options.lora->visits[n].
  const LoraVisit* lora = nullptr;
  int visit = 0;
  auto next_visit = [&] {
    if (options.lora) {
      if (visit >= static_cast<int>(options.lora->visits.size()))
        fail("LoRA deltas for {} layer visits, but the forward makes more", options.lora->visits.size());
      lora = &options.lora->visits[static_cast<size_t>(visit)];
    }
    ++visit;
  };
  if (options.lora && cfg_.moa_enabled) fail("test-time LoRA is not available with MOA_ENABLED=1");
  const at::Tensor x0 = embed(tokens, pass);
  at::Tensor x = x0;
  at::Tensor v_first;  // VALUE_RESIDUAL's v0
  auto attn = [&](int i, const at::Tensor& u) {
    return cfg_.moa_enabled ? moa_mixer(i, u, pass, v_first) : attention(i, u, pass, v_first, lora);
  };
  auto ln = [&](int i) { return cfg_.ln_scale ? 1.0 / std::sqrt(i + 1.0) : 1.0; };
  // GOLF_FUSED_MIX: each residual / lane / skip mix a ⊙ x + b ⊙ y as one op (model/ops/mix.h).
  const bool fused = fast_.fused_mix;
  auto attn_in = [&](int i, const at::Tensor& lane) {  // x_in = m0 ⊙ x + m1 ⊙ x0
    const at::Tensor m = w(block(i, "resid_mix"));
    if (fused) return ops::residual_mix(lane, m[0], x0, m[1]);
    return m[0] * lane + m[1] * x0;
  };
  auto sequential = [&](int i, const at::Tensor& x) {
    const at::Tensor x_in = attn_in(i, x);
    if (fused) {
      const at::Tensor x1 = ops::residual_mix(x_in, {}, attn(i, rms(x_in) * ln(i)), w(block(i, "attn_scale")));
      return ops::residual_mix(x1, {}, mlp(i, rms(x1) * ln(i), pass, lora), w(block(i, "mlp_scale")));
    }
    const at::Tensor x1 = x_in + w(block(i, "attn_scale")) * attn(i, rms(x_in) * ln(i));
    return x1 + w(block(i, "mlp_scale")) * mlp(i, rms(x1) * ln(i), pass, lora);
  };
  auto gptj = [&](int i, const at::Tensor& x) {
    const at::Tensor x_in = attn_in(i, x);
    const at::Tensor u = rms(x_in) * ln(i);
    if (fused) {
      const at::Tensor x1 = ops::residual_mix(x_in, {}, attn(i, u), w(block(i, "attn_scale")));
      return ops::residual_mix(x1, {}, mlp(i, u, pass, lora), w(block(i, "mlp_scale")));
    }
    return x_in + w(block(i, "attn_scale")) * attn(i, u) +
           w(block(i, "mlp_scale")) * mlp(i, u, pass, lora);
  };
  auto inject = [&](int j, const at::Tensor& x, const at::Tensor& skip) {
    const at::Tensor ws = w("skip_weights")[j];
    if (!cfg_.skip_gates_enabled) return fused ? ops::residual_mix(x, {}, skip, ws) : x + ws * skip;
    const at::Tensor s = at::sigmoid(w("skip_gates")[j]);
    if (fused) return ops::residual_mix(x, s, skip, (1 - s) * ws);
    return s * x + (1 - s) * (ws * skip);
  };

  const auto [enc, dec] = visit_order(looping);
  const int S = num_skip_rows();
  std::vector<at::Tensor> skips;
  std::vector<at::Tensor> lanes;  // empty until the first two-lane layer
  for (const int i : enc) {
    next_visit();
    x = sequential(i, x);
    skips.push_back(x);
  }
  for (size_t j = 0; j < dec.size(); ++j) {
    const int i = dec[j];
    next_visit();
    const bool parallel = is_parallel_layer(cfg_, i);
    // The records create the two lanes from x first, then inject this visit's skip into lane 0
    // only: the MLP lane of the first two-lane visit never reads the skip.
    if (parallel && cfg_.parallel_mode == "two_lane" && lanes.empty()) lanes = {x, x};
    if (static_cast<int>(j) < S && !skips.empty()) {
      const at::Tensor skip = skips.back();
      skips.pop_back();
      if (lanes.empty()) x = inject(static_cast<int>(j), x, skip);
      else lanes[0] = inject(static_cast<int>(j), lanes[0], skip);
    }
    if (parallel && cfg_.parallel_mode == "two_lane" && fused) {
      // lane_k ← ρ_k lane_k + (π_ak s_a) ⊙ attn + (π_fk s_f) ⊙ mlp: the plain branch's sums, the
      // scales folded into the (d) coefficients.
      const at::Tensor ya = attn(i, rms(attn_in(i, lanes[0])) * ln(i));
      const at::Tensor yf = mlp(i, rms(lanes[1]) * ln(i), pass, lora);
      const at::Tensor sa = w(block(i, "attn_scale")), sf = w(block(i, "mlp_scale"));
      const at::Tensor rho = w("parallel_resid_lambdas")[i], pi = w("parallel_post_lambdas")[i];
      auto lane = [&](int k) {
        const at::Tensor with_attn = ops::residual_mix(lanes[static_cast<size_t>(k)], rho[k], ya, pi[0][k] * sa);
        return ops::residual_mix(with_attn, {}, yf, pi[1][k] * sf);
      };
      lanes = {lane(0), lane(1)};
    } else if (parallel && cfg_.parallel_mode == "two_lane") {
      const at::Tensor a = w(block(i, "attn_scale")) * attn(i, rms(attn_in(i, lanes[0])) * ln(i));
      const at::Tensor f = w(block(i, "mlp_scale")) * mlp(i, rms(lanes[1]) * ln(i), pass, lora);
      const at::Tensor rho = w("parallel_resid_lambdas")[i], pi = w("parallel_post_lambdas")[i];  // (2), (2 src, 2 dst)
      lanes = {rho[0] * lanes[0] + pi[0][0] * a + pi[1][0] * f, rho[1] * lanes[1] + pi[0][1] * a + pi[1][1] * f};
    } else if (parallel) {
      x = gptj(i, x);
    } else {
      if (!lanes.empty()) fail("layer {} is sequential but follows the two-lane parallel region", i);
      x = sequential(i, x);
    }
  }
  if (!lanes.empty()) x = 0.5 * (lanes[0] + lanes[1]);
  return rms(x);
}

at::Tensor Model::logits(const at::Tensor& tokens, bool looping, const ForwardProbes* probes,
                         const ForwardOptions& options) const {
  const at::Tensor h = hidden(tokens, looping, probes, options);
  if (probes && probes->hessians) probes->hessians->add("tok_emb.weight", h);
  at::Tensor z = at::matmul(h, w("tok_emb.weight").t());  // (B, T, V)
  if (options.lora && options.lora->head.defined()) z = z + options.lora->head.apply(h);
  return cfg_.logit_softcap * at::tanh(z.to(at::kFloat) / cfg_.logit_softcap);
}

at::Tensor Model::token_losses(const at::Tensor& tokens, const at::Tensor& targets, bool looping,
                               const ForwardProbes* probes, const ForwardOptions& options) const {
  const at::Tensor h = hidden(tokens, looping, probes, options);
  if (probes && probes->hessians) probes->hessians->add("tok_emb.weight", h);
  at::Tensor z = at::matmul(h, w("tok_emb.weight").t());  // (B, T, V)
  if (options.lora && options.lora->head.defined()) z = z + options.lora->head.apply(h);
  const int64_t V = z.size(-1);
  return ops::softcap_cross_entropy(z.reshape({-1, V}), targets.reshape({-1}), cfg_.logit_softcap).view(targets.sizes());
}

at::Tensor Model::loss(const at::Tensor& tokens, const at::Tensor& targets, bool looping,
                       const ForwardOptions& options) const {
  if (!(cfg_.moa_enabled && cfg_.moa_ti_weight > 0)) return token_losses(tokens, targets, looping, nullptr, options).mean();
  // MOA_TI_WEIGHT: + λ_TI Σ_{visits, metric branches, heads} R_TI (training loss only; scoring
  // uses token_losses, which never adds it).
  std::vector<at::Tensor> terms;
  const ForwardProbes probes{.moa_triangle_penalties = &terms};
  const at::Tensor ce = token_losses(tokens, targets, looping, &probes, options).mean();
  return terms.empty() ? ce : ce + cfg_.moa_ti_weight * at::stack(terms).sum();
}

}  // namespace golf
