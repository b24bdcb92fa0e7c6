// The audit projection: one PostgreSQL row per event, keyed by
// (partition, log_offset), written in batches (COPY) in the same transaction
// as the projector's positions, so that a crash or an outage of PostgreSQL
// loses nothing and duplicates nothing: the projector resumes where its last
// committed transaction stopped. The mail service never waits for it.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "eventlog/event_log.h"
#include "schemas/event.h"

namespace a3::projections::audit {

class Connection;

struct Options {
  std::string url;  // libpq connection string
  std::size_t max_batch = 2000;
  std::chrono::milliseconds max_backoff{30000};
};

// Applies the versioned migrations that are not applied yet (at start-up).
// Returns an error text, or nullopt.
std::optional<std::string> migrate(Connection& db);

class AuditProjector {
 public:
  AuditProjector(eventlog::EventLog& log, Options options);
  ~AuditProjector();

  void start();  // a background thread follows the log, retrying with backoff
  void stop();

  // Projects everything up to the log's current end on the calling thread.
  // Returns the error text, or nullopt.
  std::optional<std::string> catch_up();

  // "ok" or the last error (for health checks and logs).
  std::string status() const;
  std::map<std::int32_t, std::int64_t> positions() const;  // committed next offsets

 private:
  std::optional<std::string> connect();
  // One batch per partition; sets *any if something was written.
  std::optional<std::string> step(std::chrono::milliseconds wait, bool* any,
                                  const std::vector<std::int64_t>* until = nullptr);
  void run();
  void mailbox_sql(std::string& out, const schemas::Event& e);

  eventlog::EventLog& log_;
  Options options_;
  std::unique_ptr<Connection> db_;
  std::vector<std::unique_ptr<eventlog::Reader>> readers_;
  mutable std::mutex mu_;
  std::map<std::int32_t, std::int64_t> positions_;
  std::string status_ = "starting";
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace a3::projections::audit
