#include "train/optim.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <array>
#include <cmath>

#include "core/error.h"

namespace golf::train {

namespace {
constexpr std::array<const char*, 4> kMatrixParams = {"qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank"};
using Coeffs = std::array<double, 3>;
constexpr Coeffs kClassic = {3.4445, -4.7750, 2.0315};
// Polar Express: minimax coefficients per iteration (5 computed; later steps reuse the last).
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
  x = x / (at::linalg_matrix_norm(x, "fro", {-2, -1}, /*keepdim=*/true) + 1e-7);
  for (int64_t s = 0; s < steps; ++s) {
    const Coeffs c = polar_express ? kPolarExpress[std::min<size_t>(s, kPolarExpress.size() - 1)] : kClassic;
    const at::Tensor a = at::matmul(x, x.transpose(-1, -2));
    x = c[0] * x + at::matmul(c[1] * a + c[2] * at::matmul(a, a), x);
  }
  return tall ? x.transpose(-1, -2) : x;
}

double lr_multiplier(double progress, const Config& cfg) {
  if (progress < 1.0 - cfg.warmdown_frac) return 1.0;
  return std::max((1.0 - progress) / cfg.warmdown_frac, cfg.min_lr);
}

double muon_momentum(int64_t step, const Config& cfg) {
  const double f = cfg.muon_momentum_warmup_steps > 0
                       ? std::min(static_cast<double>(step) / static_cast<double>(cfg.muon_momentum_warmup_steps), 1.0)
                       : 1.0;
  return (1 - f) * cfg.muon_momentum_warmup_start + f * cfg.muon_momentum;
}

// ---- Optimizer -------------------------------------------------------------------------------
Optimizer::Optimizer(Model& model, const Config& cfg) : model_(model), cfg_(cfg) {
  at::NoGradGuard no_grad;
  for (const auto& name : model.names()) {
    const at::Tensor& p = model.param(name);
    if (is_matrix_param(name)) {
      // bf16 momentum on CUDA (as the records), fp32 on CPU.
      momentum_[name] = at::zeros_like(p, p.options().dtype(p.is_cuda() ? at::kBFloat16 : at::kFloat));
    } else {
      adam_m_[name] = at::zeros_like(p);
      adam_v_[name] = at::zeros_like(p);
    }
  }
}

double Optimizer::clip_gradients() {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> squares;
  for (const auto& name : model_.names()) {
    const at::Tensor& g = model_.param(name).grad();
    if (g.defined()) squares.push_back(g.to(at::kFloat).pow(2).sum());
  }
  if (squares.empty()) return 0.0;
  const double norm = at::stack(squares).sum().sqrt().item<double>();
  const double coef = std::min(1.0, cfg_.grad_clip_norm / (norm + 1e-6));
  if (coef < 1.0)
    for (const auto& name : model_.names())
      if (model_.param(name).grad().defined()) model_.param(name).mutable_grad().mul_(coef);
  return norm;
}

void Optimizer::step(int64_t step, double lr_mul) {
  at::NoGradGuard no_grad;
  const double mu = muon_momentum(step, cfg_);
  for (auto& [name, m] : momentum_) {
    at::Tensor& p = model_.param(name);
    if (!p.grad().defined()) fail("Muon: parameter {} has no gradient", name);
    const at::Tensor g = p.grad().to(m.scalar_type());
    m.mul_(mu).add_(g);
    at::Tensor u = g + mu * m;  // Nesterov
    if (cfg_.muon_row_normalize) u = u / u.to(at::kFloat).norm(2, -1, /*keepdim=*/true).clamp_min(1e-7).to(u.scalar_type());
    const at::Tensor update = newton_schulz(u, cfg_.muon_backend_steps, cfg_.muon_polar_express != 0);
    const double lr = cfg_.matrix_lr * lr_mul;
    const double scale = std::sqrt(std::max(1.0, static_cast<double>(p.size(-2)) / static_cast<double>(p.size(-1))));
    p.mul_(1 - lr * cfg_.muon_wd).sub_(update.to(p.scalar_type()), lr * scale);
  }
  adam_steps_ += 1;
  const auto t = static_cast<double>(adam_steps_);
  const double bias1 = 1 - std::pow(cfg_.beta1, t), bias2 = 1 - std::pow(cfg_.beta2, t);
  for (auto& [name, m] : adam_m_) {
    at::Tensor& p = model_.param(name);
    if (!p.grad().defined()) fail("AdamW: parameter {} has no gradient", name);
    const at::Tensor& g = p.grad();
    at::Tensor& v = adam_v_.at(name);
    const bool embedding = name == "tok_emb.weight";
    const double lr = (embedding ? cfg_.tied_embed_lr : cfg_.scalar_lr) * lr_mul;
    const double wd = embedding ? cfg_.embed_wd : cfg_.adam_wd;
    p.mul_(1 - lr * wd);
    m.mul_(cfg_.beta1).add_(g, 1 - cfg_.beta1);
    v.mul_(cfg_.beta2).addcmul_(g, g, 1 - cfg_.beta2);
    const at::Tensor denom = (v.sqrt() / std::sqrt(bias2)).add_(cfg_.adam_eps);
    p.addcdiv_(m, denom, -lr / bias1);
  }
}

void Optimizer::zero_grad() {
  for (const auto& name : model_.names()) model_.param(name).mutable_grad() = at::Tensor();
}

std::map<std::string, at::Tensor> Optimizer::state() const {
  std::map<std::string, at::Tensor> s;
  for (const auto& [name, m] : momentum_) s["muon_momentum/" + name] = m;
  for (const auto& [name, m] : adam_m_) s["adam_m/" + name] = m;
  for (const auto& [name, v] : adam_v_) s["adam_v/" + name] = v;
  s["adam_steps"] = at::scalar_tensor(adam_steps_, at::kLong);
  return s;
}

void Optimizer::load_state(const std::map<std::string, at::Tensor>& s) {
  at::NoGradGuard no_grad;
  auto take = [&](const std::string& key, at::Tensor& dst) {
    const auto it = s.find(key);
    if (it == s.end()) fail("optimizer state lacks {}", key);
    if (it->second.sizes() != dst.sizes()) fail("optimizer state {}: shape mismatch", key);
    dst.copy_(it->second);
  };
  for (auto& [name, m] : momentum_) take("muon_momentum/" + name, m);
  for (auto& [name, m] : adam_m_) take("adam_m/" + name, m);
  for (auto& [name, v] : adam_v_) take("adam_v/" + name, v);
  const auto it = s.find("adam_steps");
  if (it == s.end()) fail("optimizer state lacks adam_steps");
  adam_steps_ = it->second.item<int64_t>();
}

// ---- EMA -------------------------------------------------------------------------------------
Ema::Ema(const Model& model, double decay) : decay_(decay) {
  at::NoGradGuard no_grad;
  for (const auto& name : model.names()) shadow_[name] = model.param(name).detach().to(at::kFloat).clone();
}

void Ema::update(const Model& model) {
  at::NoGradGuard no_grad;
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
