#include "core/device.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include "core/error.h"

namespace golf {

at::Device pick_device(const std::string& setting, int64_t local_rank) {
  const bool cuda = torch::cuda::is_available();
  if (setting == "cuda" && !cuda) fail("DEVICE=cuda but no CUDA device is available");
  if (!(setting == "cuda" || (setting == "auto" && cuda))) return at::Device(at::kCPU);
  const int64_t gpus = static_cast<int64_t>(torch::cuda::device_count());
  if (local_rank >= gpus)
    fail("LOCAL_RANK={} needs GPU {}, but this node has {} CUDA device(s); use at most --nproc {}", local_rank,
         local_rank, gpus, gpus);
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

at::Tensor to_device(const at::Tensor& host, at::Device device, bool async) {
  if (!device.is_cuda() || !async) return host.to(device);
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

}  // namespace golf
