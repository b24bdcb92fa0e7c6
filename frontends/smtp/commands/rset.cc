// RSET: RFC 5321 4.1.1.5.
//
// rset = "RSET" CRLF
#include <fmt/format.h>

#include "frontends/smtp/session.h"

namespace a3::smtp {

void Session::cmd_rset(std::string_view) {
  reset_transaction();
  reply("250 2.0.0 OK");
}

}  // namespace a3::smtp
