#include "schemas/event.h"

#include <algorithm>
#include <chrono>
#include <random>

#include <fmt/format.h>
#include "common/clock.h"
#include "common/sha256.h"

namespace a3::schemas {

namespace {

std::uint64_t random64() {
  thread_local std::mt19937_64 rng{[] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }()};
  return rng();
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

// RFC 9562 5.7: 48-bit Unix milliseconds, version 7, variant 10, random rest.
Uuid Uuid::v7() {
  Uuid u;
  const auto ms = static_cast<std::uint64_t>(now_ms());
  for (int i = 0; i < 6; ++i)
    u.bytes[i] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
  const std::uint64_t r1 = random64(), r2 = random64();
  for (int i = 6; i < 16; ++i) {
    u.bytes[i] = static_cast<std::uint8_t>((i < 8 ? r1 : r2) >> (8 * (i % 8)));
  }
  u.bytes[6] = static_cast<std::uint8_t>(0x70 | (u.bytes[6] & 0x0f));
  u.bytes[8] = static_cast<std::uint8_t>(0x80 | (u.bytes[8] & 0x3f));
  return u;
}

Uuid Uuid::derived(std::string_view seed) {
  const auto h = sha256(seed);
  Uuid u;
  std::copy(h.begin(), h.begin() + 16, u.bytes.begin());
  u.bytes[6] = static_cast<std::uint8_t>(0x80 | (u.bytes[6] & 0x0f));  // version 8
  u.bytes[8] = static_cast<std::uint8_t>(0x80 | (u.bytes[8] & 0x3f));  // variant
  return u;
}

std::optional<Uuid> Uuid::parse(std::string_view text) {
  Uuid u;
  std::size_t n = 0;
  int high = -1;
  for (char c : text) {
    if (c == '-') continue;
    const int v = hex_value(c);
    if (v < 0 || n == 16) return std::nullopt;
    if (high < 0) {
      high = v;
    } else {
      u.bytes[n++] = static_cast<std::uint8_t>(high << 4 | v);
      high = -1;
    }
  }
  if (n != 16 || high >= 0) return std::nullopt;
  return u;
}

std::string Uuid::str() const {
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    fmt::format_to(std::back_inserter(out), "{:02x}", bytes[i]);
  }
  return out;
}

bool Uuid::is_nil() const {
  for (auto b : bytes) {
    if (b) return false;
  }
  return true;
}

std::string_view to_string(Protocol p) {
  switch (p) {
    case Protocol::unknown:
      return "unknown";
    case Protocol::smtp:
      return "smtp";
    case Protocol::submission:
      return "submission";
    case Protocol::imap:
      return "imap";
    case Protocol::pop3:
      return "pop3";
    case Protocol::admin:
      return "admin";
    case Protocol::http:
      return "http";
    case Protocol::system:
      return "system";
  }
  return "unknown";
}

std::string_view to_string(FlagOp op) {
  switch (op) {
    case FlagOp::add:
      return "add";
    case FlagOp::remove:
      return "remove";
    case FlagOp::replace:
      return "replace";
  }
  return "unknown";
}

std::string_view kind_name(const Body& body) {
  static constexpr std::string_view names[] = {
      "AccountCreated",
      "AccountPasswordChanged",
      "AccountDeleted",
      "AccountAddressesChanged",
      "MailboxCreated",
      "MailboxRenamed",
      "MailboxDeleted",
      "MailboxSubscriptionChanged",
      "MessageAppended",
      "MessagesCopied",
      "MessagesMoved",
      "FlagsChanged",
      "MessagesExpunged",
      "AuthSucceeded",
      "AuthFailed",
      "SmtpRejected",
      "BodyChunk",
      "AccountQuotaChanged",
      "OutboundQueued",
      "DeliveryAttempted",
      "Delivered",
      "Deferred",
      "Bounced",
      "Expired",
      "DeliveryRescheduled",
      "OutboundDeleted",
      "BanAdded",
      "BanLifted",
  };
  static_assert(std::size(names) == std::variant_size_v<Body>);
  return names[body.index()];
}

Event make_event(std::string account, Actor actor, Body body) {
  return Event{Uuid::v7(), now_ms(), std::move(account), std::move(actor), std::move(body)};
}

}  // namespace a3::schemas
