// The audit projection: one PostgreSQL row per event, keyed by
// (partition, log_offset), written in batches (COPY) in the same transaction
// as the projector's positions, so that a crash or an outage of PostgreSQL
// loses nothing and duplicates nothing: the projector resumes where its last
// committed transaction stopped. The mail service never waits for it.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/system/result.hpp>

#include "eventlog/event_log.h"
#include "projections/runner.h"
#include "projections/timeline.h"
#include "schemas/event.h"

namespace a3::projections::audit {

class Connection;

struct Options {
  std::string url;  // libpq connection string
  std::size_t max_batch = 2000;
  // Between reconnection attempts while PostgreSQL is away: a connection
  // attempt is cheap, and the trail should be current soon after it is back.
  std::chrono::milliseconds max_backoff{5000};
  // Rows older than this are deleted, at most once an hour (the guide's
  // audit_retention_days); 0: kept for ever.
  int retention_days = 0;
  // Where the store's timeline file is (projections/timeline.h).
  std::filesystem::path data_dir{};
};

// Applies the versioned migrations that are not applied yet (at start-up).
[[nodiscard]] boost::system::result<void, Failure> migrate(Connection& db);

class AuditProjector : private Projection {
 public:
  AuditProjector(eventlog::EventLog& log, Options options);
  ~AuditProjector() override;

  void start();  // a background thread follows the log, retrying with backoff
  void stop();

  // Projects everything up to the log's current end on the calling thread.
  [[nodiscard]] boost::system::result<void, Failure> catch_up();

  // "ok" or the last error (for health checks and logs).
  std::string status() const;
  std::map<std::int32_t, std::int64_t> positions() const;  // committed next offsets

 private:
  // The Projection the runner drives: PostgreSQL may go away, so every
  // failure is retried from the last committed position.
  std::string name() const override { return "audit"; }
  boost::system::result<std::map<std::int32_t, std::int64_t>, Failure> open() override;
  Projection::Applied apply(std::int32_t partition,
                            std::vector<eventlog::Record>& records) override;
  bool retries() const override { return true; }
  void mailbox_sql(std::string& out, const schemas::Event& e);
  void purge();
  boost::system::result<void, Failure> follow_timeline();

  Options options_;
  std::unique_ptr<Connection> db_;
  std::chrono::steady_clock::time_point last_purge_{};  // the runner's thread only
  Timeline timeline_;                                   // the runner's thread only
  Runner runner_;  // last: its thread stops before the members it uses go
};

}  // namespace a3::projections::audit
