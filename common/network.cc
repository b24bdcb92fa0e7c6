#include "common/network.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <set>
#include <tuple>

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

// `a` with every bit after the first `prefix` cleared.
ip::address masked(const ip::address& a, unsigned prefix) {
  auto clear = [prefix](auto bytes) {
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      const unsigned keep =
          prefix > i * 8 ? std::min(prefix - static_cast<unsigned>(i * 8), 8u) : 0;
      bytes[i] &= static_cast<unsigned char>(0xff00u >> keep);
    }
    return bytes;
  };
  if (a.is_v4()) return ip::address_v4(clear(a.to_v4().to_bytes()));
  return ip::address_v6(clear(a.to_v6().to_bytes()));
}

}  // namespace

namespace detail {

NetworkKey network_key(const ip::address& a, unsigned prefix) {
  NetworkKey k;
  k.bytes[0] = a.is_v4() ? 4 : 6;
  k.bytes[1] = static_cast<unsigned char>(prefix);
  const ip::address m = masked(a, prefix);
  if (m.is_v4()) {
    const auto b = m.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), k.bytes.begin() + 2);
  } else {
    const auto b = m.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), k.bytes.begin() + 2);
  }
  return k;
}

std::size_t NetworkKeyHash::operator()(const NetworkKey& k) const noexcept {
  // FNV-1a over 18 bytes. What is stored is the operator's networks and
  // banned addresses; colliding keys would take owning colliding addresses.
  std::uint64_t h = 14695981039346656037ull;
  for (const unsigned char b : k.bytes) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return static_cast<std::size_t>(h);
}

}  // namespace detail

std::optional<Network> Network::parse(std::string_view cidr) {
  const auto slash = cidr.find('/');
  boost::system::error_code ec;
  ip::address base = ip::make_address(std::string(cidr.substr(0, slash)), ec);
  if (ec) return std::nullopt;
  const unsigned max = base.is_v4() ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    const std::string_view p = cidr.substr(slash + 1);
    const auto r = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || r.ec != std::errc() || r.ptr != p.data() + p.size() || prefix > max)
      return std::nullopt;
  }
  // ::ffff:192.0.2.0/120 is 192.0.2.0/24: clients are matched unmapped.
  if (base.is_v6() && base.to_v6().is_v4_mapped() && prefix >= 96) {
    base = unmapped(base);
    prefix -= 96;
  }
  Network n;
  n.base_ = masked(base, prefix);
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

namespace {

// The elementary ranges of [start, end] intervals with values: at each
// boundary, the largest value of the intervals covering it (none: kNone).
template <typename Key>
void build_ranges(std::vector<std::tuple<Key, Key, std::int64_t>>& intervals,
                  std::vector<Key>& starts, std::vector<std::int64_t>& values, std::int64_t none) {
  // Events: +value at a start, -value just after an end (none past the
  // last address).
  struct Event {
    Key at;
    bool add;
    std::int64_t value;
  };
  std::vector<Event> events;
  events.reserve(intervals.size() * 2);
  for (const auto& [start, end, value] : intervals) {
    events.push_back({start, true, value});
    if (end != static_cast<Key>(~Key(0))) events.push_back({Key(end + 1), false, value});
  }
  std::sort(events.begin(), events.end(),
            [](const Event& a, const Event& b) { return a.at < b.at; });
  std::multiset<std::int64_t> active;
  for (std::size_t i = 0; i < events.size();) {
    const Key at = events[i].at;
    for (; i < events.size() && events[i].at == at; ++i) {
      if (events[i].add)
        active.insert(events[i].value);
      else
        active.erase(active.find(events[i].value));
    }
    const std::int64_t v = active.empty() ? none : *active.rbegin();
    if (!values.empty() && values.back() == v) continue;  // the same as the range before
    starts.push_back(at);
    values.push_back(v);
  }
}

template <typename Key>
Key key_of(const ip::address& a) {
  if constexpr (sizeof(Key) == 4) {
    return a.to_v4().to_uint();
  } else {
    Key k = 0;
    for (const unsigned char b : a.to_v6().to_bytes())
      k = (k << 8) | b;
    return k;
  }
}

}  // namespace

NetworkIndex::NetworkIndex(const std::vector<std::pair<Network, std::int64_t>>& entries) {
  std::vector<std::tuple<std::uint32_t, std::uint32_t, std::int64_t>> v4;
  std::vector<std::tuple<unsigned __int128, unsigned __int128, std::int64_t>> v6;
  for (const auto& [net, expires] : entries) {
    const std::int64_t value = expires == 0 ? kNever : expires;
    if (net.is_v4()) {
      const std::uint32_t start = key_of<std::uint32_t>(net.base());
      const std::uint32_t span = net.prefix() == 0 ? ~0u : (1u << (32 - net.prefix())) - 1;
      v4.emplace_back(start, start | span, value);
    } else {
      const unsigned __int128 start = key_of<unsigned __int128>(net.base());
      const unsigned __int128 span =
          net.prefix() == 0 ? ~static_cast<unsigned __int128>(0)
                            : (static_cast<unsigned __int128>(1) << (128 - net.prefix())) - 1;
      v6.emplace_back(start, start | span, value);
    }
  }
  networks_ = entries.size();
  build_ranges(v4, v4_.starts, v4_.expiry, kNone);
  build_ranges(v6, v6_.starts, v6_.expiry, kNone);
}

std::optional<std::int64_t> NetworkIndex::find(const ip::address& address,
                                               std::int64_t now_ms) const {
  const ip::address a = unmapped(address);
  auto lookup = [&](const auto& ranges, auto key) -> std::optional<std::int64_t> {
    const auto it = std::upper_bound(ranges.starts.begin(), ranges.starts.end(), key);
    if (it == ranges.starts.begin()) return std::nullopt;
    const std::int64_t v = ranges.expiry[static_cast<std::size_t>(it - ranges.starts.begin() - 1)];
    if (v == kNone || v <= now_ms) return std::nullopt;
    return v == kNever ? 0 : v;
  };
  if (a.is_v4()) return lookup(v4_, key_of<std::uint32_t>(a));
  return lookup(v6_, key_of<unsigned __int128>(a));
}

}  // namespace a3
