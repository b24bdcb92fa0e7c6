// LSUB: RFC 3501 6.3.9 (IMAP4rev1 only; LIST (SUBSCRIBED) in IMAP4rev2).
//
// lsub = "LSUB" SP mailbox SP list-mailbox
#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_lsub(const std::string& tag, Parser& p) {
  list_mailboxes(tag, p, true);
}

}  // namespace a3::imap
