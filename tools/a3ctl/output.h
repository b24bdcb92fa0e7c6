// Small output helpers shared by a3ctl's commands.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace a3::ctl {

// "2026-11-25T22:00:00Z" (UTC, to the second).
inline std::string iso(std::int64_t ms) {
  const std::chrono::sys_seconds t{std::chrono::seconds(ms / 1000)};
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", t);
}

// "0:12 1:7", or "(empty)".
inline std::string offsets_text(const std::map<std::int32_t, std::int64_t>& offsets) {
  std::string s;
  for (const auto& [p, o] : offsets)
    s += fmt::format("{}{}:{}", s.empty() ? "" : " ", p, o);
  return s.empty() ? "(empty)" : s;
}

// "replay: [####......] 120000/200000 events (60%)  95000 events/s  ETA 1s",
// redrawn on one line of standard error at most five times a second.
class ProgressBar {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ProgressBar(std::string label) : label_(std::move(label)), start_(Clock::now()) {}
  void operator()(std::int64_t done, std::int64_t total) {
    const auto now = Clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0;
    const int pct = total ? static_cast<int>(100 * done / total) : 100;
    const int width = 30, filled = width * pct / 100;
    fmt::print(stderr, "\r{}: [{}{}] {}/{} events ({}%)  {:.0f} events/s  ETA {:.0f}s   ", label_,
               std::string(filled, '#'), std::string(width - filled, '.'), done, total, pct, rate,
               eta);
    if (done >= total) fmt::print(stderr, "\n");
  }

 private:
  std::string label_;
  Clock::time_point start_, last_{};
};

}  // namespace a3::ctl
