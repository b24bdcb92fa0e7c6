// Networks and the network map that blocked networks and bans use.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "common/network.h"

namespace a3 {
namespace {

using boost::asio::ip::make_address;

Network net(const char* cidr) {
  auto n = Network::parse(cidr);
  EXPECT_TRUE(n) << cidr;
  return n ? *n : Network{};
}

TEST(Network, ParsesMasksAndRefusesMalformedCidr) {
  EXPECT_EQ(net("192.0.2.77/24").str(), "192.0.2.0/24");
  EXPECT_EQ(net("192.0.2.77").str(), "192.0.2.77/32");
  EXPECT_EQ(net("2001:db8:1:2::9/48").str(), "2001:db8:1::/48");
  EXPECT_EQ(net("::ffff:192.0.2.9/120").str(), "192.0.2.0/24") << "v4-mapped is IPv4";
  EXPECT_EQ(net("0.0.0.0/0").str(), "0.0.0.0/0");
  for (const char* bad : {"", "/24", "192.0.2.0/", "192.0.2.0/33", "192.0.2.0/-1", "192.0.2/24",
                          "2001:db8::/129", "example.test", "192.0.2.0/24x", "192.0.2.0 /24"})
    EXPECT_FALSE(Network::parse(bad)) << bad;
}

TEST(Network, ContainsByPrefixAndFamily) {
  EXPECT_TRUE(net("192.0.2.0/24").contains(make_address("192.0.2.255")));
  EXPECT_FALSE(net("192.0.2.0/24").contains(make_address("192.0.3.0")));
  EXPECT_TRUE(net("192.0.2.0/24").contains(make_address("::ffff:192.0.2.1")));
  EXPECT_FALSE(net("::/0").contains(make_address("192.0.2.1"))) << "IPv6 never holds IPv4";
  EXPECT_TRUE(net("10.0.0.0/8").contains("10.200.3.4"));
  EXPECT_FALSE(net("10.0.0.0/8").contains("not an address"));
}

TEST(NetworkMap, FindsTheMostSpecificNetworkHoldingAnAddress) {
  NetworkMap<int> m;
  m.insert(net("10.0.0.0/8"), 8);
  m.insert(net("10.1.0.0/16"), 16);
  m.insert(net("10.1.2.3"), 32);
  m.insert(net("2001:db8::/32"), 632);
  EXPECT_EQ(*m.find(make_address("10.1.2.3")), 32);
  EXPECT_EQ(*m.find(make_address("10.1.9.9")), 16);
  EXPECT_EQ(*m.find(make_address("10.9.9.9")), 8);
  EXPECT_EQ(*m.find(make_address("::ffff:10.9.9.9")), 8) << "a dual-stack listener's client";
  EXPECT_EQ(*m.find(make_address("2001:db8:ffff::1")), 632);
  EXPECT_EQ(m.find(make_address("11.0.0.1")), nullptr);
  EXPECT_EQ(m.find(make_address("2001:db9::1")), nullptr);
  // A predicate skips entries (an expired ban) for a less specific one.
  const int* wide = m.find(make_address("10.1.2.3"), [](int v) { return v < 16; });
  ASSERT_NE(wide, nullptr);
  EXPECT_EQ(*wide, 8);
}

TEST(NetworkMap, InsertReplacesEraseRemovesExactlyThatNetwork) {
  NetworkMap<int> m;
  m.insert(net("192.0.2.0/24"), 1);
  m.insert(net("192.0.2.9/24"), 2);  // the same network, spelled otherwise
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(*m.find_exact(net("192.0.2.0/24")), 2);
  EXPECT_FALSE(m.erase(net("192.0.2.0/25")));
  EXPECT_TRUE(m.erase(net("192.0.2.0/24")));
  EXPECT_FALSE(m.erase(net("192.0.2.0/24")));
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.find(make_address("192.0.2.1")), nullptr);
  m.insert(net("0.0.0.0/0"), 0);
  EXPECT_NE(m.find(make_address("203.0.113.1")), nullptr) << "/0 holds every IPv4 address";
  EXPECT_EQ(m.find(make_address("2001:db8::1")), nullptr);
}

TEST(NetworkMap, AHundredThousandNetworksAnswerLikeOne) {
  NetworkMap<std::uint32_t> m;
  for (std::uint32_t i = 0; i < 100'000; ++i) {
    const boost::asio::ip::address_v4 a((10u << 24) | (i << 8));
    m.insert(*Network::parse(a.to_string() + "/24"), i);
  }
  EXPECT_EQ(m.size(), 100'000u);
  for (std::uint32_t i = 0; i < 100'000; i += 997) {
    const boost::asio::ip::address_v4 a((10u << 24) | (i << 8) | 77u);
    const auto* v = m.find(a);
    ASSERT_NE(v, nullptr) << a.to_string();
    EXPECT_EQ(*v, i);
  }
  EXPECT_EQ(m.find(make_address("12.0.0.1")), nullptr);  // past 10.0.0.0 + 100,000 /24s
}

TEST(NetworkIndex, NestedNetworksAndExpiriesKeepTheirMeaning) {
  const std::int64_t now = 1'000'000;
  NetworkIndex idx({{net("10.0.0.0/8"), now + 50},
                    {net("10.1.0.0/16"), 0},  // never expires
                    {net("10.1.2.3"), now + 10},
                    {net("10.2.0.0/16"), now - 1},  // expired
                    {net("255.255.255.255"), 0},
                    {net("2001:db8::/32"), now + 7},
                    {net("ffff::/16"), 0}});
  EXPECT_EQ(idx.networks(), 7u);
  EXPECT_EQ(idx.find(make_address("10.1.2.3"), now), 0) << "the latest expiry: never";
  EXPECT_EQ(idx.find(make_address("10.9.9.9"), now), now + 50);
  EXPECT_EQ(idx.find(make_address("10.2.0.1"), now), now + 50) << "the /8 still holds";
  EXPECT_EQ(idx.find(make_address("10.9.9.9"), now + 50), std::nullopt) << "expired now";
  EXPECT_EQ(idx.find(make_address("::ffff:10.9.9.9"), now), now + 50);
  EXPECT_EQ(idx.find(make_address("9.255.255.255"), now), std::nullopt);
  EXPECT_EQ(idx.find(make_address("11.0.0.0"), now), std::nullopt);
  EXPECT_EQ(idx.find(make_address("255.255.255.255"), now), 0) << "the last address";
  EXPECT_EQ(idx.find(make_address("255.255.255.254"), now), std::nullopt);
  EXPECT_EQ(idx.find(make_address("2001:db8:ffff::1"), now), now + 7);
  EXPECT_EQ(idx.find(make_address("2001:db9::"), now), std::nullopt);
  EXPECT_EQ(idx.find(make_address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), now), 0);
  EXPECT_EQ(idx.find(make_address("::a01:203"), now), std::nullopt) << "IPv6, not 10.1.2.3";
  EXPECT_EQ(NetworkIndex().find(make_address("10.1.2.3"), now), std::nullopt);
  NetworkIndex all({{net("0.0.0.0/0"), 0}, {net("::/0"), 0}});
  EXPECT_EQ(all.find(make_address("0.0.0.0"), now), 0);
  EXPECT_EQ(all.find(make_address("::"), now), 0);
}

TEST(NetworkIndex, AgreesWithALinearScan) {
  std::vector<std::pair<Network, std::int64_t>> entries;
  std::vector<Network> networks;
  std::uint32_t x = 12345;
  auto next = [&] { return x = x * 1103515245u + 12345u; };
  for (int i = 0; i < 2000; ++i) {
    const boost::asio::ip::address_v4 a(next());
    const auto n = net((a.to_string() + "/" + std::to_string(8 + next() % 25)).c_str());
    entries.emplace_back(n, 0);
    networks.push_back(n);
  }
  NetworkIndex idx(entries);
  for (int i = 0; i < 20000; ++i) {
    const boost::asio::ip::address_v4 a(next());
    bool scan = false;
    for (const auto& n : networks)
      scan = scan || n.contains(a);
    EXPECT_EQ(idx.find(a, 0).has_value(), scan) << a.to_string();
  }
}

}  // namespace
}  // namespace a3
