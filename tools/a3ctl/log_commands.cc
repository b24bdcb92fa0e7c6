// a3ctl log dump|tail|end: read the event log, whether or not the daemon runs
// (a RocksDB read-only instance; tail reopens one as the log grows).
#include <signal.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "common/json.h"
#include "eventlog/open.h"
#include "schemas/codec.h"
#include "schemas/event_json.h"
#include "tools/a3ctl/commands.h"

namespace a3::ctl {

namespace {

using eventlog::Position;
using eventlog::Record;

std::atomic<bool> g_stop{false};
extern "C" void on_stop(int) {
  g_stop = true;
}

struct Options {
  std::optional<Position> from;
  std::int64_t count = -1;  // -1: no limit
  bool json = false;
};

// Parses the options of dump/tail; prints the problem and returns nullopt.
std::optional<Options> parse_options(const std::vector<std::string>& args, bool allow_count) {
  Options o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--json") {
      o.json = true;
    } else if (a == "--from" && i + 1 < args.size()) {
      o.from = Position::parse(args[++i]);
      if (!o.from) {
        fmt::print(stderr, "a3ctl: --from expects PARTITION:OFFSET, e.g. 0:42 (got '{}')\n",
                   args[i]);
        return std::nullopt;
      }
    } else if (allow_count && a == "--count" && i + 1 < args.size()) {
      const std::string& v = args[++i];
      auto r = std::from_chars(v.data(), v.data() + v.size(), o.count);
      if (r.ec != std::errc() || r.ptr != v.data() + v.size() || o.count < 0) {
        fmt::print(stderr, "a3ctl: --count expects a number (got '{}')\n", v);
        return std::nullopt;
      }
    } else {
      fmt::print(stderr, "a3ctl: unexpected argument '{}'\n", a);
      return std::nullopt;
    }
  }
  return o;
}

// Prints one record; returns false if it does not hold a valid event. A
// corrupt event is reported with its partition and offset, never skipped
// silently.
bool print_record(const Record& r, bool json) {
  auto ev = schemas::decode(r.value);
  if (json) {
    if (ev) {
      fmt::print("{{\"partition\":{},\"offset\":{},\"timestamp_ms\":{},\"event\":{}}}\n",
                 r.position.partition, r.position.offset, r.timestamp_ms, schemas::to_json(*ev));
    } else {
      fmt::print("{{\"partition\":{},\"offset\":{},\"timestamp_ms\":{},\"error\":{}}}\n",
                 r.position.partition, r.position.offset, r.timestamp_ms,
                 json_string("corrupt event: " + ev.error().detail));
    }
  } else if (ev) {
    fmt::print("{:<10} {}\n", r.position.str(), schemas::to_text(*ev));
  } else {
    fmt::print("{:<10} CORRUPT EVENT ({} bytes): {}\n", r.position.str(), r.value.size(),
               ev.error().detail);
  }
  if (std::fflush(stdout) != 0) g_stop = true;  // the reader went away
  if (!ev) {
    fmt::print(stderr, "a3ctl: event at {} is corrupt: {}\n", r.position.str(), ev.error().detail);
  }
  return static_cast<bool>(ev);
}

int read_error(Position at, const boost::system::error_code& ec) {
  fmt::print(stderr, "a3ctl: reading the log at {} failed: {}\n", at.str(), ec.message());
  return 1;
}

int dump(eventlog::EventLog& log, const Options& o) {
  bool ok = true;
  std::int64_t printed = 0;
  const std::int32_t first = o.from ? o.from->partition : 0;
  const std::int32_t last = o.from ? o.from->partition : log.partitions() - 1;
  if (first >= log.partitions()) {
    fmt::print(stderr, "a3ctl: the log has {} partitions (0..{})\n", log.partitions(),
               log.partitions() - 1);
    return 2;
  }
  for (std::int32_t p = first; p <= last; ++p) {
    auto end = log.end_offset(p);
    if (!end) return read_error({p, 0}, end.error());
    auto reader = log.open_reader({p, o.from ? o.from->offset : 0});
    if (!reader) return read_error({p, 0}, reader.error());
    while ((*reader)->position().offset < *end && (o.count < 0 || printed < o.count) && !g_stop) {
      auto batch = (*reader)->poll(512, std::chrono::seconds(5));
      if (!batch) return read_error((*reader)->position(), batch.error());
      if (batch->empty()) return read_error((*reader)->position(), eventlog::errc::unavailable);
      for (const Record& r : *batch) {
        if (r.position.offset >= *end || (o.count >= 0 && printed >= o.count)) break;
        ok = print_record(r, o.json) && ok;
        ++printed;
      }
    }
  }
  return ok ? 0 : 1;
}

