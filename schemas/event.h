// Plain C++ view of the events in events.fbs. Frontends and projections build
// and read these; only codec.cc knows the FlatBuffers encoding.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace a3::schemas {

// A 16-byte identifier. Event ids are UUIDv7 (RFC 9562): time-ordered, so ids
// of one account sort roughly by creation time.
struct Uuid {
  std::array<std::uint8_t, 16> bytes{};

  static Uuid v7();  // now, with 74 random bits
  // A UUIDv8 (RFC 9562) from the SHA-256 of `seed`: the same seed, the same
  // id (events a retry must not duplicate).
  static Uuid derived(std::string_view seed);
  static std::optional<Uuid> parse(std::string_view text);
  std::string str() const;  // 8-4-4-4-12 lowercase hex
  bool is_nil() const;
  friend bool operator==(const Uuid&, const Uuid&) = default;
  friend auto operator<=>(const Uuid&, const Uuid&) = default;
};

enum class Protocol : std::uint8_t {
  unknown = 0,
  smtp = 1,
  submission = 2,
  imap = 3,
  pop3 = 4,
  admin = 5,
  http = 6,
  system = 7,
};
std::string_view to_string(Protocol p);

struct Actor {
  Protocol protocol = Protocol::unknown;
  std::string user;
  std::string remote_ip;
  std::string session_id;
  friend bool operator==(const Actor&, const Actor&) = default;
};

struct AccountCreated {
  std::string name;
  std::string password_hash;
  std::vector<std::string> addresses;
  std::uint64_t quota_bytes = 0;
  friend bool operator==(const AccountCreated&, const AccountCreated&) = default;
};
struct AccountPasswordChanged {
  std::string password_hash;
  friend bool operator==(const AccountPasswordChanged&, const AccountPasswordChanged&) = default;
};
struct AccountDeleted {
  std::string reason;
  friend bool operator==(const AccountDeleted&, const AccountDeleted&) = default;
};
struct AccountAddressesChanged {
  std::vector<std::string> addresses;
  friend bool operator==(const AccountAddressesChanged&, const AccountAddressesChanged&) = default;
};

struct AccountQuotaChanged {
  std::uint64_t quota_bytes = 0;  // 0 = unlimited
  friend bool operator==(const AccountQuotaChanged&, const AccountQuotaChanged&) = default;
};

struct MailboxCreated {
  Uuid mailbox_id;
  std::string name;
  std::string special_use;
  friend bool operator==(const MailboxCreated&, const MailboxCreated&) = default;
};
struct MailboxRenamed {
  Uuid mailbox_id;
  std::string new_name;
  friend bool operator==(const MailboxRenamed&, const MailboxRenamed&) = default;
};
struct MailboxDeleted {
  Uuid mailbox_id;
  friend bool operator==(const MailboxDeleted&, const MailboxDeleted&) = default;
};
struct MailboxSubscriptionChanged {
  std::string name;
  bool subscribed = false;
  friend bool operator==(const MailboxSubscriptionChanged&,
                         const MailboxSubscriptionChanged&) = default;
};

// SPF, DKIM and DMARC results of a message received on the MX (events.fbs).
struct Authentication {
  std::string spf;
  std::string spf_domain;
  std::string dkim;
  std::vector<std::string> dkim_domains;
  std::string dmarc;
  std::string dmarc_policy;
  std::string from_domain;
  std::string disposition;
  friend bool operator==(const Authentication&, const Authentication&) = default;
};

struct SmtpEnvelope {
  std::string mail_from;
  std::vector<std::string> rcpt_to;
  std::string helo;
  std::string remote_ip;
  std::string tls;
  std::string auth_user;
  std::optional<Authentication> authentication{};
  friend bool operator==(const SmtpEnvelope&, const SmtpEnvelope&) = default;
};

// A body sent ahead as BodyChunk events (events.fbs).
struct StagedBody {
  Uuid blob_id;
  std::int64_t started_ms = 0;
  std::uint64_t size = 0;
  std::uint32_t chunks = 0;
  bool last_use = false;
  std::string message_id;
  friend bool operator==(const StagedBody&, const StagedBody&) = default;
};

struct MessageAppended {
  Uuid mailbox_id;
  std::string raw;  // bytes, not necessarily UTF-8; with `staged`, the start
  std::int64_t internal_date_ms = 0;
  std::vector<std::string> flags;
  std::optional<SmtpEnvelope> smtp;
  std::optional<StagedBody> staged = std::nullopt;  // last: older initialisers omit it
  // The whole message's size, staged part included.
  std::uint64_t size() const { return raw.size() + (staged ? staged->size : 0); }
  friend bool operator==(const MessageAppended&, const MessageAppended&) = default;
};

struct MessagesCopied {
  Uuid from_mailbox_id;
  std::vector<std::uint32_t> uids;
  Uuid to_mailbox_id;
  friend bool operator==(const MessagesCopied&, const MessagesCopied&) = default;
};
struct MessagesMoved {
  Uuid from_mailbox_id;
  std::vector<std::uint32_t> uids;
  Uuid to_mailbox_id;
  friend bool operator==(const MessagesMoved&, const MessagesMoved&) = default;
};

enum class FlagOp : std::uint8_t { add = 0, remove = 1, replace = 2 };
std::string_view to_string(FlagOp op);

struct FlagsChanged {
  Uuid mailbox_id;
  std::vector<std::uint32_t> uids;
  FlagOp op = FlagOp::add;
  std::vector<std::string> flags;
  std::optional<std::uint64_t> unchanged_since;
  friend bool operator==(const FlagsChanged&, const FlagsChanged&) = default;
};
struct MessagesExpunged {
  Uuid mailbox_id;
  std::vector<std::uint32_t> uids;
  friend bool operator==(const MessagesExpunged&, const MessagesExpunged&) = default;
};

