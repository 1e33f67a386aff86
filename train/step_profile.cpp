#include "train/step_profile.h"

#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <fmt/format.h>

#include <cstdlib>
#include <cstring>

namespace golf::train {

struct StepProfile::Pending {
  at::cuda::CUDAEvent start{cudaEventDefault};
  std::vector<std::pair<Part, std::unique_ptr<at::cuda::CUDAEvent>>> marks;
};

StepProfile::StepProfile(c10::Device device) : device_(device) {
  const char* v = std::getenv("GOLF_PROFILE_STEPS");
  enabled_ = v && std::strcmp(v, "1") == 0;
}

StepProfile::~StepProfile() = default;

void StepProfile::begin_step() {
  if (!enabled_) return;
  in_step_ = true;
  if (device_.is_cuda()) {
    settle(/*wait=*/false);
    pending_.push_back(std::make_unique<Pending>());
    pending_.back()->start.record();
  } else {
    last_ = std::chrono::steady_clock::now();
  }
}

void StepProfile::mark(Part part) {
  if (!enabled_ || !in_step_) return;
  if (device_.is_cuda()) {
    auto event = std::make_unique<at::cuda::CUDAEvent>(cudaEventDefault);
    event->record();
    pending_.back()->marks.emplace_back(part, std::move(event));
  } else {
    const auto now = std::chrono::steady_clock::now();
    total_ms_[part] += std::chrono::duration<double, std::milli>(now - last_).count();
    last_ = now;
  }
}

void StepProfile::end_step() {
  if (!enabled_ || !in_step_) return;
  in_step_ = false;
  if (!device_.is_cuda()) ++steps_;
}

// Adds the finished steps' event intervals to the totals (all of them, waiting, when `wait`).
void StepProfile::settle(bool wait) {
  size_t done = 0;
  for (; done < pending_.size(); ++done) {
    Pending& p = *pending_[done];
    if (!p.marks.empty()) {
      if (wait) p.marks.back().second->synchronize();
      else if (!p.marks.back().second->query()) break;
    }
    const at::cuda::CUDAEvent* prev = &p.start;
    for (const auto& [part, event] : p.marks) {
      total_ms_[part] += prev->elapsed_time(*event);
      prev = event.get();
    }
    ++steps_;
  }
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(done));
}

std::string StepProfile::summary() {
  if (!enabled_) return "";
  if (device_.is_cuda()) settle(/*wait=*/true);
  if (steps_ == 0) return "";
  const double n = static_cast<double>(steps_);
  return fmt::format("step_breakdown: forward:{:.2f}ms backward:{:.2f}ms optimizer:{:.2f}ms comm:{:.2f}ms steps:{}",
                     total_ms_[kForward] / n, total_ms_[kBackward] / n, total_ms_[kOptimizer] / n,
                     total_ms_[kComm] / n, steps_);
}

std::string peak_memory_line(c10::Device device) {
  if (!device.is_cuda()) return "";
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  constexpr auto kAll = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  return fmt::format("peak memory allocated: {} MiB reserved: {} MiB", stats.allocated_bytes[kAll].peak / 1024 / 1024,
                     stats.reserved_bytes[kAll].peak / 1024 / 1024);
}

}  // namespace golf::train
