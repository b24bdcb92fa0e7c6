// How the cost of checking a client address against the blocked networks
// and bans grows with their number, from 10 to 1,000,000 networks:
// NetworkIndex (what the guard checks at accept: a binary search), against
// NetworkMap (a hash probe per prefix length in use) and a linear scan of
// the same networks (what the listener did before), in the same run; and
// the cost of a country lookup in libloc's database (the access lists'
// countries, checked at connect when set).
//
//   blocklist [--lookups N] [--countries FILE]
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "common/network.h"
#include "frontends/net/countries.h"

namespace {

using a3::Network;
using a3::NetworkMap;
namespace ip = boost::asio::ip;
using Clock = std::chrono::steady_clock;

// A mix like a real list: mostly single IPv4 addresses and /24s, some
// wider IPv4 networks, and IPv6 /48s, /64s and single addresses.
std::vector<Network> make_networks(std::size_t n, std::mt19937_64& rng) {
  std::vector<Network> out;
  out.reserve(n);
  while (out.size() < n) {
    const std::uint64_t r = rng();
    std::string cidr;
    switch (r % 10) {
      case 0:
      case 1:
      case 2:
      case 3:
        cidr = ip::address_v4(static_cast<std::uint32_t>(r >> 16)).to_string();
        break;
      case 4:
      case 5:
      case 6:
        cidr = ip::address_v4(static_cast<std::uint32_t>(r >> 16)).to_string() + "/24";
        break;
      case 7:
        cidr = ip::address_v4(static_cast<std::uint32_t>(r >> 16)).to_string() +
               fmt::format("/{}", 12 + (r >> 8) % 10);
        break;
      default: {
        ip::address_v6::bytes_type b{};
        b[0] = 0x20;
        b[1] = 0x01;
        for (int i = 2; i < 16; ++i)
          b[static_cast<std::size_t>(i)] = static_cast<unsigned char>(rng());
        const int prefix = r % 3 == 0 ? 48 : r % 3 == 1 ? 64 : 128;
        cidr = fmt::format("{}/{}", ip::address_v6(b).to_string(), prefix);
      }
    }
    if (auto net = Network::parse(cidr)) out.push_back(*net);
  }
  return out;
}

// Client addresses: half IPv4, half IPv6 (in 2001::/16, where the IPv6
// networks are), all random, so nearly all miss: a miss is the cost every
// honest client pays.
std::vector<ip::address> make_clients(std::size_t n, std::mt19937_64& rng) {
  std::vector<ip::address> out;
  for (std::size_t i = 0; i < n; ++i) {
    if (i % 2 == 0) {
      out.emplace_back(ip::address_v4(static_cast<std::uint32_t>(rng())));
    } else {
      ip::address_v6::bytes_type b{};
      b[0] = 0x20;
      b[1] = 0x01;
      for (int k = 2; k < 16; ++k)
        b[static_cast<std::size_t>(k)] = static_cast<unsigned char>(rng());
      out.emplace_back(ip::address_v6(b));
    }
  }
  return out;
}

template <typename F>
double ns_per(std::size_t n, F&& f) {
  const auto start = Clock::now();
  f();
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
         static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t lookups = 200'000;
  std::string countries = "/usr/share/libloc-location/location.db";
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--lookups" && i + 1 < argc) {
      lookups = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::string_view(argv[i]) == "--countries" && i + 1 < argc) {
      countries = argv[++i];
    } else {
      fmt::print(stderr, "usage: blocklist [--lookups N] [--countries FILE]\n");
      return 2;
    }
  }
  std::mt19937_64 rng(14);
  const auto clients = make_clients(lookups, rng);
  fmt::print("blocklist: {} lookups per size, random clients (half IPv4, half IPv6)\n", lookups);
  fmt::print("{:>10}  {:>12}  {:>10}  {:>13}  {:>10}  {:>8}\n", "networks", "index ns", "map ns",
             "scan ns", "scan/index", "hits");
  double base = 0, last = 0;
  for (const std::size_t n : {10u, 1'000u, 10'000u, 100'000u, 1'000'000u}) {
    const auto networks = make_networks(n, rng);
    NetworkMap<char> map;
    std::vector<std::pair<Network, std::int64_t>> entries;
    for (const auto& net : networks) {
      map.insert(net, 0);
      entries.emplace_back(net, 0);
    }
    const auto built = Clock::now();
    const a3::NetworkIndex index(entries);
    const double build_ms = std::chrono::duration<double, std::milli>(Clock::now() - built).count();
    std::size_t hits = 0, map_hits = 0;
    const double index_ns = ns_per(clients.size(), [&] {
      for (const auto& c : clients)
        hits += index.find(c, 0).has_value();
    });
    const double map_ns = ns_per(clients.size(), [&] {
      for (const auto& c : clients)
        map_hits += map.find(c) != nullptr;
    });
    // The scan is slow at large sizes: a sample of the clients is enough.
    const std::size_t sample = std::min(clients.size(), std::max<std::size_t>(200, 2'000'000 / n));
    std::size_t scan_hits = 0, index_sample_hits = 0;
    const double scan_ns = ns_per(sample, [&] {
      for (std::size_t i = 0; i < sample; ++i) {
        for (const auto& net : networks) {
          if (net.contains(clients[i])) {
            ++scan_hits;
            break;
          }
        }
      }
    });
    for (std::size_t i = 0; i < sample; ++i)
      index_sample_hits += index.find(clients[i], 0).has_value();
    if (base == 0) base = index_ns;
    last = index_ns;
    fmt::print(
        "{:>10}  {:>12.0f}  {:>10.0f}  {:>13.0f}  {:>9.0f}x  {:>8}  (index built in {:.0f} ms)\n",
        n, index_ns, map_ns, scan_ns, scan_ns / index_ns, hits, build_ms);
    if (hits != map_hits || index_sample_hits != scan_hits) {
      fmt::print(stderr, "blocklist: the index, the map and the scan disagree\n");
      return 1;
    }
  }
  fmt::print("1,000,000 networks cost {:.2f}x what 10 do per lookup (log2 ratio: {:.1f})\n",
             last / base, std::log2(1'000'000.0) / std::log2(10.0));
  // Countries: the same clients against the whole database.
  try {
    const a3::net::CountryDatabase db(countries);
    std::size_t placed = 0;
    const double country_ns = ns_per(clients.size(), [&] {
      for (const auto& c : clients)
        placed += db.country(c).has_value();
    });
    fmt::print("country lookup ({}): {:.0f} ns per client, {:.1f}% placed in a country\n",
               countries, country_ns, 100.0 * static_cast<double>(placed) / clients.size());
  } catch (const std::exception& e) {
    fmt::print("country lookup: skipped: {}\n", e.what());
  }
  return 0;
}
