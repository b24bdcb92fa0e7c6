#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "schemas/codec.h"
#include "schemas/event_json.h"

namespace a3::schemas {
namespace {

namespace fs = std::filesystem;

Uuid fixed_id(std::uint8_t seed) {
  Uuid u;
  for (std::size_t i = 0; i < u.bytes.size(); ++i)
    u.bytes[i] = static_cast<std::uint8_t>(seed + i);
  return u;
}

// One event of every body kind, with every field set. The golden files of
// each schema version hold these events as that version encoded them.
std::vector<Event> sample_events() {
  const Actor smtp{Protocol::smtp, "", "192.0.2.7", "s-1"};
  const Actor imap{Protocol::imap, "alice@example.test", "2001:db8::1", "s-2"};
  const Actor admin{Protocol::admin, "root", "", "cli"};
  const Uuid inbox = fixed_id(0x10), archive = fixed_id(0x20);
  std::vector<Body> bodies = {
      AccountCreated{"alice@example.test",
                     "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA",
                     {"alice@example.test", "a@example.test"},
                     1 << 30},
      AccountPasswordChanged{"$argon2id$v=19$m=65536,t=3,p=1$bmV3$bmV3aGFzaA"},
      AccountDeleted{"left the company"},
      AccountAddressesChanged{{"alice@example.test", "postmaster@example.test"}},
      MailboxCreated{inbox, "INBOX", ""},
      MailboxRenamed{archive, "Archive/2026"},
      MailboxDeleted{archive},
      MailboxSubscriptionChanged{"Archive/2026", true},
      MessageAppended{
          inbox,
          // (v1's golden file holds five NULs after the text)
          std::string("From: bob@example.test\r\nSubject: hi\r\n\r\n\xff\x00 body\r\n", 48) +
              std::string(5, '\0'),
          1764000000000,
          {"\\Seen", "$Forwarded"},
          SmtpEnvelope{"bob@example.test",
                       {"alice@example.test"},
                       "mx.example.test",
                       "192.0.2.7",
                       "TLSv1.3 TLS_AES_256_GCM_SHA384",
                       ""}},
      MessagesCopied{inbox, {1, 2, 3}, archive},
      MessagesMoved{inbox, {4, 4000000000u}, archive},
      FlagsChanged{inbox, {7, 9}, FlagOp::remove, {"\\Flagged"}, 12345},
      MessagesExpunged{inbox, {1, 5}},
      AuthSucceeded{"PLAIN", "alice@example.test"},
      AuthFailed{"LOGIN", "alice", "bad password"},
      SmtpRejected{"rcpt", 550, "5.1.1", "no such user", "spam@example.net", "nobody@example.test"},
      // Since v2: staged bodies.
      BodyChunk{fixed_id(0x30), 1764000000000, 2, std::string("\r\n.\x00\xfe chunk", 12)},
      MessageAppended{inbox,
                      "Received: from mx\r\n",
                      1764000000000,
                      {},
                      SmtpEnvelope{"", {"alice@example.test"}, "mx", "192.0.2.7", "", ""},
                      StagedBody{fixed_id(0x30), 1764000000000, 3 << 20, 6, true, "<a@b>"}},
      // Since v3: quotas.
      AccountQuotaChanged{5ull << 30},
      // Since v4: the outbound queue.
      OutboundQueued{fixed_id(0x40),
                     "alice@example.test",
                     {{"bob@example.net", notify_failure | notify_delay, "rfc822;bob@example.net"},
                      {"carol@example.org", 0, ""}},
                     "DKIM-Signature: v=1\r\nSubject: out\r\n\r\nbody\r\n",
                     StagedBody{fixed_id(0x41), 1764000000000, 5 << 20, 5, true, "<o@a>"},
                     "ENV-1",
                     true,
                     1764432000000,
                     true,
                     true,
                     SmtpEnvelope{"alice@example.test",
                                  {"bob@example.net", "carol@example.org"},
                                  "laptop",
                                  "192.0.2.8",
                                  "TLSv1.3",
                                  "alice@example.test"}},
      DeliveryAttempted{fixed_id(0x40), {"bob@example.net"}, "mx.example.net[192.0.2.25]:25", 2},
      Delivered{fixed_id(0x40),
                {"bob@example.net"},
                "mx.example.net[192.0.2.25]:25",
                "250 2.0.0 Ok: queued as 4F2"},
      Deferred{fixed_id(0x40),
               {"carol@example.org"},
               "mx.example.org[192.0.2.26]:25",
               "451 4.7.1 Greylisted",
               1764000300000},
      Bounced{fixed_id(0x40),
              {"carol@example.org"},
              "mx.example.org[192.0.2.26]:25",
              "550 5.1.1 No such user"},
      Expired{fixed_id(0x40), {"carol@example.org"}, "451 4.7.1 Greylisted"},
      DeliveryRescheduled{fixed_id(0x40), 1764000000001},
      OutboundDeleted{fixed_id(0x40), "deleted by the operator"},
      // Since v5: a delay reported, and SPF, DKIM and DMARC results of mail
      // received on the MX.
      Deferred{fixed_id(0x40),
               {"dave@example.org"},
               "mx.example.org[192.0.2.26]:25",
               "421 4.4.2 Timeout",
               1764014400000,
               true},
      MessageAppended{fixed_id(0x11),
                      "Authentication-Results: mx.example.test; spf=pass\r\n\r\nbody\r\n",
                      1764000000000,
                      {"$Junk"},
                      SmtpEnvelope{"bob@example.net",
                                   {"alice@example.test"},
                                   "mail.example.net",
                                   "192.0.2.9",
                                   "",
                                   "",
                                   Authentication{"pass",
                                                  "example.net",
                                                  "fail",
                                                  {"example.org"},
                                                  "fail",
                                                  "quarantine",
                                                  "example.net",
                                                  "quarantine"}}},
      // Since v6: bans.
      BanAdded{"192.0.2.7/32", "10 failed logins in 600 s", 1764003600000, "auth_failures"},
      BanAdded{"2001:db8::/48", "abuse report 4711", 0, "manual"},
      BanLifted{"192.0.2.7/32", "expired", 1764003600000},
      BanLifted{"2001:db8::/48", "lifted by an operator", 0},
  };
  std::vector<Event> out;
  std::uint8_t seed = 1;
  for (auto& b : bodies) {
    const Actor& a =
        std::holds_alternative<MessageAppended>(b) || std::holds_alternative<SmtpRejected>(b) ? smtp
        : std::holds_alternative<AccountCreated>(b) ? admin
                                                    : imap;
    out.push_back(
        Event{fixed_id(seed), 1764000000000 + seed, "alice@example.test", a, std::move(b)});
    seed += 3;
  }
  return out;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Codec, EveryBodyKindRoundTrips) {
  const auto events = sample_events();
  std::set<std::size_t> kinds;
  for (const auto& e : events)
    kinds.insert(e.body.index());
  ASSERT_EQ(kinds.size(), std::variant_size_v<Body>) << "a sample of every body kind";
  for (const auto& e : events) {
    auto decoded = decode(encode(e));
    ASSERT_TRUE(decoded) << kind_name(e.body) << ": " << decoded.error().detail;
    EXPECT_EQ(*decoded, e) << kind_name(e.body);
  }
}

// Client input can hold NUL bytes (an IMAP LOGIN literal, say): strings keep
// them instead of ending there (found by tests/fuzz/event).
TEST(Codec, StringsWithNulBytesRoundTrip) {
  const std::string nul("a\0b", 3);
  const Actor actor{Protocol::imap, nul, "192.0.2.1", "s"};
  const std::vector<Event> events = {
      make_event("alice@example.test", actor, AuthFailed{nul, nul, nul}),
      make_event("alice@example.test", actor, AuthSucceeded{nul, nul}),
      make_event("alice@example.test", actor, AccountPasswordChanged{nul}),
      make_event("alice@example.test", actor, AccountDeleted{nul}),
      make_event("alice@example.test", actor, SmtpRejected{nul, 550, nul, nul, nul, nul}),
  };
  for (const auto& e : events) {
    auto decoded = decode(encode(e));
    ASSERT_TRUE(decoded) << kind_name(e.body);
    EXPECT_EQ(*decoded, e) << kind_name(e.body);
  }
}

TEST(Codec, OptionalFieldsStayAbsent) {
  Event e =
      make_event("a@example.test", {}, FlagsChanged{Uuid::v7(), {1}, FlagOp::add, {"\\Seen"}, {}});
  auto d = decode(encode(e));
  ASSERT_TRUE(d);
  EXPECT_FALSE(std::get<FlagsChanged>(d->body).unchanged_since);
  Event m = make_event("a@example.test", {}, MessageAppended{Uuid::v7(), "x", 0, {}, {}});
  auto dm = decode(encode(m));
  ASSERT_TRUE(dm);
  EXPECT_FALSE(std::get<MessageAppended>(dm->body).smtp);
}

// Events written by released schema versions must decode forever. Run the
// tests with A3_WRITE_GOLDEN=1 once when releasing a new schema version, into
// a new directory, and commit it.
TEST(Codec, GoldenEventsOfEverySchemaVersionDecode) {
  const fs::path root = fs::path(A3_TEST_SOURCE_DIR) / "schemas" / "golden";
  const auto events = sample_events();
  if (std::getenv("A3_WRITE_GOLDEN")) {
    const fs::path dir = root / std::getenv("A3_WRITE_GOLDEN");
    fs::create_directories(dir);
    for (std::size_t i = 0; i < events.size(); ++i) {
      std::ofstream(dir / fmt::format("{:02}-{}.bin", i, kind_name(events[i].body)),
                    std::ios::binary)
          << encode(events[i]);
    }
  }
  int files = 0;
  for (const auto& version : fs::directory_iterator(root)) {
    for (const auto& f : fs::directory_iterator(version.path())) {
      const std::string name = f.path().filename().string();
      const std::size_t index = std::stoul(name.substr(0, 2));
      ASSERT_LT(index, events.size()) << name;
      auto decoded = decode(read_file(f.path()));
      ASSERT_TRUE(decoded) << f.path() << ": " << decoded.error().detail;
      EXPECT_EQ(*decoded, events[index]) << f.path();
      ++files;
    }
  }
  EXPECT_GE(files, 16) << "golden files missing under " << root;
}

TEST(Codec, CorruptBytesAreErrorsNeverCrashes) {
  EXPECT_EQ(decode("").error().code, decode_errc::too_short);
  EXPECT_EQ(decode("hello world, not flatbuffers").error().code, decode_errc::bad_identifier);
  std::mt19937 rng(7);
  int rejected = 0;
  for (const auto& e : sample_events()) {
    const std::string good = encode(e);
    for (std::size_t cut = 0; cut < good.size(); cut += 1 + good.size() / 50) {
      // Only trailing padding may be cut without losing the event.
      auto d = decode(good.substr(0, cut));
      if (d) {
        EXPECT_EQ(*d, e) << "truncated to " << cut << " of " << good.size();
      }
      if (cut + 8 < good.size()) {
        EXPECT_FALSE(d) << "truncated to " << cut;
      }
    }
    for (int i = 0; i < 2000; ++i) {
      std::string bad = good;
      for (int flips = 1 + rng() % 4; flips > 0; --flips) {
        bad[rng() % bad.size()] = static_cast<char>(rng());
      }
      auto d = decode(bad);  // must not crash; either an error or some event
      if (!d) ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(Codec, WrongSizedIdsAreRejected) {
  // A buffer that verifies but carries a 3-byte event id.
  Event e = sample_events()[2];
  std::string bytes = encode(e);
  // Find the 16-byte id in the encoding and shrink its length prefix.
  const std::string id(reinterpret_cast<const char*>(e.id.bytes.data()), 16);
  const auto at = bytes.find(id);
  ASSERT_NE(at, std::string::npos);
  bytes[at - 4] = 3;
  auto d = decode(bytes);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, decode_errc::bad_field);
}

TEST(Uuid, V7HasVersionVariantAndTime) {
  const Uuid a = Uuid::v7();
  EXPECT_EQ(a.bytes[6] >> 4, 7);
  EXPECT_EQ(a.bytes[8] >> 6, 2);
  EXPECT_NE(a, Uuid::v7());
  EXPECT_EQ(Uuid::parse(a.str()), a);
  EXPECT_EQ(a.str().size(), 36u);
  EXPECT_FALSE(Uuid::parse("not-a-uuid"));
  EXPECT_FALSE(Uuid::parse("0123456789abcdef0123456789abcdef00"));
}

TEST(EventJson, IsValidAndHidesSecretsAndBodies) {
  for (const auto& e : sample_events()) {
    const std::string json = to_json(e);
    EXPECT_EQ(json.find("argon2"), std::string::npos) << "password hashes are never printed";
    EXPECT_EQ(json.find("body\\r\\n"), std::string::npos) << "message bodies are not printed";
    EXPECT_NE(json.find(std::string("\"kind\":\"") + std::string(kind_name(e.body))),
              std::string::npos);
  }
  const auto appended = to_json(sample_events()[8]);
  EXPECT_NE(appended.find("\"size\":53"), std::string::npos) << appended;
  EXPECT_NE(appended.find("\"sha256\":"), std::string::npos);
}

}  // namespace
}  // namespace a3::schemas
