#include "model/fast_paths.h"

#include <cstdlib>
#include <string_view>

#include "core/error.h"

namespace golf {

namespace {
std::string_view env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string_view(v) : std::string_view();
}
bool flag(const char* name, bool fallback) {
  const std::string_view v = env(name);
  if (v.empty()) return fallback;
  if (v == "1") return true;
  if (v == "0") return false;
  fail("{}={}: expected 0 or 1", name, v);
}
}  // namespace

FastPaths fast_paths_from_env(bool cuda) {
  FastPaths f;
  const std::string_view a = env("GOLF_ATTN");
  if (a.empty() || a == "auto") f.attn = cuda ? AttnBackend::flash : AttnBackend::sdpa;
  else if (a == "sdpa") f.attn = AttnBackend::sdpa;
  else if (a == "varlen_ref") f.attn = AttnBackend::varlen_ref;
  else if (a == "flash") f.attn = cuda ? AttnBackend::flash : AttnBackend::sdpa;
  else if (a == "cudnn") f.attn = cuda ? AttnBackend::cudnn : AttnBackend::sdpa;
  else fail("GOLF_ATTN={}: expected auto, sdpa, varlen_ref, flash or cudnn", a);
  f.fused_ops = flag("GOLF_FUSED_OPS", true);
  f.bank_unbind = flag("GOLF_BANK_UNBIND", true);
  f.foreach_optim = flag("GOLF_FOREACH_OPTIM", true);
  f.no_sync = flag("GOLF_NO_SYNC", true);
  f.fused_qk = flag("GOLF_FUSED_QK", false);
  f.fused_mix = flag("GOLF_FUSED_MIX", false);
  f.cuda_graphs = flag("GOLF_CUDA_GRAPHS", false) && cuda;  // the CPU falls back to the eager step
  if (const std::string_view v = env("GOLF_CLOCK_SYNC_EVERY"); !v.empty()) {
    const std::string text(v);
    char* end = nullptr;
    const long long n = std::strtoll(text.c_str(), &end, 10);
    if (end == text.c_str() || *end != '\0' || n < 1 || n > 1000000)
      fail("GOLF_CLOCK_SYNC_EVERY={}: expected a whole number of steps ≥ 1", v);
    f.clock_sync_every = n;
  }
  return f;
}

FastPaths plain_paths() {
  FastPaths f;
  f.attn = AttnBackend::sdpa;
  f.fused_ops = f.bank_unbind = f.foreach_optim = f.no_sync = f.fused_qk = f.fused_mix = false;
  f.clock_sync_every = 1;
  f.cuda_graphs = false;
  return f;
}

std::string attn_backend_name(AttnBackend b) {
  switch (b) {
    case AttnBackend::sdpa: return "sdpa";
    case AttnBackend::varlen_ref: return "varlen_ref";
    case AttnBackend::flash: return "flash";
    case AttnBackend::cudnn: return "cudnn";
  }
  return "?";
}

std::string describe(const FastPaths& f) {
  return fmt::format("fast_paths: attn:{} fused_ops:{:d} bank_unbind:{:d} foreach_optim:{:d} no_sync:{:d} fused_qk:{:d} fused_mix:{:d} clock_sync_every:{} cuda_graphs:{:d}",
                     attn_backend_name(f.attn), f.fused_ops, f.bank_unbind, f.foreach_optim, f.no_sync, f.fused_qk, f.fused_mix,
                     f.clock_sync_every, f.cuda_graphs);
}

}  // namespace golf
