// eventlog_append: durable appends/s of the local event log for 1, 16 and 64
// concurrent appenders with 1 KiB and 64 KiB events, next to the raw
// write+fdatasync rate of the same disk measured in the same run (the
// physical reference: one durable write per sync).
//
// usage: eventlog_append [--seconds S] [--dir DIR]
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "eventlog/local/local_log.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Writes `size` bytes and fdatasyncs, repeatedly, for `seconds`: ops/s.
double raw_fdatasync_rate(const fs::path& dir, std::size_t size, double seconds) {
  const fs::path file = dir / "raw-fdatasync";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + file.string());
  std::string block(size, 'x');
  std::uint64_t ops = 0;
  const auto start = Clock::now();
  while (seconds_since(start) < seconds) {
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
        ::fdatasync(fd) != 0) {
      throw std::runtime_error("write/fdatasync failed");
    }
    ++ops;
  }
  const double rate = static_cast<double>(ops) / seconds_since(start);
  ::close(fd);
  fs::remove(file);
  return rate;
}

enum class Mode { threads, async };

// Sequential write bandwidth with one final fdatasync (MB/s): the bound for
// large events, where batching cannot beat the disk's bandwidth.
double raw_bandwidth(const fs::path& dir) {
  const fs::path file = dir / "raw-bandwidth";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + file.string());
  const std::string block(1 << 20, 'b');
  const auto start = Clock::now();
  for (int i = 0; i < 256; ++i) {
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
      throw std::runtime_error("write failed");
    }
  }
  if (::fdatasync(fd) != 0) throw std::runtime_error("fdatasync failed");
  const double mbps = 256.0 * (1 << 20) / 1e6 / seconds_since(start);
  ::close(fd);
  fs::remove(file);
  return mbps;
}

struct Result {
  double appends_per_s;
  double records_per_sync;
};

// One asynchronous appender: appends, and from the completion appends again,
// like a session coroutine awaiting each append before the next.
struct AsyncAppender {
  a3::eventlog::EventLog* log;
  std::string key;
  const std::string* payload;
  std::atomic<bool>* stop;
  std::atomic<std::uint64_t>* acked;
  std::atomic<std::uint64_t>* failed;
  std::atomic<int>* running;

  void next() {
    if (stop->load(std::memory_order_relaxed)) {
      running->fetch_sub(1);
      return;
    }
    log->append_async(key, *payload, [this](a3::eventlog::AppendResult r) {
      (r ? acked : failed)->fetch_add(1, std::memory_order_relaxed);
      next();
    });
  }
};

Result log_rate(const fs::path& dir, std::size_t size, int appenders, double seconds, Mode mode) {
  a3::eventlog::local::Options o;
  o.path = dir;
  auto log = a3::eventlog::local::LocalLog::open(o);
  const std::string payload(size, 'e');
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> acked{0}, failed{0};
  std::vector<std::thread> threads;
  std::vector<AsyncAppender> chains;
  std::atomic<int> running{appenders};
  const auto start = Clock::now();
  if (mode == Mode::async) {
    chains.reserve(static_cast<std::size_t>(appenders));
    for (int t = 0; t < appenders; ++t) {
      chains.push_back({log.get(), fmt::format("user{}@example.test", t), &payload, &stop, &acked,
                        &failed, &running});
    }
    for (auto& c : chains)
      c.next();
  }
  for (int t = 0; mode == Mode::threads && t < appenders; ++t) {
    threads.emplace_back([&, t] {
      const std::string key = fmt::format("user{}@example.test", t);
      while (!stop.load(std::memory_order_relaxed)) {
        if (log->append(key, payload)) {
          acked.fetch_add(1, std::memory_order_relaxed);
        } else {
          failed.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : threads)
    th.join();
  while (mode == Mode::async && running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const double elapsed = seconds_since(start);
  const auto stats = log->stats();
  log->close();
  if (failed) throw std::runtime_error(fmt::format("{} appends failed", failed.load()));
  return {
      static_cast<double>(acked) / elapsed,
      stats.batches ? static_cast<double>(stats.records) / static_cast<double>(stats.batches) : 0};
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  fs::path dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      fmt::print(stderr, "usage: eventlog_append [--seconds S] [--dir DIR]\n");
      return 2;
    }
  }
  bool own_dir = false;
  if (dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "a3-bench-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) return 1;
    dir = tmpl;
    own_dir = true;
  }
  fs::create_directories(dir);
  fmt::print("eventlog_append: local log in {}, {} s per case, {} cores\n", dir.string(), seconds,
             std::thread::hardware_concurrency());

  fmt::print("reference: sequential write of 256 MiB + fdatasync = {:.0f} MB/s\n",
             raw_bandwidth(dir));
  for (std::size_t size : {std::size_t{1024}, std::size_t{64 * 1024}}) {
    const double raw = raw_fdatasync_rate(dir, size, seconds);
    for (Mode mode : {Mode::async, Mode::threads}) {
      fmt::print("\n{} KiB events, {}; reference: write+fdatasync of {} KiB = {:.0f} ops/s\n",
                 size / 1024,
                 mode == Mode::async ? "asynchronous appenders (append_async, as sessions use it)"
                                     : "one blocking thread per appender",
                 size / 1024, raw);
      fmt::print("  {:>9} {:>12} {:>9} {:>14} {:>12} {:>14}\n", "appenders", "appends/s", "MB/s",
                 "records/sync", "x reference", "x 1 appender");
      double single = 0;
      for (int n : {1, 16, 64}) {
        const fs::path case_dir = dir / fmt::format("log-{}k-{}", size / 1024, n);
        const Result r = log_rate(case_dir, size, n, seconds, mode);
        fs::remove_all(case_dir);
        if (n == 1) single = r.appends_per_s;
        fmt::print("  {:>9} {:>12.0f} {:>9.1f} {:>14.1f} {:>12.2f} {:>14.1f}\n", n, r.appends_per_s,
                   r.appends_per_s * static_cast<double>(size) / 1e6, r.records_per_sync,
                   r.appends_per_s / raw, r.appends_per_s / single);
        if (n == 64) {
          const double gain = r.appends_per_s / single;
          const bool ok = gain >= 30;
          fmt::print("  group commit: 64 appenders = {:.1f}x one appender (target >= 30x): {}\n",
                     gain, ok ? "met" : "NOT MET");
        }
      }
    }
  }
  if (own_dir) fs::remove_all(dir);
  return 0;
}
