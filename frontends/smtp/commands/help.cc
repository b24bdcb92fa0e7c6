// HELP: RFC 5321 4.1.1.8.
//
// help = "HELP" [ SP String ] CRLF
#include <fmt/format.h>

#include "frontends/smtp/session.h"

namespace a3::smtp {

void Session::cmd_help(std::string_view) {
  reply("214 2.0.0 See RFC 5321");
}

}  // namespace a3::smtp
