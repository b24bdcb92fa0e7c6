#include "frontends/imap/replies.h"

#include <fmt/format.h>

namespace a3::imap {

using projections::errc;

Reply reply_for(errc e) {
  switch (e) {
    case errc::not_found:
      return {"NONEXISTENT", "No such mailbox or message"};
    case errc::exists:
      return {"ALREADYEXISTS", "It exists already"};
    case errc::in_use:
      return {"INUSE", "In use by another session, try again later"};
    case errc::over_quota:
      return {"OVERQUOTA", "The mailbox is full (quota)"};
    case errc::exceeds_quota:
      return {"OVERQUOTA", "The message is larger than the whole quota"};
    case errc::conflict:
      return {"INUSE", "Changed concurrently, try again"};
    case errc::unavailable:
      return {"UNAVAILABLE", "The mail store cannot take changes now, try again later"};
    case errc::pending:
      // Durable: repeating the command would do it twice.
      // No code: UNAVAILABLE would invite a retry.
      return {"", "Logged, but not visible yet: do not repeat it, check again shortly"};
    case errc::invalid:
      return {"CANNOT", "The mail store cannot do that"};
    case errc::limit:
      return {"LIMIT", "Over a limit of the server"};
  }
  return {"SERVERBUG", "Unknown error"};
}

std::string no_text(errc e) {
  const auto r = reply_for(e);
  if (r.code.empty()) return std::string(r.text);
  return fmt::format("[{}] {}", r.code, r.text);
}

}  // namespace a3::imap
