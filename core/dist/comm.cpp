// core/dist/comm.cpp — Comm over LibTorch's c10d: TCPStore rendezvous, then ProcessGroupNCCL
// (CUDA) or ProcessGroupGloo (CPU). See comm.h for the contract.
//
// c10d's headers hide their classes behind USE_C10D_GLOO / USE_C10D_NCCL, which the torch build
// defines for itself and we define here. The wheel lacks gloo's own headers; core/dist/gloo_stub
// declares what ProcessGroupGloo.hpp names (see its README.txt).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include "core/dist/comm.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <limits>

#include "core/error.h"

namespace golf::dist {

namespace {

// An integer environment variable, or `fallback` when unset; anything else is an error naming it.
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || x < 0 || x > std::numeric_limits<int>::max())
    fail("environment variable {}={:?} is not a non-negative integer", name, v);
  return static_cast<int>(x);
}

// Runs one c10d call, turning its exceptions (c10::Error, gloo's IoException…) into golf::Error
// that names the operation and this rank: what a user reads in the launcher's output.
template <class F>
auto guarded(const World& w, const char* op, F&& f) {
  try {
    return f();
  } catch (const golf::Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    // c10::Error appends a C++ backtrace; the first line says what happened.
    if (const auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    fail("rank {}/{}: {} failed: {}", w.rank, w.world_size, op, msg);
  }
}

}  // namespace

World world_from_env() {
  World w;
  if (!std::getenv("RANK")) return w;
  if (!std::getenv("WORLD_SIZE")) fail("RANK is set but WORLD_SIZE is not (torchrun sets both)");
  w.rank = env_int("RANK", 0);
  w.world_size = env_int("WORLD_SIZE", 1);
  if (w.world_size < 1) fail("WORLD_SIZE={} must be at least 1", w.world_size);
  if (w.rank >= w.world_size) fail("RANK={} must be less than WORLD_SIZE={}", w.rank, w.world_size);
  w.local_rank = env_int("LOCAL_RANK", w.rank);
  w.local_world_size = env_int("LOCAL_WORLD_SIZE", w.world_size);
  if (w.local_world_size < 1 || w.local_world_size > w.world_size)
    fail("LOCAL_WORLD_SIZE={} must be in [1, WORLD_SIZE={}]", w.local_world_size, w.world_size);
  if (w.local_rank >= w.local_world_size)
    fail("LOCAL_RANK={} must be less than LOCAL_WORLD_SIZE={}", w.local_rank, w.local_world_size);
  return w;
}

// ---- Work --------------------------------------------------------------------------------------
struct Work::Impl {
  World world;
  const char* op;
  c10::intrusive_ptr<c10d::Work> work;
  std::function<void()> finish;  // after completion (e.g. Gloo's division for an average)
};

Work::Work() = default;
Work::Work(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Work::Work(Work&&) noexcept = default;
Work& Work::operator=(Work&& o) noexcept {
  if (this != &o) {
    if (impl_) {
      try {
        wait();
      } catch (...) {
      }
    }
    impl_ = std::move(o.impl_);
  }
  return *this;
}
Work::~Work() {
  if (!impl_) return;
  try {
    wait();
  } catch (...) {  // a destructor cannot report; the next collective will fail the same way
  }
}

void Work::wait() {
  if (!impl_) return;
  auto impl = std::move(impl_);
  guarded(impl->world, impl->op, [&] { return impl->work->wait(); });
  if (impl->finish) impl->finish();
}

// ---- Comm --------------------------------------------------------------------------------------
struct Comm::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> pg;
  bool nccl = false;
};

Comm::Comm(const World& world, at::Device device, std::chrono::milliseconds timeout, bool group_of_one)
    : world_(world), device_(device) {
  if (world_.world_size == 1 && !group_of_one) return;
  const char* addr = std::getenv("MASTER_ADDR");
  if (!addr || !*addr) fail("WORLD_SIZE={} but MASTER_ADDR is not set", world_.world_size);
  const int port = env_int("MASTER_PORT", -1);
  if (port <= 0 || port > 65535) fail("WORLD_SIZE={} needs MASTER_PORT in [1, 65535]", world_.world_size);
  if (device_.is_cuda()) c10::cuda::set_device(device_.index());
  impl_ = std::make_unique<Impl>();
  guarded(world_, "rendezvous", [&] {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(port);
    o.isServer = world_.rank == 0;
    o.numWorkers = static_cast<size_t>(world_.world_size);
    o.waitWorkers = true;
    o.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(addr, o);
    if (device_.is_cuda()) {
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, world_.rank, world_.world_size, options);
      impl_->nccl = true;
    } else {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      // Loopback jobs (one machine) stay on 127.0.0.1; otherwise GLOO_SOCKET_IFNAME as in torch,
      // or the address this machine's hostname resolves to.
      const std::string a = addr;
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (a == "localhost" || a.starts_with("127."))
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, world_.rank, world_.world_size, options);
    }
    return 0;
  });
}

