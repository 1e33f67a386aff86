// tests/scoring/planted.h — the compliance tests' planted violations. Each is built from the
// protocols' public pieces: a window list, a setting, or a TttObserver (scoring/protocols.h), the TTT
// loops' one injection point. So the counted scoring loops hold no test-only branch, and each
// violation here is a real evaluator's mistake that its check must FAIL on.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "scoring/compliance.h"
#include "scoring/protocols.h"

namespace golf::scoring::planted {

// The early sliding implementation (rules notes §4.3): a window at every ws < M, each scoring its
// last min(s, len) positions, so the tail is scored more than once (C4).
std::vector<Window> legacy_sliding_windows(int64_t predictions, int64_t seq_len, int64_t stride);
// Sliding-window scoring over that tiling (EVAL_SEQ_LEN, EVAL_STRIDE).
Totals legacy_sliding(LanguageModel& lm, const Stream& stream, const Config& cfg, Hooks hooks = {});

// Trains on each chunk before scoring it (ttt: the chunk's SGD epochs; LoRA: one AdamW step); the
// protocol then scores it and trains on it as usual. A C3 violation (an update uses unscored
// predictions) and a C1 one (a chunk's scores see the chunk's later tokens).
class TrainBeforeScore : public TttObserver {
 public:
  void before_score(const std::function<void()>& train) override;
};

// LoRA state leaking across documents needs no plant: TTT_WARM_START_A=1 (LoraOptions::warm_start_a)
// carries each slot's A from one batch to the next, as the records allow, and claims no document
// independence (golf-eval skips LoRA's isolation check with it); the tests use it as the leak.
LoraOptions leaking_lora(LoraOptions options);

// Phased TTT: each global SGD phase also trains on the first document of the next batch, which is
// not scored yet (C3).
class UnscoredInPhase : public TttObserver {
 public:
  void before_phase(std::vector<int64_t>& train, std::span<const int64_t> next) override;
};

// `probe` with `observer` handed to each of its runs (check_causality runs it several times; the
// observer must outlive the probe).
CausalityProbe observed(CausalityProbe probe, TttObserver& observer);

}  // namespace golf::scoring::planted
