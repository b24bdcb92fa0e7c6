#include "frontends/smtp/replies.h"

#include <fmt/format.h>

namespace a3::smtp {

using projections::errc;

Reply reply_for(errc e, Stage stage) {
  switch (e) {
    case errc::not_found:
      return {550, "5.1.1", "No such user here"};
    case errc::over_quota:
      // RFC 3463 4.2.2: mailbox full, a temporary condition.
      return {452, "4.2.2", "Mailbox full, try again later"};
    case errc::exceeds_quota:
      // The message alone is larger than the mailbox may ever hold.
      return {552, "5.2.2", "Message larger than the recipient's quota"};
    case errc::in_use:
    case errc::conflict:
      return {450, "4.2.0", "Mailbox busy, try again later"};
    case errc::unavailable:
    case errc::pending:
      if (stage == Stage::auth) return {454, "4.7.0", "Temporary authentication failure"};
      return {451, "4.3.0", "Temporary failure of the mail store, try again later"};
    case errc::limit:
      return {451, "4.7.0", "Over a limit of the server, try again later"};
    case errc::exists:
    case errc::invalid:
      break;
  }
  return {554, "5.3.0", "The mail store cannot take this message"};
}

std::string reply_line(errc e, Stage stage) {
  const auto r = reply_for(e, stage);
  return fmt::format("{} {} {}", r.code, r.enhanced, r.text);
}

}  // namespace a3::smtp