struct AuthSucceeded {
  std::string mechanism;
  std::string user;
  friend bool operator==(const AuthSucceeded&, const AuthSucceeded&) = default;
};
struct AuthFailed {
  std::string mechanism;
  std::string user;
  std::string reason;
  friend bool operator==(const AuthFailed&, const AuthFailed&) = default;
};
struct BodyChunk {
  Uuid blob_id;
  std::int64_t started_ms = 0;
  std::uint32_t seq = 0;
  std::string data;
  friend bool operator==(const BodyChunk&, const BodyChunk&) = default;
};

struct SmtpRejected {
  std::string stage;
  std::uint16_t code = 0;
  std::string enhanced_code;
  std::string reason;
  std::string mail_from;
  std::string rcpt_to;
  friend bool operator==(const SmtpRejected&, const SmtpRejected&) = default;
};

// ---- outbound ----

// RFC 3461 NOTIFY, as bits (0: not given, which means FAILURE,DELAY).
enum Notify : std::uint8_t {
  notify_success = 1,
  notify_failure = 2,
  notify_delay = 4,
  notify_never = 8
};

struct OutboundRecipient {
  std::string address;
  std::uint8_t notify = 0;
  std::string orcpt;
  friend bool operator==(const OutboundRecipient&, const OutboundRecipient&) = default;
};
struct OutboundQueued {
  Uuid queue_id;
  std::string mail_from;
  std::vector<OutboundRecipient> recipients;
  std::string raw;
  std::optional<StagedBody> staged;
  std::string envid;
  bool ret_headers = false;
  std::int64_t expires_ms = 0;
  bool smtputf8 = false;
  bool eightbit = false;
  std::optional<SmtpEnvelope> smtp;
  friend bool operator==(const OutboundQueued&, const OutboundQueued&) = default;
};
struct DeliveryAttempted {
  Uuid queue_id;
  std::vector<std::string> recipients;
  std::string host;
  std::uint32_t attempt = 0;
  friend bool operator==(const DeliveryAttempted&, const DeliveryAttempted&) = default;
};
struct Delivered {
  Uuid queue_id;
  std::vector<std::string> recipients;
  std::string host;
  std::string reply;
  friend bool operator==(const Delivered&, const Delivered&) = default;
};
struct Deferred {
  Uuid queue_id;
  std::vector<std::string> recipients;
  std::string host;
  std::string reply;
  std::int64_t next_attempt_ms = 0;
  bool delay_reported = false;  // these recipients' delay was reported (RFC 3464 "delayed")
  friend bool operator==(const Deferred&, const Deferred&) = default;
};
struct Bounced {
  Uuid queue_id;
  std::vector<std::string> recipients;
  std::string host;
  std::string reply;
  friend bool operator==(const Bounced&, const Bounced&) = default;
};
struct Expired {
  Uuid queue_id;
  std::vector<std::string> recipients;
  std::string reply;
  friend bool operator==(const Expired&, const Expired&) = default;
};
struct DeliveryRescheduled {
  Uuid queue_id;
  std::int64_t next_attempt_ms = 0;
  friend bool operator==(const DeliveryRescheduled&, const DeliveryRescheduled&) = default;
};
struct OutboundDeleted {
  Uuid queue_id;
  std::string reason;
  friend bool operator==(const OutboundDeleted&, const OutboundDeleted&) = default;
};

// ---- security ----

// The partition key of every ban: one partition orders them all.
inline constexpr std::string_view kBansKey = "#bans";

struct BanAdded {
  std::string network;  // CIDR, as Network::str() writes it
  std::string reason;
  std::int64_t expires_ms = 0;  // 0: until lifted
  std::string rule;             // manual, auth_failures, protocol_errors, unknown_recipients
  friend bool operator==(const BanAdded&, const BanAdded&) = default;
};
struct BanLifted {
  std::string network;
  std::string reason;
  // The expiry of the ban it lifts: a lift written for an expired ban does
  // not lift a newer ban of the same network. 0: whatever ban is there.
  std::int64_t expires_ms = 0;
  friend bool operator==(const BanLifted&, const BanLifted&) = default;
};

// Alternatives in the order of the FlatBuffers union (index + 1 = union tag).
using Body =
    std::variant<AccountCreated, AccountPasswordChanged, AccountDeleted, AccountAddressesChanged,
                 MailboxCreated, MailboxRenamed, MailboxDeleted, MailboxSubscriptionChanged,
                 MessageAppended, MessagesCopied, MessagesMoved, FlagsChanged, MessagesExpunged,
                 AuthSucceeded, AuthFailed, SmtpRejected, BodyChunk, AccountQuotaChanged,
                 OutboundQueued, DeliveryAttempted, Delivered, Deferred, Bounced, Expired,
                 DeliveryRescheduled, OutboundDeleted, BanAdded, BanLifted>;

// The name of a body kind, as shown by a3ctl and stored in the audit trail
// ("MessageAppended", ...).
std::string_view kind_name(const Body& body);

struct Event {
  Uuid id;
  std::int64_t at_ms = 0;
  std::string account;
  Actor actor;
  Body body;
  friend bool operator==(const Event&, const Event&) = default;
};

// A new event with a fresh UUIDv7 id and the current time.
Event make_event(std::string account, Actor actor, Body body);

}  // namespace a3::schemas
