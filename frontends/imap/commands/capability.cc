// CAPABILITY: RFC 9051 6.1.1 CAPABILITY.
//
// capability = "CAPABILITY" *(SP capability) SP "IMAP4rev2" *(SP capability)
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

void Session::cmd_capability(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("CAPABILITY takes no arguments");
  untagged("CAPABILITY " + capabilities());
  tagged(tag, "OK", "CAPABILITY completed");
}

}  // namespace a3::imap
