// CAPABILITY: RFC 9051 6.1.1 CAPABILITY.
//
// capability = "CAPABILITY" *(SP capability) SP "IMAP4rev2" *(SP capability)

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_capability(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("CAPABILITY takes no arguments");
  untagged("CAPABILITY " + capabilities());
  tagged(tag, "OK", "CAPABILITY completed");
}

}  // namespace a3::imap
