// EXPN: RFC 5321 4.1.1.7; not offered (it would reveal lists).
//
// expn = "EXPN" SP String CRLF
#include <fmt/format.h>

#include "frontends/smtp/session.h"

namespace a3::smtp {

void Session::cmd_expn(std::string_view) {
  error("502 5.5.1 EXPN is not supported");
}

}  // namespace a3::smtp
