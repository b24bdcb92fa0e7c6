// UNSUBSCRIBE: RFC 9051 6.3.8.
//
// unsubscribe = "UNSUBSCRIBE" SP mailbox
#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_unsubscribe(const std::string& tag, Parser& p) {
  change_subscription(tag, p, false);
}

}  // namespace a3::imap
