// The guard: blocked networks, bans and the offenses that make them.
#include <gtest/gtest.h>

#include <thread>

#include "common/clock.h"
#include "frontends/net/guard.h"

namespace a3::net {
namespace {

using boost::asio::ip::make_address;

config::Security rules(int after_failures, int window_s = 600, int duration_s = 3600) {
  config::Security s;
  s.ban_after_auth_failures = after_failures;
  s.ban_after_protocol_errors = 3;
  s.ban_after_unknown_recipients = 2;
  s.ban_window_s = window_s;
  s.ban_duration_s = duration_s;
  return s;
}

const schemas::Actor kSession{schemas::Protocol::imap, "", "192.0.2.7", "s-9"};

TEST(Guard, BlockedNetworksAreRefusedAndReloaded) {
  config::Security s;
  s.blocked_networks = {"192.0.2.0/24", "2001:db8::/32"};
  Guard g(s);
  EXPECT_EQ(g.refuses(make_address("192.0.2.200")), "blocked");
  EXPECT_EQ(g.refuses(make_address("::ffff:192.0.2.200")), "blocked");
  EXPECT_EQ(g.refuses(make_address("2001:db8::5")), "blocked");
  EXPECT_FALSE(g.refuses(make_address("198.51.100.1")));
  s.blocked_networks = {"198.51.100.0/24"};
  g.reload(s);
  EXPECT_FALSE(g.refuses(make_address("192.0.2.200")));
  EXPECT_EQ(g.refuses(make_address("198.51.100.1")), "blocked");
}

TEST(Guard, TheNthFailedLoginBansTheAddressAndMakesItsEvent) {
  Guard g(rules(3));
  const auto ip = make_address("192.0.2.7");
  EXPECT_FALSE(g.offense(ip, Offense::auth_failure, kSession).banned);
  EXPECT_FALSE(g.offense(ip, Offense::auth_failure, kSession).banned);
  EXPECT_FALSE(g.offense(make_address("192.0.2.8"), Offense::auth_failure, kSession).banned)
      << "counted per address";
  const auto v = g.offense(ip, Offense::auth_failure, kSession);
  ASSERT_TRUE(v.banned);
  ASSERT_TRUE(v.ban);
  EXPECT_EQ(v.ban->account, schemas::kBansKey);
  EXPECT_EQ(v.ban->actor.protocol, schemas::Protocol::system);
  EXPECT_EQ(v.ban->actor.remote_ip, "192.0.2.7");
  EXPECT_EQ(v.ban->actor.session_id, "s-9");
  const auto& ban = std::get<schemas::BanAdded>(v.ban->body);
  EXPECT_EQ(ban.network, "192.0.2.7/32");
  EXPECT_EQ(ban.rule, "auth_failures");
  EXPECT_EQ(ban.reason, "3 failed logins in 600 s; banned for 3600 s");
  EXPECT_NEAR(static_cast<double>(ban.expires_ms - v.ban->at_ms), 3600e3, 2000);
  // In force at once, before the event is even projected.
  EXPECT_EQ(g.refuses(ip), "banned");
  EXPECT_TRUE(g.banned(ip));
  EXPECT_FALSE(g.refuses(make_address("192.0.2.8")));
  // A banned address offending again is banned, with no second event.
  const auto again = g.offense(ip, Offense::auth_failure, kSession);
  EXPECT_TRUE(again.banned);
  EXPECT_FALSE(again.ban);
}

TEST(Guard, EachKindHasItsOwnThresholdAndZeroMeansNever) {
  Guard g(rules(0));
  const auto ip = make_address("2001:db8::7");
  for (int i = 0; i < 50; ++i)
    EXPECT_FALSE(g.offense(ip, Offense::auth_failure, kSession).banned);
  EXPECT_FALSE(g.offense(ip, Offense::unknown_recipient, kSession).banned);
  const auto v = g.offense(ip, Offense::unknown_recipient, kSession);
  ASSERT_TRUE(v.ban);
  EXPECT_EQ(std::get<schemas::BanAdded>(v.ban->body).rule, "unknown_recipients");
}

TEST(Guard, AnIpv6HostIsCountedAndBannedAsItsSlash64) {
  Guard g(rules(3));
  // Three addresses of one /64: one offender.
  EXPECT_FALSE(g.offense(make_address("2001:db8:1:2::1"), Offense::auth_failure, kSession).banned);
  EXPECT_FALSE(
      g.offense(make_address("2001:db8:1:2:aaaa::9"), Offense::auth_failure, kSession).banned);
  const auto v = g.offense(make_address("2001:db8:1:2:ffff::"), Offense::auth_failure, kSession);
  ASSERT_TRUE(v.ban);
  EXPECT_EQ(std::get<schemas::BanAdded>(v.ban->body).network, "2001:db8:1:2::/64");
  EXPECT_EQ(v.ban->actor.remote_ip, "2001:db8:1:2:ffff::") << "the address that crossed the line";
  EXPECT_TRUE(g.refuses(make_address("2001:db8:1:2:1234::1")));
  EXPECT_FALSE(g.refuses(make_address("2001:db8:1:3::1")));
  // An IPv4 client of a dual-stack listener is counted as IPv4.
  EXPECT_FALSE(
      g.offense(make_address("::ffff:192.0.2.50"), Offense::auth_failure, kSession).banned);
  EXPECT_FALSE(g.offense(make_address("192.0.2.50"), Offense::auth_failure, kSession).banned);
  const auto v4 = g.offense(make_address("::ffff:192.0.2.50"), Offense::auth_failure, kSession);
  ASSERT_TRUE(v4.ban);
  EXPECT_EQ(std::get<schemas::BanAdded>(v4.ban->body).network, "192.0.2.50/32");
}

TEST(Guard, ItsOwnBansOutliveAReloadUntilTheViewHasThem) {
  Guard g(rules(1));
  const auto ip = make_address("198.51.100.9");
  const auto v = g.offense(ip, Offense::auth_failure, kSession);
  ASSERT_TRUE(v.ban);
  // Another ban was projected first: the set is reloaded without ours.
  std::vector<projections::BanRecord> view(1);
  view[0].network = "203.0.113.0/24";
  g.set_bans(view);
  EXPECT_TRUE(g.refuses(ip)) << "its event is still on its way";
  EXPECT_TRUE(g.refuses(make_address("203.0.113.1")));
  // Ours arrives; a later reload without it (lifted) lets it go.
  projections::BanRecord ours;
  ours.network = "198.51.100.9/32";
  ours.expires_ms = std::get<schemas::BanAdded>(v.ban->body).expires_ms;
  view.push_back(ours);
  g.set_bans(view);
  EXPECT_TRUE(g.refuses(ip));
  view.pop_back();
  g.set_bans(view);
  EXPECT_FALSE(g.refuses(ip)) << "lifted in the view";
  EXPECT_EQ(g.active_bans(), 1u);
}

TEST(Guard, TheRateLimitCountsConnectionsAndCommandsPerIp) {
  config::Security s;
  s.enable_rate_limiting = true;
  s.max_requests_per_window = 5;
  s.rate_limit_window_s = 1;
  Guard g(s);
  const auto ip = make_address("192.0.2.77");
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(g.request(ip)) << i;
  EXPECT_FALSE(g.request(ip));
  EXPECT_FALSE(g.request(make_address("::ffff:192.0.2.77"))) << "the same client";
  EXPECT_TRUE(g.request(make_address("192.0.2.78")));
  EXPECT_TRUE(g.request(make_address("127.0.0.1"))) << "exempt";
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_TRUE(g.request(ip)) << "a new window";
  s.enable_rate_limiting = false;
  g.reload(s);
  for (int i = 0; i < 20; ++i)
    EXPECT_TRUE(g.request(ip));
}

TEST(Guard, HourlyMessageLimitsByAccountAndByAddress) {
  config::Security s;
  s.max_messages_per_hour_per_account = 2;
  s.max_messages_per_hour_per_ip = 1;
  Guard g(s);
  const auto ip = make_address("192.0.2.5");
  EXPECT_TRUE(g.may_send(ip, "alice@example.test"));
  g.sent(ip, "alice@example.test");
  EXPECT_TRUE(g.may_send(ip, "alice@example.test"));
  g.sent(ip, "alice@example.test");
  EXPECT_FALSE(g.may_send(ip, "alice@example.test"));
  EXPECT_TRUE(g.may_send(make_address("192.0.2.6"), "bob@example.test")) << "per account";
  EXPECT_TRUE(g.may_send(ip, "")) << "the address's own count is apart";
  g.sent(ip, "");
  EXPECT_FALSE(g.may_send(ip, ""));
  EXPECT_TRUE(g.may_send(make_address("192.0.2.7"), ""));
  g.sent(make_address("127.0.0.1"), "");
  EXPECT_TRUE(g.may_send(make_address("127.0.0.1"), "")) << "exempt by address";
}

TEST(Guard, ExemptNetworksAreNeverBannedAutomatically) {
  config::Security s = rules(1);  // loopback is exempt by default
  Guard g(s);
  for (int i = 0; i < 5; ++i)
    EXPECT_FALSE(g.offense(make_address("127.0.0.1"), Offense::auth_failure, kSession).banned);
  EXPECT_FALSE(g.offense(make_address("::1"), Offense::auth_failure, kSession).banned);
  s.exempt_networks = {};
  g.reload(s);
  EXPECT_TRUE(g.offense(make_address("127.0.0.1"), Offense::auth_failure, kSession).banned);
}

TEST(Guard, OffensesOlderThanTheWindowAreForgotten) {
  Guard g(rules(2, 1));
  const auto ip = make_address("192.0.2.9");
  EXPECT_FALSE(g.offense(ip, Offense::protocol_error, kSession).banned);
  EXPECT_FALSE(g.offense(ip, Offense::protocol_error, kSession).banned);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_FALSE(g.offense(ip, Offense::protocol_error, kSession).banned) << "a new window";
  EXPECT_FALSE(g.offense(ip, Offense::protocol_error, kSession).banned);
  EXPECT_TRUE(g.offense(ip, Offense::protocol_error, kSession).banned);
}

TEST(Guard, ProjectedBansReplaceTheSetAndExpire) {
  Guard g(config::Security{});
  const std::int64_t now = a3::now_ms();
  std::vector<projections::BanRecord> bans(3);
  bans[0].network = "198.51.100.0/24";  // until lifted
  bans[1].network = "203.0.113.5/32";
  bans[1].expires_ms = now + 1000;
  bans[2].network = "203.0.113.6/32";
  bans[2].expires_ms = now - 1;  // expired, not yet lifted
  g.set_bans(bans);
  EXPECT_EQ(g.active_bans(), 2u);
  EXPECT_EQ(g.refuses(make_address("198.51.100.99")), "banned");
  EXPECT_EQ(g.refuses(make_address("203.0.113.5")), "banned");
  EXPECT_FALSE(g.refuses(make_address("203.0.113.6")));
  EXPECT_EQ(*g.banned(make_address("198.51.100.1")), "banned");
  EXPECT_EQ(*g.banned(make_address("203.0.113.5")), "banned for 1 s more");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_FALSE(g.refuses(make_address("203.0.113.5"))) << "expired while in the set";
  g.set_bans({});
  EXPECT_FALSE(g.refuses(make_address("198.51.100.99")));
  EXPECT_EQ(g.active_bans(), 0u);
}

}  // namespace
}  // namespace a3::net
