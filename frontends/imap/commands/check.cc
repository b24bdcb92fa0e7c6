// CHECK: RFC 3501 6.4.1 CHECK (IMAP4rev1; a NOOP here).
//
// command-select = "CHECK" / ...
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

void Session::cmd_check(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("CHECK takes no arguments");
  tagged(tag, "OK", "CHECK completed");
}

}  // namespace a3::imap
