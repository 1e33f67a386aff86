// core/device.h — the one place a stage turns the DEVICE setting (auto | cpu | cuda) into a device.
//   cpu   → CPU
//   cuda  → cuda:LOCAL_RANK (one GPU per rank on a node); one clear error without a CUDA device or
//           when LOCAL_RANK has no GPU of its own
//   auto  → cuda as above when a CUDA device is available, else CPU
// and the one way a batch built on the host reaches that device (to_device).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace golf {

at::Device pick_device(const std::string& setting, int64_t local_rank = 0);

// The one way a batch built on the host (e.g. from_blob over a reused buffer) reaches `device`:
//   a GPU, async (default) → staged in pinned memory (a tensor already pinned is used as it is) and
//                            copied without blocking the host; the pinned copy is owned by the copy,
//                            so the buffer may be reused at once
//   a GPU, !async          → a plain blocking copy (the plain path that GOLF_NO_SYNC=0 keeps)
//   the CPU                → host.to(device), which is `host` itself: use it before reusing the
//                            buffer, and copy what outlives the buffer
at::Tensor to_device(const at::Tensor& host, at::Device device, bool async = true);

}  // namespace golf
