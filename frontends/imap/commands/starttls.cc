// STARTTLS: RFC 9051 6.2.1 STARTTLS.
//
// command-nonauth =/ "STARTTLS"

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_starttls(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("STARTTLS takes no arguments");
  if (!info_.tls_available || info_.tls_active) return tagged(tag, "BAD", "TLS not available");
  tagged(tag, "OK", "Begin TLS negotiation now");
  state_ = State::tls_pending;
}

}  // namespace a3::imap
