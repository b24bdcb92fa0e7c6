// The mail store API, the only door between the protocols and the state:
// queries on the mailbox view, and `execute`, which appends events to the
// log and answers once they are durable (and, by default, applied by the
// projection: read-your-writes), with their outcomes.
//
// Protocol code talks to this header only: it names no RocksDB, log
// backend or projector type, which is also what lets a session run over a
// store in a test.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include "mime/mime.h"
#include "projections/errors.h"
#include "projections/outcome.h"
#include "projections/records.h"
#include "schemas/event.h"

namespace a3::eventlog {
class EventLog;
}

namespace a3::projections {

class Projector;
namespace view {
class ViewDb;
}

class Store {
 public:
  // `log` and `projector` may be null for a read-only store (a follower of
  // the daemon, or a3ctl reading a copy).
  Store(eventlog::EventLog* log, view::ViewDb& view, Projector* projector);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // ---- writes ----

  enum class Wait {
    durable,  // the log acknowledged every event (SMTP's 250, audit events)
    applied,  // ... and the projection applied them (a client reads its writes)
  };
  using Executed = boost::system::result<std::vector<Outcome>>;

  // Appends `events` (concurrently: they share the log's group commits) and
  // completes on the caller's executor once every one is durable, and with
  // Wait::applied once the projection applied them, with their outcomes in
  // order (with Wait::durable, default outcomes). No thread waits meanwhile:
  // the log's and the projector's threads complete the operation.
  //
  // With `check_quota`, before anything is appended, events from a client
  // protocol that add mail to an account are checked against its quota:
  // errc::over_quota or errc::exceeds_quota, and nothing is appended (the
  // check reads the view, so concurrent appends may overshoot a little: a
  // soft quota). errc::unavailable: the log did not take at least one of
  // them (others may be durable: callers retry with the same event ids,
  // which the projection applies once); errc::pending: durable, not applied
  // in time.
  boost::asio::awaitable<Executed> execute(std::vector<schemas::Event> events,
                                           Wait wait = Wait::applied, bool check_quota = true);

  // One event, waiting on the calling thread: for a3ctl and the admin
  // socket's thread.
  [[nodiscard]] boost::system::result<Outcome> execute_blocking(
      const schemas::Event& event, Wait wait = Wait::applied,
      std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // The partition of the log that events keyed by `key` go to (a staged
  // body's chunks must precede the events that use them, per partition).
  std::int32_t partition_for(std::string_view key) const;

  // ---- quota (RFC 9208: one STORAGE root per account) ----

  struct Usage {
    std::uint64_t bytes = 0;     // sum of the sizes of the account's messages
    std::uint64_t messages = 0;  // how many
    std::uint64_t limit = 0;     // quota in bytes; 0: unlimited
  };
  std::optional<Usage> usage(std::string_view account) const;
  // Whether `adding` more bytes fit in the account: over_quota when the
  // account is (or would be) full, exceeds_quota when `adding` alone is
  // larger than the quota.
  [[nodiscard]] boost::system::result<void> check_quota(std::string_view account,
                                                        std::uint64_t adding) const;

  // ---- change notifications (IMAP IDLE, and NOTIFY later) ----

  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&&) noexcept = default;
    Subscription& operator=(Subscription&& other) noexcept {
      if (this != &other) {
        reset();
        entry_ = std::move(other.entry_);
      }
      return *this;
    }
    ~Subscription() { reset(); }
    // Stops the notifications; once it returns, the callback is not
    // running (on another thread) and will not run again. May be called
    // from the callback itself.
    void reset();
    explicit operator bool() const { return static_cast<bool>(entry_); }

   private:
    friend class Store;
    struct Entry;
    std::shared_ptr<Entry> entry_;
  };
  // Calls `on_change` after each projected batch that changed `mailbox`.
  // It runs on the projector's thread: it must be quick (post, never wait).
  [[nodiscard]] Subscription subscribe(const schemas::Uuid& mailbox,
                                       std::function<void()> on_change);

