// VRFY: RFC 5321 4.1.1.6 and 3.5.3 (252 when verification is not offered: no address harvesting).
//
// vrfy = "VRFY" SP String CRLF
#include <fmt/format.h>

#include "frontends/smtp/session.h"

namespace a3::smtp {

void Session::cmd_vrfy(std::string_view) {
  reply("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

}  // namespace a3::smtp
