#include "train/optim.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/cuda/CUDAEvent.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "core/dist/comm.h"
#include "core/error.h"

namespace golf::train {

namespace {
constexpr std::array<const char*, 4> kMatrixParams = {"qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank"};
using Coeffs = std::array<double, 3>;
constexpr Coeffs kClassic = {3.4445, -4.7750, 2.0315};
// Polar Express: minimax coefficients per iteration, computed for 5 iterations. The records never
// run more steps than there are tuples, so more steps are refused (validate() names
// MUON_BACKEND_STEPS) rather than reusing the last tuple.
constexpr std::array<Coeffs, 5> kPolarExpress = {{
    {8.156554524902461, -22.48329292557795, 15.878769915207462},
    {4.042929935166739, -2.808917465908714, 0.5000178451051316},
    {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
    {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
    {2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
}};
}  // namespace

bool is_matrix_param(const std::string& name) {
  for (const char* m : kMatrixParams)
    if (name == m) return true;
  return false;
}

at::Tensor newton_schulz(const at::Tensor& g, int64_t steps, bool polar_express) {
  // Work on the wide orientation (rows ≤ cols) so X Xᵀ is the smaller Gram matrix.
  const bool tall = g.size(-2) > g.size(-1);
  at::Tensor x = tall ? g.transpose(-1, -2) : g;
  if (polar_express && steps > static_cast<int64_t>(kPolarExpress.size()))
    fail("MUON_BACKEND_STEPS={} exceeds the {} Polar Express coefficient tuples (MUON_POLAR_EXPRESS=1)", steps,
         kPolarExpress.size());
  x = x / (at::linalg_matrix_norm(x, "fro", {-2, -1}, /*keepdim=*/true) + 1e-7);
  for (int64_t s = 0; s < steps; ++s) {
    const Coeffs c = polar_express ? kPolarExpress[static_cast<size_t>(s)] : kClassic;
    const at::Tensor a = at::matmul(x, x.transpose(-1, -2));
    x = c[0] * x + at::matmul(c[1] * a + c[2] * at::matmul(a, a), x);
  }
  return tall ? x.transpose(-1, -2) : x;
}

double lr_multiplier(double progress, const OptimConfig& cfg) {
  if (progress < 1.0 - cfg.warmdown_frac) return 1.0;
  return std::max((1.0 - progress) / cfg.warmdown_frac, cfg.min_lr);
}

double muon_momentum(int64_t step, const OptimConfig& cfg) {
  const double f = cfg.muon_momentum_warmup_steps > 0
                       ? std::min(static_cast<double>(step) / static_cast<double>(cfg.muon_momentum_warmup_steps), 1.0)
                       : 1.0;
  return (1 - f) * cfg.muon_momentum_warmup_start + f * cfg.muon_momentum;
}

// ---- Optimizer -------------------------------------------------------------------------------
namespace {
// bf16 momentum (and bf16 collectives) on CUDA, as the records; fp32 on CPU.
at::ScalarType muon_dtype(const at::Tensor& p) { return p.is_cuda() ? at::kBFloat16 : at::kFloat; }
// Replicated gradients larger than this get their own all-reduce; smaller ones share a buffer.
constexpr int64_t kPackedMaxNumel = 32768;
}  // namespace

Optimizer::Optimizer(Model& model, const OptimConfig& cfg, dist::Comm* comm)
    : model_(model), cfg_(cfg), comm_(comm && comm->distributed() ? comm : nullptr) {
  at::NoGradGuard no_grad;
  for (const auto& name : model.names()) {
    const at::Tensor& p = model.param(name);
    if (!is_matrix_param(name)) {
      adam_m_[name] = at::zeros_like(p);
      adam_v_[name] = at::zeros_like(p);
    } else if (!comm_) {
      momentum_[name] = at::zeros_like(p, p.options().dtype(muon_dtype(p)));
    } else {
      const int64_t W = comm_->world_size();
      Bank b;
      b.name = name;
      b.matrices = p.size(0);
      b.padded = (b.matrices + W - 1) / W * W;
      b.shard = b.padded / W;
      const auto opt = p.options().dtype(muon_dtype(p));
      b.grads = at::zeros({b.padded, p.size(1), p.size(2)}, opt);
      b.grad_shard = at::zeros({b.shard, p.size(1), p.size(2)}, opt);
      b.momentum = at::zeros({b.shard, p.size(1), p.size(2)}, opt);
      b.update = at::zeros({b.shard, p.size(1), p.size(2)}, opt);
      b.updates = at::zeros({b.padded, p.size(1), p.size(2)}, opt);
      banks_.push_back(std::move(b));
    }
  }
  // Largest bank first (stable), so its communication starts earliest and overlaps the most.
  std::stable_sort(banks_.begin(), banks_.end(),
                   [](const Bank& a, const Bank& b) { return a.grads.numel() > b.grads.numel(); });
  foreach_ = model.fast_paths().foreach_optim;
  if (foreach_) {
    adam_groups_.resize(2);
    adam_groups_[0].base_lr = cfg_.tied_embed_lr, adam_groups_[0].wd = cfg_.embed_wd;
    adam_groups_[1].base_lr = cfg_.scalar_lr, adam_groups_[1].wd = cfg_.adam_wd;
    for (const auto& [name, m] : adam_m_) {
      const bool embedding = name == "tok_emb.weight" || name == "bigram.embed.weight";
      AdamGroup& g = adam_groups_[embedding ? 0 : 1];
      g.names.push_back(name);
      g.steps.push_back(at::zeros({}, m.options().dtype(at::kFloat)));
    }
    int64_t slots = 2;  // μ, Muon decay, then one step per bank, then one lr per AdamW group
    for (const auto& name : model.names())
      if (is_matrix_param(name)) muon_slot_[name] = slots++;
    for (AdamGroup& g : adam_groups_) g.slot = slots++;
    step_scalars_ = at::zeros({slots}, model.param(model.names().front()).options().dtype(at::kFloat));
    for (AdamGroup& g : adam_groups_) g.lr = step_scalars_.select(0, g.slot);  // a view: copy_ updates it
  }
}

// The host side of step_scalars_: two pinned buffers used in turn, each with an event recorded on
// the stream right after the non-blocking copy that reads it. Why rewriting a buffer is safe: before
// the host writes buffer k it waits for buffer k's event, i.e. for the copy issued two uploads ago
// to have run. The wait blocks only while the device is still more than one whole optimizer step
// behind the host (a step is thousands of launches, so the launch queue keeps the host closer than
// that; a CUDA graph replay with few launches would be throttled to two steps ahead, which is
// what keeps its source buffer intact). One buffer would make the host wait for the copy of the
// step just issued, i.e. for the whole step — a sync per step. On the CPU the copy is synchronous
// and one buffer suffices. The buffers never move, so a captured copy could read them too.
struct Optimizer::ScalarUpload {
  at::Tensor host[2];
  c10::cuda::CUDAEvent copied[2];
  int next = 0;
};

void Optimizer::upload_step_scalars(int64_t step, double lr_mul) {
  // The same fp32 values the plain path's double scalars are rounded to inside ATen's kernels.
  const bool cuda = step_scalars_.is_cuda();
  if (!upload_) {
    upload_ = std::make_unique<ScalarUpload>();
    for (at::Tensor& h : upload_->host)
      h = at::empty({step_scalars_.size(0)}, at::TensorOptions().dtype(at::kFloat).pinned_memory(cuda));
  }
  const int k = upload_->next;
  if (cuda) {
    upload_->next ^= 1;
    upload_->copied[k].synchronize();  // the copy from this buffer two uploads ago (no-op if never recorded)
  }
  at::Tensor& host = upload_->host[k];
  float* h = host.mutable_data_ptr<float>();
  const double lr = cfg_.matrix_lr * lr_mul;
  h[0] = static_cast<float>(muon_momentum(step, cfg_));
  h[1] = static_cast<float>(1 - lr * cfg_.muon_wd);
  for (const auto& [name, slot] : muon_slot_) {
    const at::Tensor& p = model_.param(name);
    h[slot] = static_cast<float>(lr * std::sqrt(std::max(1.0, static_cast<double>(p.size(-2)) / static_cast<double>(p.size(-1)))));
  }
  for (const AdamGroup& g : adam_groups_) h[g.slot] = static_cast<float>(g.base_lr * lr_mul);
  step_scalars_.copy_(host, /*non_blocking=*/cuda);
  if (cuda) upload_->copied[k].record(c10::cuda::getCurrentCUDAStream(step_scalars_.device().index()));
}

Optimizer::~Optimizer() = default;

at::Tensor Optimizer::clip_gradients_async() {
  if (!foreach_) return at::scalar_tensor(clip_gradients(), at::kFloat);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const auto& name : model_.names())
    if (model_.param(name).grad().defined()) grads.push_back(model_.param(name).mutable_grad());
  if (grads.empty()) return at::zeros({}, at::kFloat);
  // ‖g‖ = ‖(‖g_i‖)_i‖; norms accumulate in fp32 like the plain path's g.to(kFloat).pow(2).sum().
  const at::Tensor norm = at::linalg_vector_norm(at::stack(at::_foreach_norm(grads, 2, at::kFloat)), 2);
  if (cfg_.grad_clip_norm > 0)  // coef = min(1, clip / (norm + 1e-6)), applied on the device always
    at::_foreach_mul_(grads, (cfg_.grad_clip_norm / (norm + 1e-6)).clamp_max(1.0).to(grads.front().scalar_type()));
  return norm;
}

double Optimizer::clip_gradients() {
  if (foreach_) return clip_gradients_async().item<double>();
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> squares;
  for (const auto& name : model_.names()) {
    const at::Tensor& g = model_.param(name).grad();
    if (g.defined()) squares.push_back(g.to(at::kFloat).pow(2).sum());
  }
  if (squares.empty()) return 0.0;
  const double norm = at::stack(squares).sum().sqrt().item<double>();
  if (cfg_.grad_clip_norm <= 0) return norm;  // GRAD_CLIP_NORM=0: no clipping
  const double coef = std::min(1.0, cfg_.grad_clip_norm / (norm + 1e-6));
  if (coef < 1.0)
    for (const auto& name : model_.names())
      if (model_.param(name).grad().defined()) model_.param(name).mutable_grad().mul_(coef);
  return norm;
}

at::Tensor Optimizer::muon_update(const at::Tensor& grad, at::Tensor& m, double mu) const {
  const at::Tensor g = grad.to(m.scalar_type());
  at::Tensor u;
  if (foreach_) {  // μ from the device (a 0-dim fp32 tensor keeps m's dtype, like the double)
    const at::Tensor mu_t = step_scalars_.select(0, 0);
    m.mul_(mu_t).add_(g);
    u = g + mu_t * m;  // Nesterov
  } else {
    m.mul_(mu).add_(g);
    u = g + mu * m;  // Nesterov
  }
  if (cfg_.muon_row_normalize) u = u / u.to(at::kFloat).norm(2, -1, /*keepdim=*/true).clamp_min(1e-7).to(u.scalar_type());
  return newton_schulz(u, cfg_.muon_backend_steps, cfg_.muon_polar_express != 0);
}

void Optimizer::apply_muon(const std::string& name, const at::Tensor& update, double lr_mul) {
  at::Tensor& p = model_.param(name);
  if (foreach_) {
    // p ← p·decay − update·step from the device. Deviation: update·step is rounded before the
    // subtraction (the plain path's sub_ with alpha may fuse it): ≤ 1 fp32 ulp of p per step.
    p.mul_(step_scalars_.select(0, 1)).sub_(update.to(p.scalar_type()) * step_scalars_.select(0, muon_slot_.at(name)));
    return;
  }
  const double lr = cfg_.matrix_lr * lr_mul;
  const double scale = std::sqrt(std::max(1.0, static_cast<double>(p.size(-2)) / static_cast<double>(p.size(-1))));
  p.mul_(1 - lr * cfg_.muon_wd).sub_(update.to(p.scalar_type()), lr * scale);
}

void Optimizer::step(int64_t step, double lr_mul) {
  if (foreach_) upload_step_scalars(step, lr_mul);
  if (comm_) return step_distributed(step, lr_mul);
  at::NoGradGuard no_grad;
  const double mu = muon_momentum(step, cfg_);
  for (auto& [name, m] : momentum_) {
    const at::Tensor& p = model_.param(name);
    if (!p.grad().defined()) fail("Muon: parameter {} has no gradient", name);
    apply_muon(name, muon_update(p.grad(), m, mu), lr_mul);
  }
  adam_step(lr_mul);
}

void Optimizer::adam_step_fused(double /*lr_mul: in step_scalars_*/) {
  for (AdamGroup& g : adam_groups_) {
    if (g.names.empty()) continue;
    std::vector<at::Tensor> params, grads, m, v;
    for (const auto& name : g.names) {
      at::Tensor& p = model_.param(name);
      if (!p.grad().defined()) fail("AdamW: parameter {} has no gradient", name);
      params.push_back(p), grads.push_back(p.grad()), m.push_back(adam_m_.at(name)), v.push_back(adam_v_.at(name));
    }
    // g.lr: this step's learning rate, already on the device (upload_step_scalars)
    at::_foreach_add_(g.steps, 1.0);
    // Decoupled weight decay p ← p(1 − lr·wd), then Adam with bias corrections: the same update
    // as adam_step below (PyTorch's AdamW).
    at::_fused_adamw_(params, grads, m, v, /*max_exp_avg_sqs=*/{}, g.steps, g.lr, cfg_.beta1, cfg_.beta2, g.wd,
                      cfg_.adam_eps, /*amsgrad=*/false, /*maximize=*/false);
  }
}

void Optimizer::adam_step(double lr_mul) {
  adam_steps_ += 1;
  if (foreach_) return adam_step_fused(lr_mul);
  const auto t = static_cast<double>(adam_steps_);
  const double bias1 = 1 - std::pow(cfg_.beta1, t), bias2 = 1 - std::pow(cfg_.beta2, t);
  for (auto& [name, m] : adam_m_) {
    at::Tensor& p = model_.param(name);
    if (!p.grad().defined()) fail("AdamW: parameter {} has no gradient", name);
    const at::Tensor& g = p.grad();
    at::Tensor& v = adam_v_.at(name);
    // The token embedding and the BigramHash table share the embedding group (LR, WD), as in the records.
    const bool embedding = name == "tok_emb.weight" || name == "bigram.embed.weight";
    const double lr = (embedding ? cfg_.tied_embed_lr : cfg_.scalar_lr) * lr_mul;
    const double wd = embedding ? cfg_.embed_wd : cfg_.adam_wd;
    p.mul_(1 - lr * wd);
    m.mul_(cfg_.beta1).add_(g, 1 - cfg_.beta1);
    v.mul_(cfg_.beta2).addcmul_(g, g, 1 - cfg_.beta2);
    const at::Tensor denom = (v.sqrt() / std::sqrt(bias2)).add_(cfg_.adam_eps);
    p.addcdiv_(m, denom, -lr / bias1);
  }
}

void Optimizer::step_distributed(int64_t step, double lr_mul) {
  at::NoGradGuard no_grad;
  dist::Comm& comm = *comm_;
  // 1. Bank gradients: reduce-scatter (mean), largest bank first.
  std::vector<dist::Work> scatters;
  for (Bank& b : banks_) {
    const at::Tensor& p = model_.param(b.name);
    if (!p.grad().defined()) fail("Muon: parameter {} has no gradient", b.name);
    b.grads.narrow(0, 0, b.matrices).copy_(p.grad());  // padding rows stay zero
    scatters.push_back(comm.reduce_scatter_avg(b.grad_shard, b.grads));
  }
  // 2. Replicated gradients (everything AdamW steps): large ones alone, small ones packed.
  std::vector<dist::Work> reduces;
  std::map<at::ScalarType, std::vector<at::Tensor*>> small;
  for (const auto& name : model_.names()) {
    if (is_matrix_param(name)) continue;
    at::Tensor& p = model_.param(name);
    if (!p.grad().defined()) fail("AdamW: parameter {} has no gradient", name);
    at::Tensor& g = p.mutable_grad();
    if (!g.is_contiguous()) g = g.contiguous();
    if (g.numel() > kPackedMaxNumel)
      reduces.push_back(comm.all_reduce_avg_async(g));
    else
      small[g.scalar_type()].push_back(&g);
  }
  for (auto& [dtype, grads] : small) {
    std::vector<at::Tensor> flat;
    for (const at::Tensor* g : grads) flat.push_back(g->reshape({-1}));
    at::Tensor packed = at::cat(flat);
    comm.all_reduce_avg(packed);
    int64_t offset = 0;
    for (at::Tensor* g : grads) {
      g->copy_(packed.narrow(0, offset, g->numel()).view_as(*g));
      offset += g->numel();
    }
  }
  for (auto& w : reduces) w.wait();
  // 3. AdamW, replicated.
  adam_step(lr_mul);
  // 4. Muon on this rank's shard of each bank, pipelined with the all-gathers.
  const double mu = muon_momentum(step, cfg_);
  dist::Work gather;
  const Bank* gathering = nullptr;
  for (size_t i = 0; i < banks_.size(); ++i) {
    Bank& b = banks_[i];
    scatters[i].wait();
    b.update.copy_(muon_update(b.grad_shard, b.momentum, mu));
    dist::Work next = comm.all_gather(b.updates, b.update);
    if (gathering) {
      gather.wait();
      apply_muon(gathering->name, gathering->updates.narrow(0, 0, gathering->matrices), lr_mul);
    }
    gather = std::move(next);
    gathering = &b;
  }
  if (gathering) {
    gather.wait();
    apply_muon(gathering->name, gathering->updates.narrow(0, 0, gathering->matrices), lr_mul);
  }
}

void Optimizer::zero_grad() {
  for (const auto& name : model_.names()) model_.param(name).mutable_grad() = at::Tensor();
}

std::map<std::string, at::Tensor> Optimizer::state() const {
  std::map<std::string, at::Tensor> s;
  for (const auto& [name, m] : momentum_) s["muon_momentum/" + name] = m;
  for (const Bank& b : banks_) {  // distributed: every rank's shard, gathered (collective)
    at::Tensor full = at::empty({b.padded, b.momentum.size(1), b.momentum.size(2)}, b.momentum.options());
    comm_->all_gather(full, b.momentum).wait();
    s["muon_momentum/" + b.name] = full.narrow(0, 0, b.matrices);
  }
  for (const auto& [name, m] : adam_m_) s["adam_m/" + name] = m;
  for (const auto& [name, v] : adam_v_) s["adam_v/" + name] = v;
  s["adam_steps"] = at::scalar_tensor(adam_steps_, at::kLong);
  return s;
}

void Optimizer::load_state(const std::map<std::string, at::Tensor>& s) {
  at::NoGradGuard no_grad;
  auto find = [&](const std::string& key) -> const at::Tensor& {
    const auto it = s.find(key);
    if (it == s.end()) fail("optimizer state lacks {}", key);
    return it->second;
  };
  auto take = [&](const std::string& key, at::Tensor& dst) {
    const at::Tensor& src = find(key);
    if (src.sizes() != dst.sizes()) fail("optimizer state {}: shape mismatch", key);
    dst.copy_(src);
  };
  for (auto& [name, m] : momentum_) take("muon_momentum/" + name, m);
  for (Bank& b : banks_) {  // this rank's matrices of the full momentum; padding stays zero
    const at::Tensor& full = find("muon_momentum/" + b.name);
    if (full.dim() != 3 || full.size(0) != b.matrices || full.size(1) != b.momentum.size(1) ||
        full.size(2) != b.momentum.size(2))
      fail("optimizer state muon_momentum/{}: shape mismatch", b.name);
    const int64_t first = comm_->rank() * b.shard;
    const int64_t n = std::clamp<int64_t>(b.matrices - first, 0, b.shard);
    b.momentum.zero_();
    if (n > 0) b.momentum.narrow(0, 0, n).copy_(full.narrow(0, first, n));
  }
  for (auto& [name, m] : adam_m_) take("adam_m/" + name, m);
  for (auto& [name, v] : adam_v_) take("adam_v/" + name, v);
  adam_steps_ = find("adam_steps").item<int64_t>();
  for (AdamGroup& g : adam_groups_)
    for (at::Tensor& t : g.steps) t.fill_(static_cast<double>(adam_steps_));
}

// ---- EMA -------------------------------------------------------------------------------------
Ema::Ema(const Model& model, double decay) : decay_(decay), foreach_(model.fast_paths().foreach_optim) {
  at::NoGradGuard no_grad;
  for (const auto& name : model.names()) shadow_[name] = model.param(name).detach().to(at::kFloat).clone();
}

void Ema::update(const Model& model) {
  at::NoGradGuard no_grad;
  if (foreach_) {  // e ← e + (1 − decay)(p − e): the same average, one multi-tensor kernel
    std::vector<at::Tensor> shadow, params;
    for (auto& [name, e] : shadow_) shadow.push_back(e), params.push_back(model.param(name).detach().to(at::kFloat));
    at::_foreach_lerp_(shadow, params, 1 - decay_);
    return;
  }
  for (auto& [name, e] : shadow_) e.mul_(decay_).add_(model.param(name).detach().to(at::kFloat), 1 - decay_);
}

void Ema::load(const std::map<std::string, at::Tensor>& weights) {
  at::NoGradGuard no_grad;
  for (auto& [name, e] : shadow_) {
    const auto it = weights.find(name);
    if (it == weights.end()) fail("EMA state lacks {}", name);
    e.copy_(it->second);
  }
}

}  // namespace golf::train
