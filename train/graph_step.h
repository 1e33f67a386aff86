// train/graph_step.h — CUDA graph capture of golf-train's micro-step, forward + backward
// (GOLF_CUDA_GRAPHS, issue 13).
//
// Each recurrence mode (looping off / on) gets one graph, captured the first time that mode runs
// (golf-train's rolled-back warm-up steps capture both before the clock starts), after one eager
// run on the capture stream (lazy initialisation: cuBLAS workspaces, kernel loading). The two
// graphs share one memory pool: looping only ever turns on, so the off graph is never replayed
// after the on graph was captured, and the on graph reuses the off graph's freed intermediates.
// Shapes are static: the batch is copied into a fixed (rows, cols + 1) token buffer, and the
// packed segment bounds into a fixed cu_seqlens buffer of segment_capacity + 1 entries (empty
// segments [total, total) pad it; model/varlen.h). A batch that does not fit (another shape, more
// segments than the capacity) runs eagerly instead.
//
// After a replay every parameter's .grad is that graph's static gradient tensor, holding this
// micro-batch's gradient (the graph overwrites, it does not accumulate: GRAD_ACCUM_STEPS must be 1),
// so the optimizer runs eagerly on it as usual. Parameters must keep their storage (they are
// updated in place by the optimizer, loaded in place by load_state).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>

namespace golf {
class Model;
}

namespace golf::train {

// Whether graphs can run for a model on `device` (CUDA only).
bool cuda_graphs_available(const at::Device& device);

// cu (n + 1,) int32 CPU (real segment starts, then `total` repeated) → (capacity + 1,) with the
// same real segments and empty ones after; undefined when it holds more than `capacity` segments.
at::Tensor pad_segments(const at::Tensor& cu, int64_t capacity);

class GraphedMicroStep {
 public:
  // Batches of rows × (cols + 1) tokens; segment_capacity 0: no cu_seqlens (GOLF_ATTN=sdpa).
  GraphedMicroStep(const Model& model, int64_t rows, int64_t cols, int64_t segment_capacity);
  ~GraphedMicroStep();
  GraphedMicroStep(const GraphedMicroStep&) = delete;
  GraphedMicroStep& operator=(const GraphedMicroStep&) = delete;

  // The static cu_seqlens for this batch's bounds (CPU), or undefined when the batch cannot be
  // graphed (tokens of another shape, too many segments): then run it eagerly.
  at::Tensor fit(const at::Tensor& tokens, const at::Tensor& cu_seqlens) const;
  // Forward + backward of model.loss(tokens[:, :-1], tokens[:, 1:]) through the graph of this
  // recurrence mode (captured on first use). tokens (rows, cols + 1) int64 on the device;
  // padded_cu from fit(). Returns the loss (a fresh 0-dim device tensor); sets every parameter's
  // .grad to this micro-batch's gradient.
  at::Tensor run(Model& model, const at::Tensor& tokens, const at::Tensor& padded_cu, bool looping);
  int64_t captures() const;  // graphs captured so far (0, 1 or 2)
  int64_t segment_capacity() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace golf::train
