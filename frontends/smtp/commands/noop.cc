// NOOP: RFC 5321 4.1.1.9 (an argument is allowed and ignored).
//
// noop = "NOOP" [ SP String ] CRLF
#include <fmt/format.h>

#include "frontends/smtp/session.h"

namespace a3::smtp {

void Session::cmd_noop(std::string_view) {
  reply("250 2.0.0 OK");
}

}  // namespace a3::smtp