Comm::~Comm() = default;

std::string Comm::backend() const { return !impl_ ? "none" : impl_->nccl ? "nccl" : "gloo"; }

void Comm::all_reduce_sum(at::Tensor& tensor) {
  if (!impl_) return;
  guarded(world_, "all_reduce", [&] {
    std::vector<at::Tensor> ts{tensor};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.asyncOp = false;  // NCCL: on torch's current stream
    return impl_->pg->allreduce(ts, o)->wait();
  });
}

Work Comm::all_reduce_avg_async(at::Tensor& tensor) {
  if (!impl_) return Work();
  auto w = std::make_unique<Work::Impl>();
  w->world = world_;
  w->op = "all_reduce(avg)";
  c10d::AllreduceOptions o;
  o.reduceOp = impl_->nccl ? c10d::ReduceOp::AVG : c10d::ReduceOp::SUM;
  w->work = guarded(world_, w->op, [&] {
    std::vector<at::Tensor> ts{tensor};
    return impl_->pg->allreduce(ts, o);
  });
  if (!impl_->nccl) w->finish = [t = tensor, n = world_.world_size]() mutable { t.div_(n); };
  return Work(std::move(w));
}

void Comm::all_reduce_avg(at::Tensor& tensor) {
  if (!impl_) return;
  all_reduce_avg_async(tensor).wait();
}

void Comm::all_reduce_sum(std::vector<double>& values) {
  if (!impl_ || values.empty()) return;
  // NCCL reduces device memory only; Gloo takes the CPU tensor as it is.
  at::Tensor t = at::from_blob(values.data(), {static_cast<int64_t>(values.size())}, at::kDouble)
                     .to(impl_->nccl ? device_ : at::Device(at::kCPU), /*non_blocking=*/false, /*copy=*/true);
  all_reduce_sum(t);
  t = t.cpu();
  std::copy_n(t.data_ptr<double>(), values.size(), values.data());
}

void Comm::broadcast(at::Tensor& tensor, int root) {
  if (!impl_) return;
  guarded(world_, "broadcast", [&] {
    std::vector<at::Tensor> ts{tensor};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.asyncOp = false;
    return impl_->pg->broadcast(ts, o)->wait();
  });
}

void Comm::broadcast(std::vector<double>& values, int root) {
  if (!impl_ || values.empty()) return;
  at::Tensor t = at::from_blob(values.data(), {static_cast<int64_t>(values.size())}, at::kDouble)
                     .to(impl_->nccl ? device_ : at::Device(at::kCPU), /*non_blocking=*/false, /*copy=*/true);
  broadcast(t, root);
  t = t.cpu();
  std::copy_n(t.data_ptr<double>(), values.size(), values.data());
}

void Comm::barrier() {
  if (!impl_) return;
  guarded(world_, "barrier", [&] {
    c10d::BarrierOptions o;
    if (impl_->nccl) o.device_ids = {device_.index()};
    return impl_->pg->barrier(o)->wait();
  });
}

Work Comm::reduce_scatter_avg(at::Tensor& output, const at::Tensor& input) {
  if (!impl_) {
    output.copy_(input);
    return Work();
  }
  if (input.size(0) != output.size(0) * world_.world_size)
    fail("reduce_scatter: input has {} rows, expected world size {} × output rows {}", input.size(0),
         world_.world_size, output.size(0));
  auto w = std::make_unique<Work::Impl>();
  w->world = world_;
  w->op = "reduce_scatter(avg)";
  c10d::ReduceScatterOptions o;
  o.reduceOp = impl_->nccl ? c10d::ReduceOp::AVG : c10d::ReduceOp::SUM;
  at::Tensor in = input;
  w->work = guarded(world_, w->op, [&] { return impl_->pg->_reduce_scatter_base(output, in, o); });
  if (!impl_->nccl) w->finish = [t = output, n = world_.world_size]() mutable { t.div_(n); };
  return Work(std::move(w));
}

Work Comm::all_gather(at::Tensor& output, const at::Tensor& input) {
  if (!impl_) {
    output.copy_(input);
    return Work();
  }
  if (output.size(0) != input.size(0) * world_.world_size)
    fail("all_gather: output has {} rows, expected world size {} × input rows {}", output.size(0), world_.world_size,
         input.size(0));
  auto w = std::make_unique<Work::Impl>();
  w->world = world_;
  w->op = "all_gather";
  at::Tensor in = input;
  w->work = guarded(world_, w->op, [&] { return impl_->pg->_allgather_base(output, in, c10d::AllgatherOptions()); });
  return Work(std::move(w));
}

}  // namespace golf::dist
