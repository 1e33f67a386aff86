#include "tests/scoring/planted.h"

#include <algorithm>

namespace golf::scoring::planted {

std::vector<Window> legacy_sliding_windows(int64_t M, int64_t L, int64_t s) {
  std::vector<Window> w;
  for (int64_t ws = 0; ws < M; ws += s) {
    const int64_t end = std::min(ws + L, M);
    w.push_back({ws, end, ws == 0 ? 0 : end - std::min(s, end - ws)});
  }
  return w;
}

Totals legacy_sliding(LanguageModel& lm, const Stream& stream, const Config& cfg, Hooks hooks) {
  return score_windows(lm, stream, legacy_sliding_windows(stream.predictions, cfg.eval_seq_len, cfg.eval_stride), cfg,
                       Ranks{}, hooks, "legacy sliding");
}

void TrainBeforeScore::before_score(const std::function<void()>& train) {
  if (train) train();
}

LoraOptions leaking_lora(LoraOptions options) {
  options.warm_start_a = true;
  return options;
}

void UnscoredInPhase::before_phase(std::vector<int64_t>& train, std::span<const int64_t> next) {
  if (!next.empty()) train.push_back(next.front());
}

CausalityProbe observed(CausalityProbe probe, TttObserver& observer) {
  probe.run = [run = probe.run, &observer](LanguageModel& lm, const Stream& s, Hooks h) {
    h.observer = &observer;
    run(lm, s, h);
  };
  return probe;
}

}  // namespace golf::scoring::planted
