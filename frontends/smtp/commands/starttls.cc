// STARTTLS: RFC 3207; what was pipelined after it is discarded (4.2, against command injection).
//
// starttls = "STARTTLS" CRLF
#include <fmt/format.h>

#include "frontends/smtp/session.h"

namespace a3::smtp {

void Session::cmd_starttls(std::string_view) {
  if (info_.tls_active) return error("503 5.5.1 TLS is already active");
  if (!info_.tls_available) return error("454 4.7.0 TLS not available");
  reply("220 2.0.0 Ready to start TLS");
  // Anything pipelined after STARTTLS came in plaintext: discard it.
  discard_input_ = true;
  state_ = State::tls_pending;
}

}  // namespace a3::smtp
