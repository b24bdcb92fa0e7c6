// Test helper: appends to a local log from many threads and prints
// "<value> <offset>" for every acknowledged append, until it is killed.
// Usage: a3_crash_child LOG_DIR PREFIX
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "eventlog/local/local_log.h"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  a3::eventlog::local::Options o;
  o.path = argv[1];
  o.partitions = 1;
  auto log = a3::eventlog::local::LocalLog::open(o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0;; ++i) {
        const std::string v = fmt::format("{}-{}-{:06}", argv[2], t, i);
        auto pos = log->append("crash-test", v + std::string(200 + (i % 7) * 100, '.'));
        if (!pos) _exit(3);
        // One write(2) per line, after the acknowledgement: what the parent
        // reads was acknowledged.
        const std::string line = fmt::format("{} {}\n", v, pos->offset);
        if (write(STDOUT_FILENO, line.data(), line.size()) < 0) _exit(4);
      }
    });
  }
  for (auto& th : threads)
    th.join();
}
