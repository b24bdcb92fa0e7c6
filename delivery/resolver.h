// DNS for outbound delivery: MX and address lookups through libunbound's
// asynchronous API, driven by the caller's io_context (ub_fd watched by
// Asio), so no thread blocks on the system resolver. RFC 5321 5.1: MX hosts
// by preference, equal preferences shuffled, a domain without MX records
// is its own mail host, a null MX (RFC 7505) accepts no mail. With trust
// anchors, libunbound validates DNSSEC itself (RFC 4033-4035): answers say
// whether they are secure, and a bogus one is a temporary failure (RFC
// 7672 2.1.1), so DANE (RFC 7672) can rely on them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

struct ub_ctx;

namespace a3::delivery {

enum class DnsStatus {
  ok,
  nxdomain,   // the name does not exist: permanent
  nodata,     // it exists, without records of that type
  temporary,  // SERVFAIL, timeout, no server, DNSSEC bogus: try again later
};

struct MxHost {
  std::uint16_t preference = 0;
  std::string host;  // without the trailing dot
};

struct MxAnswer {
  DnsStatus status = DnsStatus::temporary;
  std::vector<MxHost> hosts;  // in the order to try them
  bool null_mx = false;       // RFC 7505: "MX 0 ." only
  bool secure = false;        // DNSSEC-validated (the records, or their absence)
  std::string detail;         // for the reason a delivery gives
};

struct AddressAnswer {
  DnsStatus status = DnsStatus::temporary;
  std::vector<std::string> addresses;  // IPv4 first, then IPv6
  bool secure = false;                 // every answer DNSSEC-validated
  bool incomplete = false;             // one family's lookup failed (temporary or bogus)
  std::string detail;
};

// A TLSA record (RFC 6698 2.1).
struct Tlsa {
  std::uint8_t usage = 0;     // 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
  std::uint8_t selector = 0;  // 0 the certificate, 1 its SubjectPublicKeyInfo
  std::uint8_t mtype = 0;     // 0 exact, 1 SHA-256, 2 SHA-512
  std::string data;
  friend bool operator==(const Tlsa&, const Tlsa&) = default;
};

struct TlsaAnswer {
  DnsStatus status = DnsStatus::temporary;
  std::vector<Tlsa> records;
  bool secure = false;
  std::string detail;
};

class Resolver {
 public:
  // `forwarders`: "IP" or "IP@port"; empty uses /etc/resolv.conf.
  // `trust_anchors`: files of DS or DNSKEY records (e.g. Debian's
  // /usr/share/dns/root.key); none: nothing is validated (never secure).
  // Throws std::runtime_error with a message for operators.
  Resolver(boost::asio::io_context& io, const std::vector<std::string>& forwarders,
           const std::vector<std::string>& trust_anchors = {});
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  boost::asio::awaitable<MxAnswer> mx(std::string domain);
  boost::asio::awaitable<AddressAnswer> addresses(std::string host);
  // "_<port>._tcp.<host>" TLSA (RFC 6698 3, RFC 7672 2.2.3).
  boost::asio::awaitable<TlsaAnswer> tlsa(std::string host, std::uint16_t port);
  bool validating() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// A libunbound context in asynchronous mode (answers through ub_fd),
// asking `forwarders` ("IP" or "IP@port"; none: /etc/resolv.conf, or the
// root servers), validating with `trust_anchors` (files of DS or DNSKEY
// records). Throws std::runtime_error naming `who` and the reason.
ub_ctx* make_context(const std::vector<std::string>& forwarders,
                     const std::vector<std::string>& trust_anchors, std::string_view who);

// Parses an MX record's RDATA (preference, then the uncompressed name).
bool parse_mx_rdata(const unsigned char* data, std::size_t len, MxHost& out);
// A domain name in RDATA (PTR, or after the preference of MX), uncompressed
// as libunbound hands it over; "" for the root.
bool parse_name_rdata(const unsigned char* data, std::size_t len, std::string& out);

}  // namespace a3::delivery
