// core/progress.h — progress for long work: a live line with rate and ETA on a terminal
// (rewritten in place at most 4×/s), or a plain line every 10 s when stderr is a log file.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace golf {

class Progress {
 public:
  // `total` in the same units as update()'s `done` (0 = unknown: no percentage or ETA).
  Progress(std::string label, int64_t total, std::string unit = "B");
  // Reports `done` units finished, plus free text (counts, rates) appended to the line.
  void update(int64_t done, const std::string& detail = {});
  // Final line (always printed); ends the live line.
  void finish(const std::string& detail = {});
  double elapsed_seconds() const;

 private:
  void print(int64_t done, const std::string& detail, bool final);
  std::string label_, unit_;
  int64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_print_;
  int64_t last_done_ = 0;
};

// "12.3 MB", "4.56 GB": decimal units, as in the challenge's byte limits.
std::string human_bytes(double bytes);
// "1m05s", "12.3s"
std::string human_seconds(double seconds);
// 1234567 → "1,234,567" (reports in decimal bytes, as the limit is).
std::string with_commas(int64_t n);

}  // namespace golf
