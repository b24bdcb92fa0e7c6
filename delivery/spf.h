// SPF (RFC 7208) with libspf2, asking DNS through BlockingDns (the
// configured resolvers, a deadline per query, one budget per message)
// instead of libspf2's own resolver (the system's, without deadlines).
#pragma once

#include <string>

#include "delivery/blocking_dns.h"

namespace a3::delivery {

struct SpfResult {
  std::string result;  // RFC 8601: pass, fail, softfail, neutral, none, temperror, permerror
  std::string reason;  // libspf2's explanation, for a comment
};

// check_host() for the client at `ip` (IPv4-mapped IPv6 as IPv4) and the
// MAIL FROM identity, or postmaster@`helo` for the null sender ("").
// `hostname`: ours, in the explanation. Blocks: for threads that may wait.
SpfResult spf(const BlockingDns& dns, BlockingDns::Budget& budget, const std::string& ip,
              const std::string& helo, const std::string& mail_from, const std::string& hostname);

}  // namespace a3::delivery
