// STARTTLS: RFC 9051 6.2.1 STARTTLS.
//
// command-nonauth =/ "STARTTLS"
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/clock.h"
#include "frontends/imap/mailbox_names.h"
#include "frontends/imap/message_text.h"
#include "frontends/imap/replies.h"
#include "frontends/imap/session.h"
#include "frontends/net/sasl.h"
#include "frontends/net/staged.h"
#include "mime/mime.h"

namespace a3::imap {

using projections::MailboxRecord;
using projections::MessageRecord;
using projections::OutcomeCode;

void Session::cmd_starttls(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("STARTTLS takes no arguments");
  if (!info_.tls_available || info_.tls_active) return tagged(tag, "BAD", "TLS not available");
  tagged(tag, "OK", "Begin TLS negotiation now");
  state_ = State::tls_pending;
}

}  // namespace a3::imap
