// EXAMINE: RFC 9051 6.3.3, SELECT read-only.
//
// examine = "EXAMINE" SP mailbox [select-params]
#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_examine(const std::string& tag, Parser& p) {
  select_mailbox(tag, p, true);
}

}  // namespace a3::imap
