// What the mail store answers queries with: accounts, mailboxes and
// messages as the mailbox view holds them. Plain values, no storage types.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "schemas/event.h"

namespace a3::projections {

struct AccountRecord {
  std::string name;
  std::string password_hash;
  std::vector<std::string> addresses;
  std::uint64_t quota_bytes = 0;  // 0: unlimited (RFC 9208 STORAGE, in bytes)
  std::int64_t created_ms = 0;
};

struct MailboxRecord {
  schemas::Uuid id;
  std::string account;
  std::string name;
  std::string special_use;
  std::uint32_t uidvalidity = 0;
  std::uint32_t uidnext = 1;
  std::uint64_t highestmodseq = 0;
  std::uint32_t messages = 0;
  std::uint32_t unseen = 0;
  std::uint64_t size = 0;
};

struct MessageRecord {
  std::uint32_t uid = 0;  // from the key
  std::vector<std::string> flags;
  std::uint64_t modseq = 0;
  std::uint64_t size = 0;
  std::int64_t internal_date_ms = 0;
  Sha256 blob{};
  schemas::Uuid event_id;  // the MessageAppended that brought the body in
  std::int64_t appended_at_ms = 0;
};

// Subscribing to this id (Store::subscribe) wakes on every change of the
// outbound queue.
inline const schemas::Uuid kOutboundQueue{};

// One message in the outbound queue (docs/outbound.md): what the delivery
// worker needs, and where each recipient stands.
struct QueueRecipient {
  enum class State : std::uint8_t { pending = 0, delivered = 1, bounced = 2, expired = 3 };
  std::string address;
  std::uint8_t notify = 0;  // schemas::Notify bits
  std::string orcpt;
  State state = State::pending;
  std::string reply;            // the last reply for it (remote, or why none)
  bool delay_reported = false;  // the sender was told it is delayed (once)
};

// A ban (BanAdded): the network refused at accept, until `expires_ms`
// (0: until lifted). An expired ban stays until its BanLifted.
struct BanRecord {
  std::string network;  // CIDR, masked
  std::string reason;
  std::string rule;  // manual, auth_failures, protocol_errors, unknown_recipients
  std::int64_t added_ms = 0;
  std::int64_t expires_ms = 0;
  std::string by;  // who: "admin root", "system 192.0.2.7"
  bool active(std::int64_t now_ms) const { return expires_ms == 0 || now_ms < expires_ms; }
};

struct QueueRecord {
  schemas::Uuid id;
  std::string account;  // the partition key of its events (the submitter)
  std::string mail_from;
  std::vector<QueueRecipient> recipients;
  Sha256 blob{};
  std::uint64_t size = 0;
  std::int64_t queued_ms = 0;
  std::int64_t expires_ms = 0;
  std::int64_t next_attempt_ms = 0;
  std::uint32_t attempts = 0;
  std::string envid;
  bool ret_headers = false;
  bool smtputf8 = false;
  bool eightbit = false;
  std::string last_host;
  std::string last_reply;
  std::vector<const QueueRecipient*> pending() const {
    std::vector<const QueueRecipient*> out;
    for (const auto& r : recipients)
      if (r.state == QueueRecipient::State::pending) out.push_back(&r);
    return out;
  }
};

}  // namespace a3::projections
