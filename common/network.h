// IP networks in CIDR notation ("192.0.2.0/24", "2001:db8::/32", or one
// address): parsed once, matched against client addresses.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace a3 {

class Network {
 public:
  // nullopt if `cidr` is not an address with an optional prefix length
  // (at most 32 for IPv4, 128 for IPv6).
  static std::optional<Network> parse(std::string_view cidr);
  bool contains(const boost::asio::ip::address& a) const;
  bool contains(std::string_view address) const;  // false if not an address
  std::string str() const;

 private:
  boost::asio::ip::address base_;
  unsigned prefix_ = 0;
};

// A listener's "host:port" ("127.0.0.1:25", "[::1]:143") as an endpoint.
// Throws on a malformed address (the configuration checked the form).
boost::asio::ip::tcp::endpoint parse_endpoint(const std::string& bind);

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack listener
// sees of an IPv4 client) as the IPv4 address; any other as it is.
boost::asio::ip::address unmapped(const boost::asio::ip::address& a);

// Whether `address` is in any of `networks`.
bool in_any(const std::vector<Network>& networks, std::string_view address);

}  // namespace a3
