// UNSELECT: RFC 9051 6.4.2 (RFC 3691): CLOSE without the expunge.
//
// command-select =/ "UNSELECT"
#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_unselect(const std::string& tag, Parser& p) {
  close_mailbox(tag, p, false);
}

}  // namespace a3::imap
