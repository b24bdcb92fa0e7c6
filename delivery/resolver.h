// DNS for outbound delivery: MX and address lookups through libunbound's
// asynchronous API, driven by the caller's io_context (ub_fd watched by
// Asio), so no thread blocks on the system resolver. RFC 5321 5.1: MX hosts
// by preference, equal preferences shuffled, a domain without MX records
// is its own mail host, a null MX (RFC 7505) accepts no mail.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

namespace a3::delivery {

enum class DnsStatus {
  ok,
  nxdomain,   // the name does not exist: permanent
  nodata,     // it exists, without records of that type
  temporary,  // SERVFAIL, timeout, no server: try again later
};

struct MxHost {
  std::uint16_t preference = 0;
  std::string host;  // without the trailing dot
};

struct MxAnswer {
  DnsStatus status = DnsStatus::temporary;
  std::vector<MxHost> hosts;  // in the order to try them
  bool null_mx = false;       // RFC 7505: "MX 0 ." only
  std::string detail;         // for the reason a delivery gives
};

struct AddressAnswer {
  DnsStatus status = DnsStatus::temporary;
  std::vector<std::string> addresses;  // IPv4 first, then IPv6
  std::string detail;
};

class Resolver {
 public:
  // `forwarders`: "IP" or "IP@port"; empty uses /etc/resolv.conf.
  // Throws std::runtime_error with a message for operators.
  Resolver(boost::asio::io_context& io, const std::vector<std::string>& forwarders);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  boost::asio::awaitable<MxAnswer> mx(std::string domain);
  boost::asio::awaitable<AddressAnswer> addresses(std::string host);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Parses an MX record's RDATA (preference, then the uncompressed name).
bool parse_mx_rdata(const unsigned char* data, std::size_t len, MxHost& out);
// A domain name in RDATA (PTR, or after the preference of MX), uncompressed
// as libunbound hands it over; "" for the root.
bool parse_name_rdata(const unsigned char* data, std::size_t len, std::string& out);

}  // namespace a3::delivery
