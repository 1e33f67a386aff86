// The shared training clock (train/shared_clock.h): broadcast every N steps, the same estimate on
// every rank in between, a broadcast every step near the budget so that the stop is decided on
// rank 0's real clock.
#include "train/shared_clock.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace golf {
namespace {

// A run of rank 0's step times: the training loop of train/trainer.cpp with only the clock.
// Returns (the step the run stops at, the steps that broadcast, the largest |shared − real| clock).
struct ClockRun {
  int64_t stop = 0;
  std::vector<int64_t> broadcasts;
  double worst_error = 0;
};
ClockRun simulate(int64_t every, double budget_ms, const std::vector<double>& step_ms) {
  SharedClock clock(every, budget_ms);
  clock.set(0, 0);
  double real = 0;
  ClockRun r;
  for (int64_t step = 1; step <= static_cast<int64_t>(step_ms.size()); ++step) {
    real += step_ms[static_cast<size_t>(step - 1)];
    double shared;
    if (clock.due(step)) {
      clock.set(step, real);
      shared = real;
      r.broadcasts.push_back(step);
    } else {
      shared = clock.estimate(step);
    }
    r.worst_error = std::max(r.worst_error, std::abs(shared - real));
    if (shared >= budget_ms) {
      r.stop = step;
      EXPECT_EQ(shared, real) << "the stop must be decided on a broadcast clock (step " << step << ")";
      return r;
    }
  }
  return r;
}

std::vector<double> jittery_steps(int64_t n, double ms, double jitter) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(ms + jitter * std::sin(0.7 * static_cast<double>(i)));
  return v;
}

TEST(SharedClock, BroadcastsEveryNStepsAndStopsWhereEveryStepWould) {
  const auto steps = jittery_steps(2000, 100.0, 5.0);
  const ClockRun every_step = simulate(1, 60000, steps);
  const ClockRun every16 = simulate(16, 60000, steps);
  ASSERT_GT(every_step.stop, 0);
  EXPECT_EQ(every16.stop, every_step.stop);
  EXPECT_EQ(every_step.broadcasts.size(), static_cast<size_t>(every_step.stop));
  // ≈ 600 steps: the first 16, then every 16th (≈ 36), then every step of the last ≈ 32.
  EXPECT_LT(every16.broadcasts.size(), every_step.broadcasts.size() / 5) << every16.broadcasts.size();
  for (int64_t s = 1; s <= 16; ++s) EXPECT_EQ(every16.broadcasts[static_cast<size_t>(s - 1)], s);
  // Between broadcasts the estimate is off by the jitter of ≤ 16 steps.
  EXPECT_LE(every16.worst_error, 16 * 5.0);
  EXPECT_GT(every16.worst_error, 0.0) << "the test must exercise the estimate";
}

TEST(SharedClock, ASuddenlySlowerStepNearTheEndStillStopsOnTheRealClock) {
  // Steps slow down tenfold 40 steps before the budget: the broadcast-every-step zone (2·N
  // average steps) starts from the estimate, which undershoots here; the stop check above
  // requires every stopping value to be broadcast.
  std::vector<double> steps(300, 100.0);
  for (size_t i = 260; i < steps.size(); ++i) steps[i] = 1000.0;
  const ClockRun a = simulate(1, 30000, steps), b = simulate(8, 30000, steps);
  EXPECT_GT(a.stop, 0);
  EXPECT_GE(b.stop, a.stop);  // never earlier than the real clock says
  EXPECT_LE(b.stop, a.stop + 8);
}

TEST(SharedClock, EveryOneIsABroadcastEveryStep) {
  SharedClock c(1, 1000);
  for (int64_t s = 1; s < 100; ++s) EXPECT_TRUE(c.due(s));
  SharedClock zero(0, 1000);  // clamped to 1
  EXPECT_EQ(zero.every(), 1);
}

}  // namespace
}  // namespace golf
