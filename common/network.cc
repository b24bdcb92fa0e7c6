#include "common/network.h"

#include <charconv>

#include <fmt/format.h>

namespace a3 {

namespace ip = boost::asio::ip;

ip::address unmapped(const ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  return a;
}

namespace {

// The bytes of `a`, IPv4-mapped IPv6 addresses as IPv4.
std::vector<unsigned char> bytes_of(const ip::address& address) {
  const ip::address a = unmapped(address);
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    return {b.begin(), b.end()};
  }
  const auto b = a.to_v6().to_bytes();
  return {b.begin(), b.end()};
}

}  // namespace

std::optional<Network> Network::parse(std::string_view cidr) {
  const auto slash = cidr.find('/');
  boost::system::error_code ec;
  const auto base = ip::make_address(std::string(cidr.substr(0, slash)), ec);
  if (ec) return std::nullopt;
  const unsigned max = base.is_v4() ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    const std::string_view p = cidr.substr(slash + 1);
    const auto r = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || r.ec != std::errc() || r.ptr != p.data() + p.size() || prefix > max)
      return std::nullopt;
  }
  Network n;
  n.base_ = base;
  n.prefix_ = prefix;
  return n;
}

bool Network::contains(const ip::address& a) const {
  const auto want = bytes_of(base_);
  const auto have = bytes_of(a);
  if (want.size() != have.size()) return false;
  unsigned bits = std::min<unsigned>(prefix_, static_cast<unsigned>(want.size() * 8));
  for (std::size_t i = 0; bits > 0; ++i) {
    const unsigned take = std::min(bits, 8u);
    const unsigned mask = (0xffu << (8 - take)) & 0xffu;
    if ((want[i] & mask) != (have[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

bool Network::contains(std::string_view address) const {
  boost::system::error_code ec;
  const auto a = ip::make_address(std::string(address), ec);
  return !ec && contains(a);
}

ip::tcp::endpoint parse_endpoint(const std::string& bind) {
  const auto colon = bind.rfind(':');
  std::string host = bind.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return {ip::make_address(host), static_cast<unsigned short>(std::stoi(bind.substr(colon + 1)))};
}

std::string Network::str() const {
  return fmt::format("{}/{}", base_.to_string(), prefix_);
}

bool in_any(const std::vector<Network>& networks, std::string_view address) {
  for (const auto& n : networks)
    if (n.contains(address)) return true;
  return false;
}

}  // namespace a3
