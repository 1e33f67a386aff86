#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <fmt/format.h>

namespace golf {

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), tty_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()), last_print_(start_) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, const std::string& detail) {
  last_done_ = done;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if (since < (tty_ ? 0.25 : 10.0)) return;
  last_print_ = now;
  print(done, detail, false);
}

void Progress::finish(const std::string& detail) { print(last_done_, detail, true); }

static std::string amount(double v, const std::string& unit) {
  return unit == "B" ? human_bytes(v) : fmt::format("{:.0f} {}", v, unit);
}

void Progress::print(int64_t done, const std::string& detail, bool final) {
  const double secs = elapsed_seconds();
  std::string line = fmt::format("{}: {}", label_, amount(static_cast<double>(done), unit_));
  if (total_ > 0) {
    const double frac = static_cast<double>(done) / static_cast<double>(total_);
    line += fmt::format(" / {} ({:.1f}%)", amount(static_cast<double>(total_), unit_), 100.0 * frac);
    if (!final && frac > 0.001) line += fmt::format(" eta {}", human_seconds(secs * (1.0 - frac) / frac));
  }
  if (!detail.empty()) line += "  " + detail;
  line += fmt::format("  [{}]", human_seconds(secs));
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000.0 && u < 4) {
    bytes /= 1000.0;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.2f} {}", bytes, units[u]);
}

std::string human_seconds(double seconds) {
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s < 3600) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
}

std::string with_commas(int64_t n) {
  const std::string digits = std::to_string(n < 0 ? -static_cast<uint64_t>(n) : static_cast<uint64_t>(n));
  std::string out = n < 0 ? "-" : "";
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace golf
