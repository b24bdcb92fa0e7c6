// HELO: RFC 5321 4.1.1.1, the greeting of clients without extensions.
//
// helo = "HELO" SP Domain CRLF
#include "frontends/smtp/session.h"

namespace a3::smtp {

void Session::cmd_helo(std::string_view arg) {
  ehlo(arg, false);
}

}  // namespace a3::smtp
