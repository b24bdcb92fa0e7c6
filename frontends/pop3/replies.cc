#include "frontends/pop3/replies.h"

#include <fmt/format.h>

namespace a3::pop3 {

using projections::errc;

Reply reply_for(errc e) {
  switch (e) {
    case errc::not_found:
      return {"", "No such message"};
    case errc::in_use:
      return {"IN-USE", "The maildrop is in use by another POP3 session"};
    case errc::unavailable:
    case errc::pending:
    case errc::conflict:
    case errc::limit:
      return {"SYS/TEMP", "The mail store cannot do that now, try again later"};
    case errc::exists:
    case errc::over_quota:
    case errc::exceeds_quota:
    case errc::invalid:
      break;
  }
  return {"SYS/PERM", "The mail store cannot do that"};
}

std::string err_text(errc e) {
  const auto r = reply_for(e);
  if (r.code.empty()) return std::string(r.text);
  return fmt::format("[{}] {}", r.code, r.text);
}

}  // namespace a3::pop3
