// core/device.h's to_device, the one way a host batch reaches the device: on the CPU it is the host
// tensor itself; to a GPU the async path (pinned staging, non-blocking copy) gives what the plain
// blocking copy gives, even when the host buffer is overwritten right after the call.
#include "core/device.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <numeric>
#include <vector>

namespace golf {
namespace {

TEST(ToDevice, OnTheCpuIsTheHostTensorItself) {
  std::vector<int64_t> buffer(12);
  std::iota(buffer.begin(), buffer.end(), 0);
  const at::Tensor host = at::from_blob(buffer.data(), {3, 4}, at::kLong);
  for (const bool async : {true, false}) {
    const at::Tensor moved = to_device(host, at::Device(at::kCPU), async);
    EXPECT_TRUE(moved.is_same(host)) << "async " << async;
  }
}

TEST(ToDevice, AsyncCopiesToTheGpuEqualBlockingOnesAndTheBufferMayBeReusedAtOnce) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const at::Device gpu(at::kCUDA, 0);
  std::vector<int64_t> buffer(1 << 20);
  std::vector<at::Tensor> async_copies, blocking_copies;
  for (int64_t batch = 0; batch < 8; ++batch) {  // one buffer, refilled per batch as the loaders do
    std::iota(buffer.begin(), buffer.end(), batch * 1000);
    const at::Tensor host = at::from_blob(buffer.data(), {1024, 1024}, at::kLong);
    async_copies.push_back(to_device(host, gpu));
    blocking_copies.push_back(to_device(host, gpu, /*async=*/false));
    EXPECT_EQ(async_copies.back().device(), gpu);
  }
  for (size_t b = 0; b < async_copies.size(); ++b) {
    const at::Tensor expected = at::arange(static_cast<int64_t>(b) * 1000, static_cast<int64_t>(b) * 1000 + (1 << 20),
                                           at::kLong).reshape({1024, 1024});
    EXPECT_TRUE(at::equal(async_copies[b].cpu(), expected)) << "batch " << b;
    EXPECT_TRUE(at::equal(blocking_copies[b].cpu(), expected)) << "batch " << b;
  }
}

}  // namespace
}  // namespace golf
