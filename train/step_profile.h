// train/step_profile.h — two diagnostics golf-train logs at the end of training, for the GPU kit
// (scripts/gpu/check.sh parses both):
//
//   peak memory allocated: X MiB reserved: Y MiB          (CUDA only; the records' line: the caching
//                                                           allocator's peaks, integer MiB)
//   step_breakdown: forward:Fms backward:Bms optimizer:Oms comm:Cms steps:N
//                                                          (GOLF_PROFILE_STEPS=1; mean per timed step)
//
// The breakdown cuts each timed step (warm-up steps are not timed) at marks placed in the step:
// the time since the previous mark belongs to the part named by the mark. On CUDA a mark records
// an event on the current stream — no host wait inside the step; finished steps are read when the
// next step begins and the rest at the end — so the times are GPU times between the marks. On the
// CPU a mark reads the wall clock. The optimizer's own collectives (Parallel Muon) are counted in
// `optimizer`; `comm` would be the loss all-reduce, which since GOLF_NO_SYNC runs after the step
// (at log steps only), outside the timed window, so it reads 0 in today's trainer.
#pragma once
#include <c10/core/Device.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace golf::train {

class StepProfile {
 public:
  enum Part { kForward, kBackward, kOptimizer, kComm, kNumParts };

  // Enabled when the environment has GOLF_PROFILE_STEPS=1.
  explicit StepProfile(c10::Device device);
  ~StepProfile();
  bool enabled() const { return enabled_; }

  void begin_step();    // a timed step starts (marks outside begin/end are ignored)
  void mark(Part part); // the time since the previous mark belongs to `part`
  void end_step();

  // "step_breakdown: …" (mean ms per timed step), or "" when disabled or no step was timed.
  // Waits for the device to finish the recorded steps.
  std::string summary();

 private:
  struct Pending;  // one step's CUDA events, not yet read
  void settle(bool wait);

  bool enabled_ = false;
  bool in_step_ = false;
  c10::Device device_;
  std::array<double, kNumParts> total_ms_{};
  int64_t steps_ = 0;
  std::chrono::steady_clock::time_point last_;  // CPU: the previous mark
  std::vector<std::unique_ptr<Pending>> pending_;
};

// "peak memory allocated: X MiB reserved: Y MiB" for a CUDA device; "" for the CPU.
std::string peak_memory_line(c10::Device device);

}  // namespace golf::train
