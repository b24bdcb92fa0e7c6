// IP networks in CIDR notation ("192.0.2.0/24", "2001:db8::/32", or one
// address): parsed once, matched against client addresses.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
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
  // "192.0.2.0/24": the base address masked to the prefix, so two spellings
  // of one network ("192.0.2.7/24", "192.0.2.0/24") read the same.
  std::string str() const;
  unsigned prefix() const { return prefix_; }
  bool is_v4() const { return base_.is_v4(); }
  const boost::asio::ip::address& base() const { return base_; }
  friend bool operator==(const Network& a, const Network& b) {
    return a.base_ == b.base_ && a.prefix_ == b.prefix_;
  }

 private:
  template <typename V>
  friend class NetworkMap;
  boost::asio::ip::address base_;  // masked to the prefix
  unsigned prefix_ = 0;
};

// A listener's "host:port" ("127.0.0.1:25", "[::1]:143") as an endpoint.
// Throws on a malformed address (the configuration checked the form).
boost::asio::ip::tcp::endpoint parse_endpoint(const std::string& bind);

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack listener
// sees of an IPv4 client) as the IPv4 address; any other as it is.
boost::asio::ip::address unmapped(const boost::asio::ip::address& a);

namespace detail {
// A network as a hash key: family, prefix length and the masked address.
struct NetworkKey {
  std::array<unsigned char, 18> bytes{};
  friend bool operator==(const NetworkKey&, const NetworkKey&) = default;
};
struct NetworkKeyHash {
  std::size_t operator()(const NetworkKey& k) const noexcept;
};
// The key of the network of `prefix` bits holding `a` (already unmapped).
NetworkKey network_key(const boost::asio::ip::address& a, unsigned prefix);
}  // namespace detail

// Networks mapped to values (a blocked network, a ban and its expiry). A
// lookup costs one hash probe per prefix length in use, at most 33 for IPv4
// and 129 for IPv6, whatever the number of networks: 100,000 blocked
// networks answer a connect as fast as ten (tools/bench/blocklist).
template <typename V>
class NetworkMap {
 public:
  // Adds or replaces the entry of exactly this network.
  void insert(const Network& n, V value) {
    auto [it, added] = entries_.insert_or_assign(key(n), std::pair{n, std::move(value)});
    if (added) ++uses(n.is_v4(), n.prefix());
  }
  bool erase(const Network& n) {
    if (entries_.erase(key(n)) == 0) return false;
    --uses(n.is_v4(), n.prefix());
    return true;
  }
  const V* find_exact(const Network& n) const {
    const auto it = entries_.find(key(n));
    return it == entries_.end() ? nullptr : &it->second.second;
  }
  // The value of the most specific network holding `address` for which
  // `accept(value)` holds (e.g. a ban not yet expired), or null.
  template <typename Accept>
  const V* find(const boost::asio::ip::address& address, Accept accept) const {
    if (entries_.empty()) return nullptr;
    const boost::asio::ip::address a = unmapped(address);
    const bool v4 = a.is_v4();
    for (int prefix = v4 ? 32 : 128; prefix >= 0; --prefix) {
      if (uses(v4, static_cast<unsigned>(prefix)) == 0) continue;
      const auto it = entries_.find(detail::network_key(a, static_cast<unsigned>(prefix)));
      if (it != entries_.end() && accept(it->second.second)) return &it->second.second;
    }
    return nullptr;
  }
  const V* find(const boost::asio::ip::address& address) const {
    return find(address, [](const V&) { return true; });
  }
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // f(const Network&, const V&) for every entry, in no particular order.
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [k, entry] : entries_)
      f(entry.first, entry.second);
  }

 private:
  static detail::NetworkKey key(const Network& n);
  std::size_t& uses(bool v4, unsigned prefix) { return uses_[(v4 ? 129 : 0) + prefix]; }
  std::size_t uses(bool v4, unsigned prefix) const { return uses_[(v4 ? 129 : 0) + prefix]; }

  std::unordered_map<detail::NetworkKey, std::pair<Network, V>, detail::NetworkKeyHash> entries_;
  std::array<std::size_t, 129 + 33> uses_{};  // networks per (family, prefix length)
};

template <typename V>
detail::NetworkKey NetworkMap<V>::key(const Network& n) {
  return detail::network_key(n.base_, n.prefix_);
}

// What is checked at every accept: networks, each with an expiry (ms since
// the epoch; 0: never), as the sorted elementary ranges they cut the
// address space into, each with the latest expiry of the networks covering
// it. A lookup is one binary search over a contiguous array, O(log n):
// 100,000 networks cost about 17 steps (tools/bench/blocklist). Built once
// per change, O(n log n); immutable, so readers share it without a lock.
class NetworkIndex {
 public:
  NetworkIndex() = default;
  explicit NetworkIndex(const std::vector<std::pair<Network, std::int64_t>>& entries);

  // The latest expiry (0: never) of the networks holding `address`, if
  // one of them is in force at `now_ms`.
  std::optional<std::int64_t> find(const boost::asio::ip::address& address,
                                   std::int64_t now_ms) const;
  std::size_t networks() const { return networks_; }

 private:
  // Range starts, and the latest expiry from each start to the next one
  // (kNone: no network; kNever: one that never expires).
  template <typename Key>
  struct Ranges {
    std::vector<Key> starts;
    std::vector<std::int64_t> expiry;
  };
  static constexpr std::int64_t kNone = -1;
  static constexpr std::int64_t kNever = INT64_MAX;
  Ranges<std::uint32_t> v4_;
  Ranges<unsigned __int128> v6_;
  std::size_t networks_ = 0;
};

}  // namespace a3
