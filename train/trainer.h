// train/trainer.h — the golf-train loop (single process; --nproc comes with the launcher).
//
//   warm-up: WARMUP_STEPS steps with recurrence off, then on; weights, optimizer and loader are
//            rolled back afterwards, so warm-up only readies kernels and caches
//   loop:    progress = train time / (MAX_WALLCLOCK_SECONDS − GPTQ_RESERVE_SECONDS), or
//            step / ITERATIONS when MAX_WALLCLOCK_SECONDS = 0; recurrence switches on at
//            ENABLE_LOOPING_AT; LR multiplier flat then warm-down; EMA after every step;
//            validation (timer paused) every VAL_LOSS_EVERY steps and at the end
//   end:     final validation, EMA swapped in and validated, weights saved, calibration Hessians
//            collected on training data (timed against the GPTQ reserve) and saved
#pragma once
#include <filesystem>
#include <functional>
#include <optional>

#include "core/config.h"
#include "scoring/validation.h"

namespace golf::train {

struct TrainResult {
  std::filesystem::path run_dir;
  int64_t steps = 0;
  double train_ms = 0, calibration_ms = 0;
  scoring::ValidationResult final_val, ema_val;
};

// Starts a run in OUTPUT_DIR/RUN_ID, or continues the run in `resume_dir` from its checkpoint.
// Throws golf::Error on bad input, and on a non-finite loss (naming the step; the last good
// checkpoint is kept).
//
// main_rank_check, when given, runs on rank 0 only, after the ranks have met and before the run
// directory exists (golf-train's preflight under an external torchrun / Slurm). A golf::Error from
// it stops every rank: rank 0 reports it, the others fail naming rank 0 (none waits for a peer).
TrainResult train(Config config, const std::optional<std::filesystem::path>& resume_dir = std::nullopt,
                  const std::function<void()>& main_rank_check = {});

}  // namespace golf::train
