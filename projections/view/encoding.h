// Key and value encodings of the RocksDB mailbox view. Everything the view
// stores is encoded here, in one place.
//
// Keys are big-endian so that RocksDB's byte order is numeric order:
//   accounts       account                          -> AccountRecord
//   addresses      address (lowercase)              -> account
//   mailboxes      account \0 name                  -> mailbox id (16 bytes)
//   mailbox_state  mailbox id                       -> MailboxRecord
//   messages       mailbox id | uid (be32)          -> MessageRecord
//   expunged       mailbox id | uid (be32)          -> modseq (be64)
//   blobs          sha256                           -> raw message
//   blob_refs      sha256                           -> count (be64)
//   queue          queue id                         -> QueueRecord
//   queue_due      next attempt (be64) | queue id   -> account
//   mime           sha256                           -> MIME summary (ENVELOPE, BODYSTRUCTURE,
//   parts) subscriptions  account \0 name                  -> "" applied        event id (16 bytes)
//   -> position "P:O" meta           "next/" partition (be32)         -> next offset (be64)
//                  "outcome/" partition | offset    -> outcome of a no-op event
//                  "ban/" network (CIDR)           -> BanRecord
//
// Values are a version byte followed by fields written by Writer; the view is
// rebuilt from the log, so a format change is a replay, not a migration.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/sha256.h"
#include "mime/mime.h"
#include "projections/records.h"
#include "schemas/event.h"

namespace a3::projections::view {

using Uuid = schemas::Uuid;
using a3::Sha256;
using a3::sha256;

// ---- primitive encoders ----

void put_be32(std::string& out, std::uint32_t v);
void put_be64(std::string& out, std::uint64_t v);
std::uint32_t get_be32(std::string_view in, std::size_t at = 0);
std::uint64_t get_be64(std::string_view in, std::size_t at = 0);

class Writer {
 public:
  explicit Writer(std::uint8_t version = 1) { out_.push_back(static_cast<char>(version)); }
  Writer& u32(std::uint32_t v);
  Writer& u64(std::uint64_t v);
  Writer& i64(std::int64_t v) { return u64(static_cast<std::uint64_t>(v)); }
  Writer& str(std::string_view s);
  Writer& strs(const std::vector<std::string>& v);
  Writer& bytes(const void* p, std::size_t n);
  std::string done() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads what Writer wrote; any read past the end sets ok() to false and
// returns zero values, so decoding never crashes on damaged values.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {
    if (in_.empty()) ok_ = false;
    pos_ = 1;
  }
  std::uint8_t version() const { return in_.empty() ? 0 : static_cast<std::uint8_t>(in_[0]); }
  std::uint32_t u32();
  std::uint64_t u64();
  std::int64_t i64() { return static_cast<std::int64_t>(u64()); }
  std::string str();
  std::vector<std::string> strs();
  bool bytes(void* p, std::size_t n);
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ >= in_.size(); }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// ---- records (projections/records.h) ----

using projections::AccountRecord;
using projections::MailboxRecord;
using projections::MessageRecord;
using projections::QueueRecipient;

std::string encode(const AccountRecord& r);
std::optional<AccountRecord> decode_account(std::string_view v);
std::string encode(const MailboxRecord& r);
std::optional<MailboxRecord> decode_mailbox(std::string_view v);
std::string encode(const MessageRecord& r);
std::optional<MessageRecord> decode_message(std::string_view v, std::uint32_t uid);

using projections::QueueRecord;
std::string encode(const QueueRecord& r);
std::optional<QueueRecord> decode_queue(std::string_view v);

using projections::BanRecord;
std::string encode(const BanRecord& r);
std::optional<BanRecord> decode_ban(std::string_view v);

std::string encode(const mime::Summary& s);
std::optional<mime::Summary> decode_mime(std::string_view v);

// ---- keys ----

std::string id_key(const Uuid& id);
std::string named_key(std::string_view account, std::string_view name);  // account \0 name
std::string message_key(const Uuid& mailbox, std::uint32_t uid);
std::uint32_t uid_of_message_key(std::string_view key);
std::string next_offset_key(std::int32_t partition);
std::string outcome_key(std::int32_t partition, std::int64_t offset);
std::string blob_key(const Sha256& h);
// The CONDSTORE index: what changed in a mailbox, in MODSEQ order.
std::string change_key(const Uuid& mailbox, std::uint64_t modseq, std::uint32_t uid);
// A staged body's chunks, per partition (each partition's events decide
// alone what is staged there), sorted by start time so old ones come first.
std::string staging_key(std::int32_t partition, std::int64_t started_ms, const Uuid& blob_id,
                        std::uint32_t seq);
std::string staging_prefix(std::int32_t partition, std::int64_t started_ms, const Uuid& blob_id);

// A ban, in the meta family: "ban/" network.
inline constexpr std::string_view kBanPrefix = "ban/";
std::string ban_key(std::string_view network);

// The outbound queue's due index: next attempt (be64 ms) | queue id.
std::string due_key(std::int64_t next_attempt_ms, const Uuid& id);

std::string lowercase(std::string_view s);
// IMAP: INBOX is case-insensitive (RFC 9051 5.1); every other name is exact.
std::string normalize_mailbox_name(std::string_view name);

}  // namespace a3::projections::view
