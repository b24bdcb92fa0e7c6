// GETQUOTAROOT: RFC 9208 4.1.2. Every mailbox of the account shares its one
// quota root "" (none when the account has no limit).
//
// getquotaroot       = "GETQUOTAROOT" SP mailbox
// quotaroot-response = "QUOTAROOT" SP mailbox *(SP quota-root-name)
#include <fmt/format.h>

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_getquotaroot(const std::string& tag, Parser& p) {
  p.sp();
  const std::string wire = p.mailbox();
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  const std::string name = decode_name(wire);
  if (!find_mailbox(name)) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  const std::string resources = quota_resources();
  if (resources.empty()) {
    untagged(fmt::format("QUOTAROOT {}", encode_name(name)));
  } else {
    untagged(fmt::format("QUOTAROOT {} \"\"", encode_name(name)));
    untagged(fmt::format("QUOTA \"\" ({})", resources));
  }
  tagged(tag, "OK", "GETQUOTAROOT completed");
}

}  // namespace a3::imap
