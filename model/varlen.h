// model/varlen.h — attention over packed variable-length segments (issue 13).
//
// The model's attention is causal inside segments (model/model.h `segments`: a segment starts at
// every row start, every BOS when DOC_MASK=1, and every TRAIN_SEQ_LEN tokens). Laid end to end,
// the B rows of a batch are one packed stream of total = B·T tokens, and the segments are the
// runs [cu_seqlens[s], cu_seqlens[s+1]) of that stream, none longer than max_len =
// min(T, TRAIN_SEQ_LEN). cu_seqlens is padded to a static length (a multiple of `pad_multiple`
// entries after the first) with empty segments [total, total), so a batch shape needs no new
// kernel plan or graph per document layout (the records' bucket trick).
//
// varlen_attention() then runs one backend on the packed layout q (total, H, Dh),
// k/v (total, Hkv, Dh) → (total, H, Dh):
//   varlen_ref — the CPU reference of this glue: one causal SDPA per segment (GQA by SDPA's
//                enable_gqa), same packing, same cu_seqlens; proven equal to segment_attention;
//   flash      — at::_flash_attention_forward (FA2 varlen, native GQA, no mask), CUDA, bf16/fp16;
//   cudnn      — at::_cudnn_attention_forward ragged (cum_seq_q/k), CUDA; K/V heads expanded
//                (ATen's cuDNN path has no GQA broadcast).
// All three are differentiable (autograd nodes FlashAttentionBackward0 / CudnnAttentionBackward0).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "core/config.h"
#include "model/fast_paths.h"

namespace golf {

struct VarlenSegments {
  at::Tensor cu_seqlens;  // (n_padded + 1,) int32, on the tokens' device: segment starts, then total
  int64_t segments = 0;   // real (non-empty) segments
  int64_t max_len = 0;    // longest possible segment: min(T, TRAIN_SEQ_LEN) (a static bound, not measured)
};

// From (B, T) int64 tokens on the CPU (the loader side: no device sync). pad_multiple ≥ 1.
// seq_len_cut: the segment cut length as in model/model.h `segments` (0 = TRAIN_SEQ_LEN).
VarlenSegments varlen_segments(const at::Tensor& tokens, const ModelConfig& config, int64_t pad_multiple = 64,
                               int64_t seq_len_cut = 0);

// (total, H, Dh), (total, Hkv, Dh) ×2 → (total, H, Dh). `cu_seqlens` on q's device (CPU for
// varlen_ref, CUDA for flash/cudnn). scale: default 1/√Dh.
at::Tensor varlen_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens,
                            int64_t max_len, AttnBackend backend, std::optional<double> scale = std::nullopt);

}  // namespace golf
