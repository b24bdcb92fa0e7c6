// The mailbox projection's applier (mailbox_projector.h apply_event): one
// event into a view batch, deterministically. Internal to the projection:
// accounts, mailboxes and messages are applied in mailbox_projector.cc, the
// outbound queue and bans in queue_projector.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eventlog/event_log.h"
#include "projections/outcome.h"
#include "projections/records.h"
#include "projections/view/batch.h"
#include "projections/view/encoding.h"
#include "schemas/event.h"

namespace a3::projections::detail {

// Only the two files above include this header.
using namespace schemas;
using view::Family;

class Applier {
 public:
  Applier(view::Batch& b, const Event& e, eventlog::Position pos, const std::string* mime_summary)
      : b_(b),
        e_(e),
        partition_(pos.partition),
        modseq_(static_cast<std::uint64_t>(pos.offset) + 1),
        mime_summary_(mime_summary) {
    out_.modseq = modseq_;
  }

  Outcome run() {
    std::visit([this](const auto& body) { apply(body); }, e_.body);
    return std::move(out_);
  }

 private:
  void fail(OutcomeCode code, std::string detail) {
    out_.code = code;
    out_.detail = std::move(detail);
  }

  bool account_exists() { return b_.get(Family::accounts, e_.account).has_value(); }

  std::optional<view::AccountRecord> account();

  // The mailbox `id` if it exists and belongs to the event's account.
  std::optional<view::MailboxRecord> mailbox(const Uuid& id);
  void save(view::MailboxRecord& m);
  std::optional<view::MessageRecord> message(const Uuid& mailbox, std::uint32_t uid);
  void blob_ref(const view::Sha256& h, int delta, const std::string* raw = nullptr,
                const std::string* summary = nullptr);

  // Adds a message to `m` (which the caller saves): the next UID.
  std::uint32_t add_message(view::MailboxRecord& m, view::MessageRecord msg);
  void remove_message(view::MailboxRecord& m, const view::MessageRecord& msg);
  void create_mailbox(const Uuid& id, const std::string& name, const std::string& special_use);
  void delete_mailbox_contents(view::MailboxRecord& m);
  void remove_mailbox(view::MailboxRecord& m);

  // ---- accounts ----

  void apply(const AccountCreated& e);
  void apply(const AccountPasswordChanged& e);
  void apply(const AccountQuotaChanged& e);
  void apply(const AccountAddressesChanged& e);
  void apply(const AccountDeleted&);

  // ---- mailboxes ----

  void apply(const MailboxCreated& e);
  void apply(const MailboxRenamed& e);
  void apply(const MailboxDeleted& e);
  void apply(const MailboxSubscriptionChanged& e);

  // ---- messages, and staged bodies (large messages sent ahead in chunks) ----

  void apply(const BodyChunk& e);

  // Chunks of this partition that started a day earlier (in event time)
  // than the event being applied were abandoned (a client that went away, a
  // retry that was a duplicate): they go. Decided from this partition's
  // events alone, so a replay drops the same ones.
  void drop_stale_chunks();

  // raw + the staged chunks, or nullopt (with the outcome set) if any is
  // missing: the message is then not appended, never appended truncated.
  std::optional<std::string> assemble(const std::string& raw, const StagedBody& st);
  void apply(const MessageAppended& e);
  void copy(const Uuid& from_id, const std::vector<std::uint32_t>& uids, const Uuid& to_id,
            bool move);
  void apply(const MessagesCopied& e) { copy(e.from_mailbox_id, e.uids, e.to_mailbox_id, false); }
  void apply(const MessagesMoved& e) { copy(e.from_mailbox_id, e.uids, e.to_mailbox_id, true); }

  void apply(const FlagsChanged& e);
  void apply(const MessagesExpunged& e);

  // ---- the outbound queue (docs/outbound.md; queue_projector.cc) ----

  std::optional<view::QueueRecord> queued(const Uuid& id);
  void save(const view::QueueRecord& q);

  // Moves the entry's place in the due index.
  void reschedule(view::QueueRecord& q, std::int64_t at_ms);

  // Once no recipient is pending the entry leaves the queue with its body.
  void save_or_finish(view::QueueRecord& q);

  using Rcpt = view::QueueRecipient::State;

  // Sets the state and reply of the named recipients that are still pending.
  void settle(view::QueueRecord& q, const std::vector<std::string>& who, Rcpt state,
              const std::string& reply);
  void apply(const OutboundQueued& e);

  // The entry an event names, changed by `change`; an unknown id makes the
  // event a no-op with its reason.
  template <typename F>
  void change_entry(const Uuid& id, F&& change);
  void apply(const DeliveryAttempted& e);
  void apply(const Delivered& e);
  void apply(const Deferred& e);
  void apply(const Bounced& e);
  void apply(const Expired& e);
  void apply(const DeliveryRescheduled& e);
  void apply(const OutboundDeleted& e);

  // Bans live in the meta family (no view format change): "ban/" network.
  void apply(const BanAdded& e);
  void apply(const BanLifted& e);

  // ---- audit-only events: nothing to project ----

  void apply(const AuthSucceeded&) {}
  void apply(const AuthFailed&) {}
  void apply(const SmtpRejected&) {}

  static constexpr std::int64_t kStagedLifetimeMs = 24 * 3'600'000;

  view::Batch& b_;
  const Event& e_;
  std::int32_t partition_;
  std::uint64_t modseq_;
  const std::string* mime_summary_;
  Outcome out_;
};

}  // namespace a3::projections::detail
