#include "scoring/ledger.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace golf::scoring {

Ledger::Ledger(int64_t predictions)
    : counts_(static_cast<size_t>(predictions), 0),
      score_time_(static_cast<size_t>(predictions), 0),
      first_use_(static_cast<size_t>(predictions), 0) {}

void Ledger::scored(int64_t j) {
  if (j < 0 || j >= predictions()) fail("scored prediction {} outside [0, {})", j, predictions());
  uint8_t& c = counts_[static_cast<size_t>(j)];
  if (c < 255) ++c;
  if (score_time_[static_cast<size_t>(j)] == 0) score_time_[static_cast<size_t>(j)] = now_ + 1;
}

void Ledger::used_local(int64_t begin, int64_t end, bool new_update) {
  begin = std::max<int64_t>(begin, 0);
  end = std::min(end, predictions());
  if (end <= begin) return;
  used(begin, end, std::span<const int32_t>(score_time_).subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)),
       new_update);
}

void Ledger::used(int64_t begin, int64_t end, std::span<const int32_t> score_time, bool new_update) {
  if (begin < 0) {  // a use starting before the stream: drop the leading times with the range
    score_time = score_time.subspan(static_cast<size_t>(-begin));
    begin = 0;
  }
  end = std::min(end, predictions());
  if (end <= begin) return;
  if (static_cast<int64_t>(score_time.size()) < end - begin)
    fail("ledger: {} score times for a use of {} predictions", score_time.size(), end - begin);
  if (new_update) ++updates_.updates;
  for (int64_t j = begin; j < end; ++j) {
    ++updates_.uses;
    const int32_t scored_at = score_time[static_cast<size_t>(j - begin)];
    if (scored_at == 0 || scored_at > now_) {  // never scored, or scored at or after this update
      ++updates_.violations;
      if (updates_.first_violation < 0) updates_.first_violation = j;
    } else {
      updates_.min_gap = std::min(updates_.min_gap, now_ + 1 - scored_at);
    }
    int32_t& first = first_use_[static_cast<size_t>(j)];
    if (first == 0) first = now_ + 1;
  }
}

CoverageReport Ledger::coverage() const {
  CoverageReport r;
  r.predictions = predictions();
  for (int64_t j = 0; j < r.predictions; ++j) {
    const uint8_t c = counts_[static_cast<size_t>(j)];
    if (c == 1) {
      ++r.scored_once;
    } else if (c == 0) {
      ++r.never;
      if (r.first_never < 0) r.first_never = j;
    } else {
      ++r.multiple;
      if (r.first_multiple < 0) r.first_multiple = j;
    }
  }
  return r;
}

std::string CoverageReport::describe() const {
  std::string s = fmt::format("{} of {} predictions scored exactly once", scored_once, predictions);
  if (never) s += fmt::format("; {} never scored (first {})", never, first_never);
  if (multiple) s += fmt::format("; {} scored more than once (first {})", multiple, first_multiple);
  return s;
}

std::string UpdateReport::describe() const {
  if (updates == 0) return "no state updates";
  std::string s = fmt::format("{} updates used {} predictions", updates, uses);
  if (violations)
    s += fmt::format("; {} uses came before the prediction was scored (first prediction {})", violations,
                     first_violation);
  else
    s += fmt::format(", every one scored earlier (closest: {} clock ticks before its first use)", min_gap);
  return s;
}

}  // namespace golf::scoring
