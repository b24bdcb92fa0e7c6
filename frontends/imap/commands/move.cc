// MOVE: RFC 9051 6.4.8 (RFC 6851), and UID MOVE.
//
// move = "MOVE" SP sequence-set SP mailbox
#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_move(const std::string& tag, Parser& p) {
  copy_messages(tag, p, false, true);
}

void Session::cmd_uid_move(const std::string& tag, Parser& p) {
  copy_messages(tag, p, true, true);
}

}  // namespace a3::imap