// Follows the log by reopening a read-only snapshot of it twice a second:
// RocksDB 7.8's secondary instances, which follow a writer, crash on blob
// files (docs/recovery.md), and a snapshot costs one open.
int tail(const config::Config& config, eventlog::EventLog& first_snapshot, const Options& o) {
  std::vector<std::int64_t> next;
  const std::int32_t first = o.from ? o.from->partition : 0;
  const std::int32_t last = o.from ? o.from->partition : first_snapshot.partitions() - 1;
  for (std::int32_t p = first; p <= last; ++p) {
    if (o.from) {
      next.push_back(o.from->offset);
    } else {
      auto end = first_snapshot.end_offset(p);
      if (!end) return read_error({p, 0}, end.error());
      next.push_back(*end);
    }
  }
  bool ok = true;
  std::unique_ptr<eventlog::EventLog> reopened;
  eventlog::EventLog* log = &first_snapshot;
  while (!g_stop) {
    for (std::int32_t p = first; p <= last && !g_stop; ++p) {
      std::int64_t& at = next[static_cast<std::size_t>(p - first)];
      auto end = log->end_offset(p);
      if (!end) return read_error({p, at}, end.error());
      if (at >= *end) continue;
      auto reader = log->open_reader({p, at});
      if (!reader) return read_error({p, at}, reader.error());
      while (at < *end && !g_stop) {
        auto batch = (*reader)->poll(512, std::chrono::seconds(5));
        if (!batch) return read_error((*reader)->position(), batch.error());
        if (batch->empty()) break;
        for (const Record& r : *batch) {
          ok = print_record(r, o.json) && ok;
          at = r.position.offset + 1;
        }
      }
    }
    for (int i = 0; i < 10 && !g_stop; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (g_stop) break;
    reopened.reset();
    reopened = eventlog::open(config, eventlog::Access::snapshot);
    log = reopened.get();
  }
  return ok ? 0 : 1;
}

}  // namespace

int log_command(const std::string& sub, Context& ctx) {
  if (sub != "dump" && sub != "tail" && sub != "end") {
    fmt::print(stderr, "a3ctl: log expects dump, tail or end (got '{}')\n", sub);
    return 2;
  }
  auto opts = parse_options(ctx.args, sub == "dump");
  if (!opts) return 2;
  // Stop cleanly (closing the log removes the follower's temp directory) on
  // Ctrl-C, and treat a closed pipe (`a3ctl log dump | head`) as a stop.
  signal(SIGINT, on_stop);
  signal(SIGTERM, on_stop);
  signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<eventlog::EventLog> log;
  try {
    // dump and end read the log as it is; tail reopens it as it grows.
    log = eventlog::open(ctx.config, eventlog::Access::snapshot);
  } catch (const std::exception& e) {
    fmt::print(stderr, "a3ctl: {}\n", e.what());
    return 1;
  }
  if (opts->from && opts->from->partition >= log->partitions()) {
    fmt::print(stderr, "a3ctl: the log has {} partitions (0..{})\n", log->partitions(),
               log->partitions() - 1);
    return 2;
  }
  if (sub == "end") {
    for (std::int32_t p = 0; p < log->partitions(); ++p) {
      auto end = log->end_offset(p);
      if (!end) return read_error({p, 0}, end.error());
      if (opts->json) {
        fmt::print("{{\"partition\":{},\"end_offset\":{}}}\n", p, *end);
      } else {
        fmt::print("{}:{}\n", p, *end);
      }
    }
    return 0;
  }
  try {
    return sub == "dump" ? dump(*log, *opts) : tail(ctx.config, *log, *opts);
  } catch (const std::exception& e) {
    // e.g. standard output closed (EPIPE): stop; closing the log cleans up.
    return g_stop ? 0 : (fmt::print(stderr, "a3ctl: {}\n", e.what()), 1);
  }
}

}  // namespace a3::ctl
