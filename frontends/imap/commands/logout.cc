// LOGOUT: RFC 9051 6.1.3 LOGOUT.
//
// command-any = "CAPABILITY" / "LOGOUT" / "NOOP" / x-command / id

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_logout(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("LOGOUT takes no arguments");
  untagged("BYE Logging out");
  tagged(tag, "OK", "LOGOUT completed");
  state_ = State::closed;
}

}  // namespace a3::imap
