#include "monitoring/sampler.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <spdlog/spdlog.h>

#include "common/json.h"
#include "common/metrics.h"
#include "projections/audit/pg.h"

namespace a3::monitoring {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSampleEvery = std::chrono::seconds(5);

std::string label(std::int32_t partition) {
  return std::to_string(partition);
}

// The memory the process may use: its cgroup's limit, else the machine's.
double memory_limit_bytes() {
  std::ifstream cg("/sys/fs/cgroup/memory.max");
  std::string v;
  if (cg >> v && v != "max") {
    try {
      return std::stod(v);
    } catch (...) {
    }
  }
  std::ifstream mem("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (mem >> key >> kb >> unit) {
    if (key == "MemTotal:") return kb * 1024;
  }
  return 0;
}

}  // namespace

Sampler::Sampler(Sources sources, const config::Monitoring& options)
    : src_(std::move(sources)), options_(options) {}

Sampler::~Sampler() {
  stop();
}

void Sampler::start() {
  thread_ = std::thread([this] { run(); });
}

void Sampler::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Sampler::stopping() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  verdict_ = {false, R"({"ready":false,"why":"stopping"})"};
}

Verdict Sampler::verdict() const {
  std::lock_guard lock(mu_);
  return verdict_;
}

void Sampler::run() {
  const auto check_every = std::chrono::seconds(options_.health_check_interval_s);
  const auto tick = std::min<Clock::duration>(kSampleEvery, check_every);
  auto next_check = Clock::now();
  for (;;) {
    try {
      sample();
      if (Clock::now() >= next_check) {
        check();
        next_check = Clock::now() + check_every;
      }
    } catch (const std::exception& e) {
      spdlog::warn("monitoring: sampling failed: {}", e.what());
    }
    std::unique_lock lock(mu_);
    if (wake_.wait_for(lock, tick, [&] { return stop_; })) return;
  }
}

void Sampler::sample() {
  const auto now = Clock::now();
  // The log's ends, and how far behind each projector is.
  for (std::int32_t p = 0; p < src_.log.partitions(); ++p) {
    if (auto end = src_.log.end_offset(p)) {
      ends_[p] = *end;
      metrics::gauge("a3_eventlog_end_offset", "The next offset of each partition of the log",
                     {{"partition", label(p)}})
          .Set(static_cast<double>(*end));
    }
  }
  metrics::gauge("a3_eventlog_healthy", "1 when the log takes appends, 0 when it refuses them")
      .Set(src_.log.failure().empty() ? 1 : 0);
  auto follow = [&](const std::string& name, const std::map<std::int32_t, std::int64_t>& at) {
    std::int64_t total = 0;
    for (const auto& [p, end] : ends_) {
      const auto it = at.find(p);
      const std::int64_t next = it == at.end() ? 0 : it->second;
      const std::int64_t lag = std::max<std::int64_t>(0, end - next);
      total += lag;
      const prometheus::Labels labels{{"projector", name}, {"partition", label(p)}};
      metrics::gauge("a3_projector_next_offset", "The next offset each projector will apply",
                     labels)
          .Set(static_cast<double>(next));
      metrics::gauge("a3_projector_lag_events", "Events in the log not yet applied", labels)
          .Set(static_cast<double>(lag));
      // Seconds since the projector was last caught up: when it has applied
      // everything the log held at the previous sample, it was caught up
      // then (a busy but healthy projector is always a few events behind).
      auto& seen = caught_up_[{name, p}];
      auto& before = previous_end_[{name, p}];
      if (lag == 0 || seen == Clock::time_point{}) {
        seen = now;
      } else if (next >= before.first) {
        seen = std::max(seen, before.second);
      }
      before = {end, now};
      metrics::gauge("a3_projector_lag_seconds",
                     "Seconds since the projector was last caught up with the log", labels)
          .Set(std::chrono::duration<double>(now - seen).count());
    }
    lag_[name] = total;
    return total;
  };
  follow("view", src_.projector.positions());
  if (src_.audit) {
    const auto lag = follow("audit", src_.audit->positions());
    metrics::gauge("a3_audit_lag_events", "Events not yet in the PostgreSQL audit trail")
        .Set(static_cast<double>(lag));
  }

  // The outbound queue.
  const auto q = src_.store.queue_stats();
  metrics::gauge("a3_outbound_queue_messages", "Messages waiting in the outbound queue")
      .Set(static_cast<double>(q.messages));
  metrics::gauge("stalwart_queue_size",
                 "The deployment guide's name for a3_outbound_queue_messages")
      .Set(static_cast<double>(q.messages));
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  metrics::gauge("a3_outbound_queue_oldest_age_seconds",
                 "Age of the oldest message in the outbound queue (0 when empty)")
      .Set(q.oldest_ms ? static_cast<double>(now_ms - q.oldest_ms) / 1000.0 : 0);

  // RocksDB's view of the mailbox view, over every column family.
  if (rocksdb::DB* db = src_.view.db()) {
    for (auto [property, name, help] :
         {std::tuple{"rocksdb.cur-size-all-mem-tables", "a3_view_memtable_bytes",
                     "Bytes in the view's memtables"},
          std::tuple{"rocksdb.estimate-pending-compaction-bytes",
                     "a3_view_pending_compaction_bytes",
                     "Bytes RocksDB estimates its compactions still have to rewrite"},
          std::tuple{"rocksdb.total-sst-files-size", "a3_view_sst_bytes",
                     "Bytes of the view's SST files"},
          std::tuple{"rocksdb.total-blob-file-size", "a3_view_blob_bytes",
                     "Bytes of the view's blob files (message bodies)"}}) {
      std::uint64_t v = 0;
      if (db->GetAggregatedIntProperty(property, &v))
        metrics::gauge(name, help).Set(static_cast<double>(v));
    }
  }

  // The disk the data is on.
  struct statvfs fs {};
  if (statvfs(src_.data_dir.c_str(), &fs) == 0) {
    const double free = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
    const double size = static_cast<double>(fs.f_blocks) * static_cast<double>(fs.f_frsize);
    metrics::gauge("a3_disk_free_bytes", "Free bytes on the data directory's file system")
        .Set(free);
    metrics::gauge("a3_disk_size_bytes", "Size of the data directory's file system").Set(size);
  }
  process_stats();
}

