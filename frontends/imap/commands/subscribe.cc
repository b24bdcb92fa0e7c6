// SUBSCRIBE: RFC 9051 6.3.7 SUBSCRIBE, 6.3.8 UNSUBSCRIBE.
//
// subscribe = "SUBSCRIBE" SP mailbox

#include "frontends/imap/mailbox_names.h"
#include "frontends/imap/session.h"

namespace a3::imap {

void Session::change_subscription(const std::string& tag, Parser& p, bool subscribe) {
  p.sp();
  const std::string name = decode_name(p.mailbox());
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (!valid_name(name) && name != "INBOX") return tagged(tag, "NO", "[CANNOT] Invalid name");
  execute(tag, schemas::MailboxSubscriptionChanged{name, subscribe},
          [this, tag, subscribe](const projections::Outcome&) {
            tagged(tag, "OK", subscribe ? "SUBSCRIBE completed" : "UNSUBSCRIBE completed");
          });
}

void Session::cmd_subscribe(const std::string& tag, Parser& p) {
  change_subscription(tag, p, true);
}

}  // namespace a3::imap
