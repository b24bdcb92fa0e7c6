// Wall-clock time as events and records carry it.
#pragma once

#include <chrono>
#include <cstdint>

namespace a3 {

// Milliseconds since the Unix epoch.
inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace a3
