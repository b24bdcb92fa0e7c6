// The one projection runner: it follows every partition of the log, hands
// each partition's records to a Projection in batches, keeps the positions
// and the projection's health, and runs on its own thread (start) or on the
// caller's (catch_up). The mailbox view and the audit trail are
// Projections; the outbound queue will be one.
//
// A projection writes a batch and its partition's next offset in one atomic
// write (a RocksDB WriteBatch, a PostgreSQL transaction), so positions only
// move forward and no event is applied twice or skipped across crashes.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/system/result.hpp>

#include "eventlog/event_log.h"

namespace a3::projections {

// Why a projection did not apply (all of) a batch.
struct Failure {
  std::string what;
  // The projection's own store failed to write (a full disk, say): retried
  // with a backoff whatever retries() says, since waiting can fix it.
  bool transient = false;
};

class Projection {
 public:
  virtual ~Projection() = default;
  virtual std::string name() const = 0;

  // (Re)opens the projection's own store and returns the next offset it
  // committed for each partition (absent: 0).
  virtual boost::system::result<std::map<std::int32_t, std::int64_t>, Failure> open() = 0;

  // Applies `records` (one partition's, in offset order) and commits them
  // with the partition's next offset. Returns that next offset: the end of
  // the batch, or the record it stopped before (a corrupt event), with the
  // failure then.
  struct Applied {
    std::int64_t next = 0;
    std::optional<Failure> failure;
  };
  virtual Applied apply(std::int32_t partition, std::vector<eventlog::Record>& records) = 0;

  // After a failure that is not transient: true to retry with a growing
  // backoff, reopening first (an external store that went away); false to
  // stop and say so until an operator acts (the view cannot guess past an
  // event).
  virtual bool retries() const = 0;

  // Called on the runner's thread at least every 200 ms, busy or idle
  // (deadlines of waiters, for instance).
  virtual void tick() {}
};

struct RunnerOptions {
  std::size_t max_batch = 2048;
  std::chrono::milliseconds min_backoff{250};
  std::chrono::milliseconds max_backoff{30000};
};

class Runner {
 public:
  Runner(eventlog::EventLog& log, Projection& projection, RunnerOptions options = {});
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  void start();  // a background thread follows the log
  void stop();
  bool running() const { return thread_.joinable(); }

  // Applies everything up to the log's current end (or exactly up to
  // `targets`) on the calling thread. `progress` is called after each
  // batch with (applied, total). Returns the failure, if any.
  std::optional<Failure> catch_up(
      const std::function<void(std::int64_t, std::int64_t)>& progress = {},
      const std::map<std::int32_t, std::int64_t>* targets = nullptr);

  // "ok", "starting", or the failure that stopped (or is delaying) it.
  std::string status() const;
  bool failed() const;                                     // stopped on a failure it does not retry
  std::map<std::int32_t, std::int64_t> positions() const;  // next offset per partition

 private:
  std::optional<Failure> open();
  // One batch per partition; *any is set when something was applied.
  // With `until`, only partitions whose reader is before their entry.
  std::optional<Failure> step(std::chrono::milliseconds wait, bool* any,
                              const std::vector<std::int64_t>* until = nullptr);
  void run();
  void set_status(std::string status);

  eventlog::EventLog& log_;
  Projection& projection_;
  RunnerOptions options_;
  bool open_ = false;
  std::vector<std::unique_ptr<eventlog::Reader>> readers_;

  mutable std::mutex mu_;
  std::map<std::int32_t, std::int64_t> positions_;  // guarded by mu_
  std::string status_ = "starting";                 // guarded by mu_
  bool failed_ = false;                             // guarded by mu_

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace a3::projections
