// DATA: RFC 5321 4.1.1.4; the body is read by the session (dot-stuffing, bare CR/LF refused).
//
// data = "DATA" CRLF
#include <fmt/format.h>

#include "frontends/smtp/session.h"

namespace a3::smtp {

void Session::cmd_data(std::string_view) {
  if (chunking_) return error("503 5.5.1 DATA after BDAT is not allowed (RFC 3030 2)");
  if (env_.accounts.empty() && env_.outbound.empty()) return error("554 5.5.1 No valid recipients");
  reply("354 End data with <CR><LF>.<CR><LF>");
  state_ = State::data;
  line_start_ = true;
}

}  // namespace a3::smtp
