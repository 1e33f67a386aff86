// scoring/ledger.h — the evidence behind compliance conditions C3 (score before update) and C4
// (single left-to-right pass): when each validation prediction was scored, how often, and when a
// state update first used it.
//
// Times are a logical clock that every rank advances at the same protocol points (each scoring
// phase and each optimizer step), so times from different ranks compare. Prediction j predicts
// token j + 1 from tokens ≤ j; an update "uses" j when token j + 1 is among its inputs or targets.
#pragma once
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace golf::scoring {

struct CoverageReport {  // C4
  int64_t predictions = 0, scored_once = 0, never = 0, multiple = 0;
  int64_t first_never = -1, first_multiple = -1;
  bool ok() const { return never == 0 && multiple == 0 && scored_once == predictions; }
  std::string describe() const;
};

struct UpdateReport {  // C3
  int64_t updates = 0, uses = 0, violations = 0;
  int64_t first_violation = -1;                       // a prediction used before (or without) its score
  int32_t min_gap = std::numeric_limits<int32_t>::max();  // fewest clock ticks from a score to its first use
  bool ok() const { return violations == 0; }
  std::string describe() const;
};

class Ledger {
 public:
  explicit Ledger(int64_t predictions);

  void tick() { ++now_; }
  int32_t now() const { return now_; }

  // Prediction j was scored now (on this rank).
  void scored(int64_t j);
  // An update now used predictions [begin, end). `score_time` holds, for exactly that range, the
  // time each was scored on any rank (0: never) — the caller merges ranks; for one process it is
  // score_times() itself. Every use must come strictly after the score.
  // new_update = false adds these uses to the update recorded last (an update over several ranges).
  void used(int64_t begin, int64_t end, std::span<const int32_t> score_time, bool new_update = true);
  // Updates over one document's own predictions [begin, end), scored on this rank (score_times()).
  void used_local(int64_t begin, int64_t end, bool new_update = true);

  // Per-prediction state, exposed so ranks can merge it (element-wise sums: each prediction is
  // scored on one rank only, so sums are exact unless the tiling is broken, which counts catch).
  std::vector<uint8_t>& counts() { return counts_; }            // times scored (saturates at 255)
  std::vector<int32_t>& score_times() { return score_time_; }   // 1 + clock at scoring; 0: never
  int64_t predictions() const { return static_cast<int64_t>(counts_.size()); }

  CoverageReport coverage() const;
  const UpdateReport& updates() const { return updates_; }
  UpdateReport& mutable_updates() { return updates_; }  // for merging ranks
  void set_now(int32_t t) { now_ = t; }                 // ranks agree on the clock (phased TTT)

 private:
  int32_t now_ = 0;
  std::vector<uint8_t> counts_;
  std::vector<int32_t> score_time_;
  std::vector<int32_t> first_use_;  // 1 + clock of the first update that used it; 0: never
  UpdateReport updates_;
};

}  // namespace golf::scoring
