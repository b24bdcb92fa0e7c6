// GETQUOTA: RFC 9208 4.1.1. One quota root per account, named "", with the
// STORAGE resource (RFC 9208 5.1) in units of 1024 octets. An account
// without a limit has no quota root.
//
// getquota        = "GETQUOTA" SP quota-root-name
// quota-response  = "QUOTA" SP quota-root-name SP quota-list
// quota-list      = "(" quota-resource *(SP quota-resource) ")"
// quota-resource  = resource-name SP resource-usage SP resource-limit
#include <fmt/format.h>

#include "frontends/imap/session.h"

namespace a3::imap {

std::string Session::quota_resources() const {
  const auto u = store_.usage(account_);
  if (!u || u->limit == 0) return {};
  return fmt::format("STORAGE {} {}", u->bytes / 1024, u->limit / 1024);
}

void Session::cmd_getquota(const std::string& tag, Parser& p) {
  p.sp();
  const std::string root = p.astring();
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  const std::string resources = quota_resources();
  if (!root.empty() || resources.empty())
    return tagged(tag, "NO", "[NONEXISTENT] No such quota root");
  untagged(fmt::format("QUOTA \"\" ({})", resources));
  tagged(tag, "OK", "GETQUOTA completed");
}

}  // namespace a3::imap
