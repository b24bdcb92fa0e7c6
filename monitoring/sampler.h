// What the monitoring knows about the daemon beyond counters: a thread
// that, every few seconds, reads the log's end offsets, the projectors'
// positions, the outbound queue, RocksDB's sizes and the process's CPU,
// memory and file descriptors into gauges, and every
// [monitoring] health_check_interval decides readiness (the log takes
// appends, the view and the audit trail keep up, PostgreSQL answers, the
// listeners are up). The HTTP listener only reads what it left.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "common/config.h"
#include "eventlog/event_log.h"
#include "monitoring/http_server.h"
#include "projections/audit/audit_projector.h"
#include "projections/projector.h"
#include "projections/store.h"
#include "projections/view/view_db.h"

namespace a3::monitoring {

struct Sources {
  eventlog::EventLog& log;
  projections::Projector& projector;
  projections::view::ViewDb& view;
  projections::Store& store;
  projections::audit::AuditProjector* audit = nullptr;  // null: no audit trail
  std::string database;  // libpq connection string, checked when audit is set
  std::filesystem::path data_dir;
};

class Sampler {
 public:
  Sampler(Sources sources, const config::Monitoring& options);
  ~Sampler();

  void start();
  void stop();
  // From now on not ready (SIGTERM: load balancers stop sending clients).
  void stopping();
  // The last verdict (never computed on the caller's thread).
  Verdict verdict() const;

 private:
  void run();
  void sample();
  void check();
  void process_stats();

  Sources src_;
  const config::Monitoring options_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;                                              // guarded by mu_
  bool stopping_ = false;                                          // guarded by mu_
  Verdict verdict_{false, R"({"ready":false,"why":"starting"})"};  // guarded by mu_
  // The sampler thread's own.
  std::map<std::pair<std::string, std::int32_t>, std::chrono::steady_clock::time_point> caught_up_;
  std::map<std::int32_t, std::int64_t> ends_;
  // The log's end at the previous sample, and when that was.
  std::map<std::pair<std::string, std::int32_t>,
           std::pair<std::int64_t, std::chrono::steady_clock::time_point>>
      previous_end_;
  std::map<std::string, std::int64_t> lag_;  // per projector, summed over partitions
  double last_cpu_s_ = 0;
  std::chrono::steady_clock::time_point last_cpu_at_{};
  std::thread thread_;
};

}  // namespace a3::monitoring
