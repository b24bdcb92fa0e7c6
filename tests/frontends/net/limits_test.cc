// The daemon's connection limits: one count across protocols, in total and
// per client IP, each slot given back when its last holder lets go.
#include <gtest/gtest.h>

#include <vector>

#include "frontends/net/listener.h"

namespace a3::net {
namespace {

using boost::asio::ip::make_address;

config::Security limits_of(int total, int per_ip) {
  config::Security s;
  s.max_connections = total;
  s.max_connections_per_ip = per_ip;
  return s;
}

TEST(ConnectionLimits, PerIpAndTotalAreCountedAndGivenBack) {
  ConnectionLimits limits(limits_of(3, 2));
  const auto a = make_address("127.0.0.2"), b = make_address("::1");
  std::vector<std::shared_ptr<void>> held;
  held.push_back(limits.admit(a));
  held.push_back(limits.admit(a));
  ASSERT_NE(held[0], nullptr);
  ASSERT_NE(held[1], nullptr);
  EXPECT_EQ(limits.admit(a), nullptr) << "a third from one address";
  held.push_back(limits.admit(b));
  ASSERT_NE(held[2], nullptr);
  EXPECT_EQ(limits.admit(make_address("127.0.0.3")), nullptr) << "a fourth in all";
  auto copy = held[0];  // a slot is given back when its last copy goes
  held[0].reset();
  EXPECT_EQ(limits.admit(a), nullptr);
  copy.reset();
  EXPECT_NE(limits.admit(a), nullptr);  // and again given back at once
}

TEST(ConnectionLimits, AnIpv4ClientCountsOnceOnADualStackListener) {
  ConnectionLimits limits(limits_of(10, 1));
  auto v4 = limits.admit(make_address("192.0.2.7"));
  ASSERT_NE(v4, nullptr);
  EXPECT_EQ(limits.admit(make_address("::ffff:192.0.2.7")), nullptr);
}

TEST(ConnectionLimits, LoweredLimitsKeepWhatIsOpenAndRefuseMore) {
  ConnectionLimits limits(limits_of(10, 10));
  const auto a = make_address("10.1.2.3");
  auto first = limits.admit(a), second = limits.admit(a);
  limits.set(limits_of(10, 1));
  EXPECT_EQ(limits.admit(a), nullptr);
  first.reset();
  EXPECT_EQ(limits.admit(a), nullptr) << "still one open";
  second.reset();
  EXPECT_NE(limits.admit(a), nullptr);
}

TEST(ConnectionLimits, ASlotMayOutliveTheLimits) {
  std::shared_ptr<void> slot;
  {
    ConnectionLimits limits(limits_of(1, 1));
    slot = limits.admit(make_address("127.0.0.1"));
    ASSERT_NE(slot, nullptr);
  }
  slot.reset();  // gives back into counts that the slot kept alive
}

}  // namespace
}  // namespace a3::net
