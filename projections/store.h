// The mail store API the frontends and a3ctl use: read queries on the
// mailbox view, and `execute`, which appends an event and answers once the
// projection has applied it (read-your-writes), with its outcome.
//
// Protocol code talks to this API only; it never names RocksDB or the log's
// backends.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/system/result.hpp>

#include "eventlog/event_log.h"
#include "projections/outcome.h"
#include "projections/projector.h"
#include "projections/view/encoding.h"
#include "projections/view/view_db.h"
#include "schemas/event.h"

namespace a3::projections {

using view::AccountRecord;
using view::MailboxRecord;
using view::MessageRecord;

enum class store_errc {
  log_unavailable = 1,  // the append was not acknowledged: nothing happened (retry later)
  not_applied,          // acknowledged, but the projection has not applied it in time
  projection_failed,    // the projection stopped (see Projector::failure)
};
const boost::system::error_category& store_category() noexcept;
inline boost::system::error_code make_error_code(store_errc e) noexcept {
  return {static_cast<int>(e), store_category()};
}

class Store {
 public:
  // projector may be null for a read-only store (a follower of the daemon).
  Store(eventlog::EventLog* log, view::ViewDb& view, Projector* projector)
      : log_(log), view_(view), projector_(projector) {}

  // ---- writes ----
  [[nodiscard]] boost::system::result<Outcome> execute(
      const schemas::Event& event, std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Appends without waiting for the projection: durable once it returns.
  [[nodiscard]] boost::system::result<eventlog::Position> append(const schemas::Event& event);

  // ---- reads ----
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
  std::optional<std::string> body(const view::Sha256& blob) const;
  // ENVELOPE, BODY, BODYSTRUCTURE, part ranges and SEARCH fields of a body.
  std::optional<mime::Summary> mime(const view::Sha256& blob) const;
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

  view::ViewDb& view() const { return view_; }

 private:
  eventlog::EventLog* log_;
  view::ViewDb& view_;
  Projector* projector_;
};

}  // namespace a3::projections

template <>
struct boost::system::is_error_code_enum<a3::projections::store_errc> : std::true_type {};
