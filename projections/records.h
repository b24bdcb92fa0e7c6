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

}  // namespace a3::projections