void Sampler::process_stats() {
  // /proc/self/stat: utime and stime (fields 14, 15) in clock ticks.
  std::ifstream stat("/proc/self/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::stod(field);
      if (i == 15) stime = std::stod(field);
    }
    const double cpu_s = (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    const auto now = Clock::now();
    metrics::gauge("a3_process_cpu_seconds", "CPU time the process has used, in seconds")
        .Set(cpu_s);
    if (last_cpu_at_ != Clock::time_point{}) {
      const double wall = std::chrono::duration<double>(now - last_cpu_at_).count();
      const long cores = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
      // Of the whole machine: 100 is every core busy.
      const double percent = wall > 0 ? 100.0 * (cpu_s - last_cpu_s_) / wall / cores : 0;
      metrics::gauge("a3_process_cpu_usage_percent",
                     "CPU the process used over the last sample, in percent of all cores")
          .Set(percent);
      metrics::gauge("stalwart_cpu_usage_percent",
                     "The deployment guide's name for a3_process_cpu_usage_percent")
          .Set(percent);
    }
    last_cpu_s_ = cpu_s;
    last_cpu_at_ = now;
  }
  // /proc/self/statm: resident pages are the second field.
  std::ifstream statm("/proc/self/statm");
  double size = 0, resident = 0;
  if (statm >> size >> resident) {
    const double rss = resident * static_cast<double>(sysconf(_SC_PAGESIZE));
    metrics::gauge("a3_process_resident_memory_bytes", "Resident memory of the process").Set(rss);
    metrics::gauge("stalwart_memory_usage_bytes",
                   "The deployment guide's name for a3_process_resident_memory_bytes")
        .Set(rss);
    if (const double limit = memory_limit_bytes(); limit > 0) {
      metrics::gauge("a3_process_memory_usage_percent",
                     "Resident memory in percent of the cgroup's limit or of the machine's memory")
          .Set(100.0 * rss / limit);
      metrics::gauge("stalwart_memory_usage_percent",
                     "The deployment guide's name for a3_process_memory_usage_percent")
          .Set(100.0 * rss / limit);
    }
  }
  std::size_t fds = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++fds;
  metrics::gauge("a3_process_open_fds", "File descriptors the process has open")
      .Set(static_cast<double>(fds));
  metrics::gauge("a3_process_max_fds", "The process's file descriptor limit")
      .Set(static_cast<double>(sysconf(_SC_OPEN_MAX)));
}

void Sampler::check() {
  // Each check: its name, whether it passes, and what it found.
  std::vector<std::tuple<std::string, bool, std::string>> checks;
  const std::string failure = src_.log.failure();
  checks.emplace_back("log", failure.empty(), failure.empty() ? "takes appends" : failure);
  const std::int64_t lag = lag_["view"];
  const std::string status = src_.projector.status();
  checks.emplace_back(
      "view", status == "ok" && lag <= options_.max_projector_lag,
      fmt::format("{} events behind ({}), at most {}", lag, status, options_.max_projector_lag));
  if (src_.audit) {
    // The mail service does not wait for PostgreSQL; readiness says when
    // the audit trail cannot follow.
    const auto [answers, detail] = projections::audit::ping(src_.database);
    checks.emplace_back("database", answers, detail);
    const std::int64_t audit_lag = lag_["audit"];
    checks.emplace_back("audit", audit_lag <= options_.max_projector_lag,
                        fmt::format("{} events behind ({}), at most {}", audit_lag,
                                    src_.audit->status(), options_.max_projector_lag));
  }
  bool ready = true;
  std::string json = "{\"checks\":{";
  for (std::size_t i = 0; i < checks.size(); ++i) {
    const auto& [name, ok, detail] = checks[i];
    ready = ready && ok;
    metrics::gauge("a3_health_check", "1 when a readiness check passes", {{"check", name}})
        .Set(ok ? 1 : 0);
    json += fmt::format("{}\"{}\":{{\"ok\":{},\"detail\":", i ? "," : "", name, ok);
    append_json_string(json, detail);
    json += "}";
  }
  std::lock_guard lock(mu_);
  if (stopping_) return;
  verdict_ = {ready, fmt::format("{}}},\"ready\":{}}}", json, ready)};
  metrics::gauge("a3_ready", "1 when the daemon is ready for clients").Set(ready ? 1 : 0);
}

}  // namespace a3::monitoring
