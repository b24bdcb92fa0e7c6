#include "frontends/net/countries.h"
#include "common/files.h"
#include "common/network.h"

#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

extern "C" {
#include <libloc/database.h>
#include <libloc/libloc.h>
#include <libloc/network.h>
}

namespace a3::net {

namespace {

// What no country owns: loopback, RFC 1918, shared address space (RFC
// 6598), link-local, unique local (RFC 4193), unspecified.
const std::vector<Network>& local_networks() {
  static const std::vector<Network> networks = [] {
    std::vector<Network> n;
    for (const char* cidr :
         {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
          "172.16.0.0/12", "192.168.0.0/16", "::/128", "::1/128", "fc00::/7", "fe80::/10"})
      n.push_back(*Network::parse(cidr));
    return n;
  }();
  return networks;
}

// libloc's messages (its syslog priorities), at debug level: what matters
// (a file that is not a database) is thrown with the file's name.
void log_from_libloc(loc_ctx*, int, const char*, int, const char* fn, const char* format,
                     va_list args) {
  // Not after spdlog::shutdown(): the daemon's last rules may outlive it.
  const auto* logger = spdlog::default_logger_raw();
  if (!logger || !logger->should_log(spdlog::level::debug)) return;
  char text[512];
  std::vsnprintf(text, sizeof text, format, args);
  std::string_view line(text);
  while (!line.empty() && line.back() == '\n')
    line.remove_suffix(1);
  spdlog::debug("libloc: {}: {}", fn, line);
}

}  // namespace

bool CountryDatabase::local(const boost::asio::ip::address& ip) {
  const auto a = unmapped(ip);
  for (const auto& n : local_networks()) {
    if (n.contains(a)) return true;
  }
  return false;
}

CountryDatabase::CountryDatabase(const std::filesystem::path& file) : file_(file) {
  auto fail = [&](std::string_view what, std::string_view why) {
    if (ctx_) loc_unref(ctx_);
    throw std::runtime_error(fmt::format("{}: {}: {}", file.string(), what, why));
  };
  if (loc_new(&ctx_) != 0) fail("cannot start libloc", std::strerror(errno));
  // libloc logs to standard error unless told: into the daemon's log.
  loc_set_log_fn(ctx_, log_from_libloc);
  loc_set_log_priority(ctx_, 7);
  std::string why;
  const int fd = open_regular_file(file, why);  // never a FIFO's blocking open
  if (fd < 0) fail("cannot open the country database", why);
  FILE* f = ::fdopen(fd, "rb");
  if (!f) {
    why = std::strerror(errno);
    ::close(fd);
    fail("cannot open the country database", why);
  }
  const int r = loc_database_new(ctx_, &db_, f);
  std::fclose(f);  // libloc keeps its own copy
  if (r != 0) {
    db_ = nullptr;
    // A negative errno, or 1 for a file that is not one (magic, version).
    fail("not a libloc location database",
         r < 0 ? std::string_view(std::strerror(-r)) : "unknown format or version");
  }
}

CountryDatabase::~CountryDatabase() {
  loc_set_log_priority(ctx_, 0);  // nothing to say any more
  loc_database_unref(db_);
  loc_unref(ctx_);
}

std::int64_t CountryDatabase::created_at() const {
  std::lock_guard lock(mu_);
  return static_cast<std::int64_t>(loc_database_created_at(db_));
}

std::optional<std::string> CountryDatabase::country(const boost::asio::ip::address& ip) const {
  const auto a = unmapped(ip);
  if (local(a)) return std::nullopt;
  // libloc keys every network by an IPv6 address, IPv4 ones mapped.
  in6_addr key{};
  if (a.is_v4()) {
    key.s6_addr[10] = key.s6_addr[11] = 0xff;
    const auto b = a.to_v4().to_bytes();
    std::memcpy(&key.s6_addr[12], b.data(), 4);
  } else {
    const auto b = a.to_v6().to_bytes();
    std::memcpy(key.s6_addr, b.data(), 16);
  }
  std::lock_guard lock(mu_);
  loc_network* network = nullptr;
  if (loc_database_lookup(db_, &key, &network) != 0 || !network) return std::nullopt;
  std::optional<std::string> code;
  if (const char* cc = loc_network_get_country_code(network); cc && cc[0] && cc[1] && !cc[2])
    code = std::string(cc, 2);
  loc_network_unref(network);
  return code;
}

}  // namespace a3::net
