// LOGOUT: RFC 9051 6.1.3 LOGOUT.
//
// command-any = "CAPABILITY" / "LOGOUT" / "NOOP" / x-command / id
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

void Session::cmd_logout(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("LOGOUT takes no arguments");
  untagged("BYE Logging out");
  tagged(tag, "OK", "LOGOUT completed");
  state_ = State::closed;
}

}  // namespace a3::imap
