// What SMTP answers for each error of the mail store: one table of reply
// codes and RFC 3463 enhanced status codes, by the stage that met it.
#pragma once

#include <string>
#include <string_view>

#include "projections/errors.h"

namespace a3::smtp {

enum class Stage { rcpt, data, auth };

struct Reply {
  int code;
  std::string_view enhanced;
  std::string_view text;
};

Reply reply_for(projections::errc e, Stage stage);

// "452 4.2.2 text", without the CRLF.
std::string reply_line(projections::errc e, Stage stage);

}  // namespace a3::smtp
