// QUIT: RFC 5321 4.1.1.10.
//
// quit = "QUIT" CRLF
#include <fmt/format.h>

#include "frontends/smtp/session.h"

namespace a3::smtp {

void Session::cmd_quit(std::string_view) {
  reply(fmt::format("221 2.0.0 {} closing connection", info_.hostname));
  state_ = State::closed;
}

}  // namespace a3::smtp
