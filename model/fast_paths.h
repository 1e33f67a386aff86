// model/fast_paths.h — the CUDA speed switches (issue 13), one place, read from the environment.
//
// Every fast path has a plain twin that stays the reference; each switch picks one of them, so the
// GPU kit can measure and compare both on the same binary. All switches fall back cleanly on the
// CPU (a CUDA-only choice there runs its CPU reference instead, never an error).
//
//   GOLF_ATTN          auto | sdpa | varlen_ref | flash | cudnn   (default auto)
//                      sdpa: masked SDPA over blocks (segment_attention), the reference;
//                      varlen_ref: packed (total, H, Dh) layout + cu_seqlens, one causal SDPA per
//                      segment (CPU test path for the varlen glue; slow);
//                      flash: at::_flash_attention_forward varlen (FA2, native GQA) on CUDA;
//                      cudnn: at::_cudnn_attention_forward ragged (cum_seq_*) on CUDA;
//                      auto: flash on CUDA, sdpa on the CPU. flash/cudnn on the CPU run sdpa.
//   GOLF_FUSED_OPS     1 | 0 (default 1): at::rms_norm with eps = FLT_EPSILON, LeakyReLU(0.5)² as
//                      one autograd op saving only its input (CUDA kernel on CUDA).
//   GOLF_BANK_UNBIND   1 | 0 (default 1): each weight bank cast to the compute dtype once per
//                      forward and unbind-ed, instead of select + cast at every use.
//   GOLF_FOREACH_OPTIM 1 | 0 (default 1): clipping by _foreach_norm + device coefficient + _foreach_mul_
//                      (no .item()), EMA by _foreach_lerp_, AdamW by _fused_adamw_; AdamW lrs and Muon's
//                      μ/decay/step in one device tensor copied once per step from pinned memory.
//   GOLF_NO_SYNC       1 | 0 (default 1): golf-train's step keeps the loss on the device (read at
//                      log steps only), copies batches from pinned memory without blocking, and
//                      synchronises the device only at log steps.
//   GOLF_FUSED_QK      1 | 0 (default 0 until the GPU kit measures it): QK-RMSNorm + partial RoPE +
//                      q gain as one autograd op saving only its inputs (model/ops/qk_norm_rope.h;
//                      CUDA kernel on CUDA, the same formulas in ATen elsewhere).
//   GOLF_FUSED_MIX     1 | 0 (default 0 until the GPU kit measures it): the remaining elementwise
//                      chains as autograd ops saving only their inputs (model/ops/mix.h): every
//                      residual / lane / skip mix (a ⊙ x + b ⊙ y), XSA + the output gates
//                      (AttnOutGate, gated attention, sparse and head gates) and the SmearGate's
//                      shift-and-add; one CUDA kernel each way on CUDA, the same formulas in ATen
//                      elsewhere.
//   GOLF_CLOCK_SYNC_EVERY  N ≥ 1 (default 16): distributed golf-train broadcasts rank 0's clock
//                      every N steps (and every step near the budget), the same estimate on every
//                      rank in between (train/shared_clock.h); 1 = every step (the plain path).
//   GOLF_CUDA_GRAPHS   1 | 0 (default 0 until the GPU kit measures it): golf-train captures the
//                      micro-step's forward + backward as a CUDA graph per recurrence mode and
//                      replays it (train/graph_step.h); CUDA only, GRAD_ACCUM_STEPS=1 only; on the
//                      CPU it resolves to 0.
// A bad value is an error naming the variable and the value.
#pragma once
#include <cstdint>
#include <string>

namespace golf {

enum class AttnBackend { sdpa, varlen_ref, flash, cudnn };

struct FastPaths {
  AttnBackend attn = AttnBackend::sdpa;  // as resolved for the device (never flash/cudnn on the CPU)
  bool fused_ops = true;
  bool bank_unbind = true;
  bool foreach_optim = true;
  bool no_sync = true;
  bool fused_qk = false;
  bool fused_mix = false;
  int64_t clock_sync_every = 16;
  bool cuda_graphs = false;  // as resolved for the device (never on the CPU)
};

// Reads the GOLF_* switches above for a model on CUDA (`cuda`) or the CPU.
FastPaths fast_paths_from_env(bool cuda);
// The plain paths everywhere (the reference the fast paths are tested against).
FastPaths plain_paths();
std::string attn_backend_name(AttnBackend b);
std::string describe(const FastPaths& f);  // one log line: "fast_paths: attn:flash fused_ops:1 ..."

}  // namespace golf
