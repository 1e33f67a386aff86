// train/shared_clock.h — the training clock every rank agrees on, without a broadcast every step
// (issue 13).
//
// The LR schedule, the recurrence switch and the stop all read the train time, so every rank must
// read the same value at every step, or their updates drift apart. Rank 0's clock is the truth;
// broadcasting it each step costs a collective (and on CUDA a host round trip) per step. Instead
// it is broadcast every `every` steps; in between, every rank uses the same estimate from the
// last broadcast value: synced_ms + (step − synced_step) · (synced_ms / synced_step), i.e. the
// average step time so far. Near the budget the estimate is not trusted: once it comes within
// 2·every average steps of the budget, the clock is broadcast every step, so the stop is decided
// on rank 0's real clock exactly as before. The first `every` steps (compilation, warm caches)
// broadcast every step too. every = 1: a broadcast every step (the previous behaviour).
//
// Deliberate difference from a broadcast every step: between broadcasts the schedule and the
// recurrence switch see the estimate (off by the step-time jitter of ≤ every steps, ≈1e-4 of the
// schedule at 16 steps of 4,800), the same on every rank.
#pragma once
#include <algorithm>
#include <cstdint>

namespace golf {

class SharedClock {
 public:
  SharedClock(int64_t every, double budget_ms) : every_(std::max<int64_t>(every, 1)), budget_ms_(budget_ms) {}

  // Whether the clock after step `step` (1-based: steps done) must come from rank 0.
  bool due(int64_t step) const {
    if (every_ == 1 || step <= every_ || step % every_ == 0) return true;
    const double avg = average();
    return budget_ms_ > 0 && estimate(step) + 2.0 * static_cast<double>(every_) * avg >= budget_ms_;
  }
  // The shared clock after `step` steps when not due: the same value on every rank.
  double estimate(int64_t step) const { return synced_ms_ + static_cast<double>(step - synced_step_) * average(); }
  // Rank 0's clock after `step` steps, as broadcast.
  void set(int64_t step, double ms) {
    synced_step_ = step;
    synced_ms_ = ms;
  }
  int64_t every() const { return every_; }

 private:
  double average() const { return synced_step_ > 0 ? synced_ms_ / static_cast<double>(synced_step_) : 0.0; }
  int64_t every_;
  double budget_ms_;
  int64_t synced_step_ = 0;
  double synced_ms_ = 0;
};

}  // namespace golf
