// Runs the mailbox projection: reads every partition of the log from the
// positions stored in the view, applies events in batches, and writes each
// batch with its next offsets in one atomic RocksDB write, so a crash at any
// point neither loses nor double-applies an event.
//
// A frontend appends an event, then waits for its position to be applied
// (read-your-writes) and gets the outcome (e.g. the UID assigned).
//
// A corrupt record stops the projection (failure() says where and why): an
// event is never skipped.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/system/result.hpp>

#include "eventlog/event_log.h"
#include "projections/outcome.h"
#include "projections/runner.h"
#include "projections/view/batch.h"
#include "projections/view/view_db.h"

namespace a3::projections {

struct ProjectorStats {
  std::uint64_t events = 0;
  std::uint64_t batches = 0;
};

class Projector : private Projection {
 public:
  using Listener = std::function<void(const std::vector<schemas::Uuid>& mailboxes)>;

  Projector(eventlog::EventLog& log, view::ViewDb& view, std::size_t max_batch = 2048);
  ~Projector();

  void start();  // a background thread follows the log
  void stop();

  // The next offset to apply, per partition (what the view has), and why
  // projection is stuck, if it is (both for the monitoring).
  std::map<std::int32_t, std::int64_t> positions() const { return runner_.positions(); }
  std::string status() const { return runner_.status(); }

  // Applies everything up to the current end of the log, on the calling
  // thread (a3ctl without a daemon, replay). Returns false on failure().
  // `progress` is called after each batch with (applied, total).
  // With `targets`, stops exactly at those next offsets instead (verify).
  bool catch_up(const std::function<void(std::int64_t, std::int64_t)>& progress = {},
                const std::map<std::int32_t, std::int64_t>* targets = nullptr);

  // Waits until `pos` is applied; its outcome, or nullopt on timeout or
  // failure. Outcomes of the last few thousand events are kept in memory.
  std::optional<Outcome> wait_applied(eventlog::Position pos, std::chrono::milliseconds timeout);

  // The same without a waiting thread: `done` gets one outcome per position
  // (nullopt for those not applied by `deadline`, or after a failure or
  // stop), on the projector's thread or the caller's: be quick.
  using AppliedHandler = std::function<void(std::vector<std::optional<Outcome>>)>;
  void when_applied(std::vector<eventlog::Position> positions,
                    std::chrono::steady_clock::time_point deadline, AppliedHandler done);

  // Called after each committed batch with the mailboxes it changed (IDLE,
  // unsolicited EXISTS/EXPUNGE, the guard's bans), before the batch's
  // waiters are told. Runs on the projector thread: be quick.
  void add_listener(Listener l);

  std::string failure() const;
  ProjectorStats stats() const;
  std::map<std::int32_t, std::int64_t> applied() const;  // next offset per partition

 private:
  // The Projection the runner drives.
  std::string name() const override { return "projector"; }
  boost::system::result<std::map<std::int32_t, std::int64_t>, Failure> open() override;
  Projection::Applied apply(std::int32_t partition,
                            std::vector<eventlog::Record>& records) override;
  bool retries() const override { return false; }  // never guess past an event
  void tick() override;

  // Writes a batch with partition p's next offset; false on failure.
  bool commit(view::Batch& batch, std::size_t p, std::int64_t next,
              std::vector<std::pair<eventlog::Position, Outcome>>& outcomes,
              std::vector<schemas::Uuid>& touched);

  eventlog::EventLog& log_;
  view::ViewDb& view_;

  mutable std::mutex mu_;
  std::condition_variable applied_cv_;
  std::vector<std::int64_t> next_;  // per partition
  std::map<eventlog::Position, Outcome> recent_;
  std::deque<eventlog::Position> recent_order_;  // oldest first: evicted first
  std::string failure_;
  bool failure_transient_ = false;  // failure_ is a failed write: cleared by the next commit
  ProjectorStats stats_;
  std::vector<Listener> listeners_;
  struct Waiter {
    std::vector<eventlog::Position> positions;
    std::chrono::steady_clock::time_point deadline;
    AppliedHandler done;
  };
  std::vector<Waiter> waiters_;  // guarded by mu_
  // Completes the waiters whose positions are all applied (all of them with
  // `everyone`, e.g. on failure or stop) and those past their deadline.
  void complete_waiters(bool everyone = false);

  bool stopped_ = false;  // guarded by mu_

  Runner runner_;  // last: its thread stops before the members it uses go
};

}  // namespace a3::projections
