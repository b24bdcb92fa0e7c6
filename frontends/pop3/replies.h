// What POP3 answers for each error of the mail store: one table of RFC 2449
// / RFC 3206 response codes.
#pragma once

#include <string>
#include <string_view>

#include "projections/errors.h"

namespace a3::pop3 {

struct Reply {
  std::string_view code;  // the RESP-CODE, without brackets; empty for none
  std::string_view text;
};

Reply reply_for(projections::errc e);

// "[CODE] text", what follows "-ERR ".
std::string err_text(projections::errc e);

}  // namespace a3::pop3
