// LOGIN: RFC 9051 6.2.3 LOGIN.
//
// login = "LOGIN" SP userid SP password

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_login(const std::string& tag, Parser& p) {
  p.sp();
  std::string user = p.astring();
  p.sp();
  std::string password = p.astring();
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (!info_.tls_active && !info_.allow_plaintext_auth) {
    return tagged(tag, "NO", "[PRIVACYREQUIRED] Use STARTTLS first");
  }
  pending_tag_ = tag;
  pending_auth_ = AuthRequest{"LOGIN", std::move(user), std::move(password)};
  state_ = State::awaiting_auth;
}

}  // namespace a3::imap