  // Calls `on_change` after each projected batch that added or lifted a
  // ban (the same rules as subscribe).
  [[nodiscard]] Subscription subscribe_bans(std::function<void()> on_change);

  // ---- reads ----

  // While one lives on a thread, the reads below on that thread answer
  // from memory only (RocksDB's memtables and block cache): one that would
  // have to read the disk answers "nothing" and marks the scope, so an I/O
  // thread never waits for the disk; its caller retries the work on a pool.
  class MemoryOnlyReads {
   public:
    MemoryOnlyReads();
    ~MemoryOnlyReads();
    MemoryOnlyReads(const MemoryOnlyReads&) = delete;
    MemoryOnlyReads& operator=(const MemoryOnlyReads&) = delete;
    bool would_block() const;
  };
  // A read on this thread, in such a scope, answered "nothing" for that
  // reason: its answer must not be used.
  static bool reads_would_block();

  std::optional<AccountRecord> account(std::string_view name) const;
  std::vector<AccountRecord> accounts() const;
  // The account an address delivers to. If several accounts claim it (an
  // alias added concurrently on two partitions), the smallest name wins, so
  // the answer does not depend on the order partitions were applied in.
  std::optional<std::string> account_for_address(std::string_view address) const;

  std::vector<MailboxRecord> mailboxes(std::string_view account) const;
  std::optional<MailboxRecord> mailbox(std::string_view account, std::string_view name) const;
  std::optional<MailboxRecord> mailbox(const schemas::Uuid& id) const;
  std::vector<std::string> subscriptions(std::string_view account) const;

  // Messages with first <= uid <= last, in UID order.
  std::vector<MessageRecord> messages(const schemas::Uuid& mailbox, std::uint32_t first = 1,
                                      std::uint32_t last = UINT32_MAX) const;
  std::optional<std::string> body(const Sha256& blob) const;
  // ENVELOPE, BODY, BODYSTRUCTURE, part ranges and SEARCH fields of a body.
  std::optional<mime::Summary> mime(const Sha256& blob) const;
  std::optional<MessageRecord> message(const schemas::Uuid& mailbox, std::uint32_t uid) const;
  // What changed in a mailbox with MODSEQ > `since`, in MODSEQ order: a
  // message added or whose flags changed, or one expunged (RFC 7162).
  struct Change {
    std::uint32_t uid = 0;
    std::uint64_t modseq = 0;
    bool expunged = false;
  };
  std::vector<Change> changes_since(const schemas::Uuid& mailbox, std::uint64_t since) const;
  // UIDs expunged with MODSEQ > `since` (QRESYNC VANISHED), with their MODSEQ.
  std::vector<std::pair<std::uint32_t, std::uint64_t>> expunged_since(const schemas::Uuid& mailbox,
                                                                      std::uint64_t since) const;

  // Every ban of the view, expired ones too until lifted, by network.
  std::vector<BanRecord> bans() const;
  std::optional<BanRecord> ban(std::string_view network) const;

  // ---- the outbound queue (docs/outbound.md) ----

  // Entries whose next attempt is at or before `now_ms`, soonest first.
  std::vector<QueueRecord> due(std::int64_t now_ms, std::size_t limit) const;
  std::optional<QueueRecord> queued(const schemas::Uuid& id) const;
  // Every entry, soonest attempt first, up to `limit`.
  std::vector<QueueRecord> queue(std::size_t limit) const;
  struct QueueStats {
    std::uint64_t messages = 0;
    std::int64_t oldest_ms = 0;  // queued_ms of the oldest entry; 0 if empty
  };
  QueueStats queue_stats() const;

 private:
  // The bytes `event` adds to its account (0 for most events).
  std::uint64_t added_bytes(const schemas::Event& event) const;
  boost::system::result<void> check_quotas(const std::vector<schemas::Event>& events) const;

  eventlog::EventLog* log_;
  view::ViewDb& view_;
  Projector* projector_;
  struct Subscribers;
  std::shared_ptr<Subscribers> subscribers_;
};

}  // namespace a3::projections
