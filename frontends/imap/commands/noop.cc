// NOOP: RFC 9051 6.1.2 NOOP.
//
// command-any = "CAPABILITY" / "LOGOUT" / "NOOP" / x-command / id

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_noop(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("NOOP takes no arguments");
  tagged(tag, "OK", "NOOP completed");
}

}  // namespace a3::imap
