// core/dist/comm.h — collectives between the ranks of a distributed run (c10d underneath).
//
// A run of W processes ("ranks") is described by torchrun's environment contract (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; see core/dist/launcher.h).
// Comm joins them: rank 0 hosts a c10d::TCPStore at MASTER_ADDR:MASTER_PORT, and the ranks form a
// process group over it — NCCL when the device is CUDA (collectives on torch's current stream,
// one GPU per rank: cuda:LOCAL_RANK), Gloo when it is the CPU (CI, tests, CPU runs).
//
// With world_size == 1 a Comm is the identity (unless made with group_of_one, for tests): no store,
// no process group, every call returns at once without touching its arguments
// (reduce_scatter/all_gather copy input to output), so single-process runs are exactly as fast and
// bit-identical as without it.
//
// Every collective must be called by every rank, in the same order, with tensors of the same
// shape and dtype. A collective that does not complete within the timeout (DIST_TIMEOUT_SECONDS),
// or whose peer died, throws golf::Error naming the operation and this rank.
//
// Averaging: NCCL averages natively (ncclAvg); Gloo has no AVG, so it sums and divides by the
// world size afterwards. Gloo reduces fp32/fp64; callers use bf16 only on CUDA (Parallel Muon's
// bf16 reduce-scatter runs on NCCL, its CPU path uses fp32).
#pragma once
#include <ATen/core/Tensor.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace golf::dist {

struct World {
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;  // on this node (LOCAL_RANK selects the GPU)
  bool main() const { return rank == 0; }    // the rank that writes files and logs
};

// The world from torchrun's variables; a single process (rank 0 of 1) when RANK is unset.
// Throws golf::Error naming the variable and value when one is malformed or inconsistent
// (e.g. RANK ≥ WORLD_SIZE, or RANK set without WORLD_SIZE).
World world_from_env();

// An asynchronous collective in flight. wait() blocks until it is complete (on CUDA: until torch's
// current stream is ordered after it) and finishes it (e.g. the division of a Gloo average);
// destroying a Work that was not waited for waits for it. Movable, not copyable.
class Work {
 public:
  Work();  // already complete
  Work(Work&&) noexcept;
  Work& operator=(Work&&) noexcept;
  ~Work();
  void wait();
  struct Impl;

 private:
  friend class Comm;
  explicit Work(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Comm {
 public:
  // Joins the process group of `world` (a no-op when world.world_size == 1). On CUDA, `device`
  // must be cuda:LOCAL_RANK; it becomes the current device. Rendezvous (MASTER_ADDR/MASTER_PORT
  // from the environment) and every collective give up after `timeout`. `group_of_one` forms the
  // process group even for a world of one, so that the distributed code paths run (and are tested
  // against the single-process ones) on one device.
  Comm(const World& world, at::Device device, std::chrono::milliseconds timeout, bool group_of_one = false);
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  const World& world() const { return world_; }
  int rank() const { return world_.rank; }
  int world_size() const { return world_.world_size; }
  bool distributed() const { return impl_ != nullptr; }  // a process group exists
  // "nccl", "gloo", or "none" (single process).
  std::string backend() const;

  // In place, blocking. Every rank ends with the element-wise sum / mean over ranks.
  void all_reduce_sum(at::Tensor& tensor);
  void all_reduce_avg(at::Tensor& tensor);
  Work all_reduce_avg_async(at::Tensor& tensor);
  // Float64 sums on the CPU whatever the device (bpb numerators and byte counts).
  void all_reduce_sum(std::vector<double>& values);
  // Every rank ends with root's values.
  void broadcast(at::Tensor& tensor, int root = 0);
  void broadcast(std::vector<double>& values, int root = 0);
  void barrier();

  // input (W·n, ...) contiguous → output (n, ...): rank r receives the mean over ranks of rows
  // [r·n, (r+1)·n) of input. Asynchronous: read output only after wait().
  Work reduce_scatter_avg(at::Tensor& output, const at::Tensor& input);
  // input (n, ...) → output (W·n, ...): rank r's input lands in rows [r·n, (r+1)·n) on every rank.
  Work all_gather(at::Tensor& output, const at::Tensor& input);

  struct Impl;

 private:
  World world_;
  at::Device device_;
  std::unique_ptr<Impl> impl_;  // null when world_size == 1
};

}  // namespace golf::dist
