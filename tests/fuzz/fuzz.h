// Shared by the libFuzzer targets of tests/fuzz. Each target defines
// LLVMFuzzerTestOneInput; libFuzzer drives it (tools/dev fuzz), or
// replay_main.cc runs it over its corpus as a regression test (ctest
// fuzz.NAME in the normal build).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

// A property every input must keep: a violation aborts, so that libFuzzer
// saves the input as a crash.
#define A3_FUZZ_CHECK(cond, what)                                                             \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "fuzz check failed at %s:%d: %s: %s\n", __FILE__, __LINE__, #cond, \
                   std::string(what).c_str());                                                \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

namespace a3::fuzz {

inline std::string_view bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The next piece of `in` up to and including a LF (or the rest), removed
// from it: a pipelined stream cut as reads would deliver it.
inline std::string_view next_line(std::string_view& in) {
  const auto lf = in.find('\n');
  const std::size_t n = lf == std::string_view::npos ? in.size() : lf + 1;
  const std::string_view line = in.substr(0, n);
  in.remove_prefix(n);
  return line;
}

}  // namespace a3::fuzz
