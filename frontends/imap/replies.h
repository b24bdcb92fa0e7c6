// What IMAP answers for each error of the mail store: one table, the RFC
// 5530 / RFC 9051 7.1 response code and a short text, used by every command.
#pragma once

#include <string>
#include <string_view>

#include "projections/errors.h"

namespace a3::imap {

struct Reply {
  std::string_view code;  // the response code, without brackets; empty for none
  std::string_view text;
};

Reply reply_for(projections::errc e);

// "[CODE] text" for a tagged NO.
std::string no_text(projections::errc e);

}  // namespace a3::imap
