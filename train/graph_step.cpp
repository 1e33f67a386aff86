#include "train/graph_step.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <map>
#include <string>

#include "core/error.h"
#include "model/model.h"

namespace golf::train {

bool cuda_graphs_available(const at::Device& device) { return device.is_cuda(); }

at::Tensor pad_segments(const at::Tensor& cu, int64_t capacity) {
  if (cu.dim() != 1 || cu.scalar_type() != at::kInt || !cu.device().is_cpu() || cu.size(0) < 2)
    fail("pad_segments: expected (n + 1,) int32 CPU cu_seqlens");
  const int32_t* c = cu.const_data_ptr<int32_t>();
  const int32_t total = c[cu.size(0) - 1];
  int64_t real = 0;
  while (real < cu.size(0) && c[real] < total) ++real;
  if (real > capacity) return {};
  at::Tensor out = at::full({capacity + 1}, total, at::TensorOptions().dtype(at::kInt).pinned_memory(cu.is_pinned()));
  out.narrow(0, 0, real).copy_(cu.narrow(0, 0, real));
  return out;
}

struct GraphedMicroStep::Impl {
  struct Mode {
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    at::Tensor loss;                                // static output (0-dim)
    std::vector<std::pair<std::string, at::Tensor>> grads;  // the graph's static gradient tensors
  };
  int64_t rows, cols, capacity;
  at::Tensor tokens, cu;  // static inputs on the device
  Mode modes[2];
  c10::MempoolId_t pool;
  c10::cuda::CUDAStream stream;
};

GraphedMicroStep::GraphedMicroStep(const Model& model, int64_t rows, int64_t cols, int64_t capacity) {
  const at::Device device = model.device();
  if (!cuda_graphs_available(device)) fail("GOLF_CUDA_GRAPHS: CUDA graphs need a CUDA device, the model is on {}", device.str());
  const c10::cuda::CUDAGuard guard(device);
  impl_.reset(new Impl{rows, cols, capacity, at::zeros({rows, cols + 1}, at::TensorOptions().dtype(at::kLong).device(device)),
                       capacity > 0 ? at::zeros({capacity + 1}, at::TensorOptions().dtype(at::kInt).device(device)) : at::Tensor(),
                       {}, at::cuda::graph_pool_handle(), c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index())});
}

GraphedMicroStep::~GraphedMicroStep() = default;

int64_t GraphedMicroStep::captures() const { return (impl_->modes[0].graph != nullptr) + (impl_->modes[1].graph != nullptr); }
int64_t GraphedMicroStep::segment_capacity() const { return impl_->capacity; }

at::Tensor GraphedMicroStep::fit(const at::Tensor& tokens, const at::Tensor& cu) const {
  if (tokens.dim() != 2 || tokens.size(0) != impl_->rows || tokens.size(1) != impl_->cols + 1) return {};
  if (impl_->capacity == 0) return cu.defined() ? at::Tensor() : at::empty({0}, at::kInt);  // sdpa: no bounds
  if (!cu.defined()) return {};
  return pad_segments(cu, impl_->capacity);
}

namespace {
at::Tensor forward_backward(Model& model, const at::Tensor& tokens, const at::Tensor& cu, bool looping) {
  const int64_t T = tokens.size(1) - 1;
  ForwardOptions forward;
  forward.cu_seqlens = cu;  // int32 on the device already: the forward copies nothing
  const at::Tensor loss = model.loss(tokens.narrow(1, 0, T), tokens.narrow(1, 1, T), looping, forward);
  loss.backward();
  return loss.detach();
}
void clear_grads(Model& model) {
  for (const auto& name : model.names()) model.param(name).mutable_grad() = at::Tensor();
}
}  // namespace

at::Tensor GraphedMicroStep::run(Model& model, const at::Tensor& tokens, const at::Tensor& padded_cu, bool looping) {
  Impl& s = *impl_;
  const c10::cuda::CUDAGuard guard(s.tokens.device());
  s.tokens.copy_(tokens, /*non_blocking=*/true);
  if (s.cu.defined()) s.cu.copy_(padded_cu, /*non_blocking=*/true);  // pinned host → device, asynchronous
  Impl::Mode& m = s.modes[looping ? 1 : 0];
  if (!m.graph) {
    // Capture on a side stream that first waits for the current stream's work (the copies above).
    const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(s.tokens.device().index());
    at::cuda::CUDAEvent ready;
    ready.record(current);
    ready.block(s.stream);
    {
      const c10::cuda::CUDAStreamGuard on_side(s.stream);
      clear_grads(model);
      forward_backward(model, s.tokens, s.cu, looping);  // eager, on the capture stream: lazy inits
      clear_grads(model);  // the graph allocates its own gradients in its pool
      m.graph = std::make_unique<at::cuda::CUDAGraph>();
      m.graph->capture_begin(s.pool);
      m.loss = forward_backward(model, s.tokens, s.cu, looping);
      m.graph->capture_end();
      for (const auto& name : model.names())
        if (model.param(name).grad().defined()) m.grads.emplace_back(name, model.param(name).grad());
    }
    at::cuda::CUDAEvent captured;
    captured.record(s.stream);
    captured.block(current);
  }
  m.graph->replay();
  clear_grads(model);
  for (const auto& [name, g] : m.grads) model.param(name).mutable_grad() = g;
  return m.loss.clone();  // the static output is overwritten by the next replay
}

}  // namespace golf::train
