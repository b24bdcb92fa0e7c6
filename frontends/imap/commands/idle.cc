// IDLE: RFC 9051 6.3.13 IDLE (RFC 2177).
//
// idle = "IDLE" CRLF "DONE"
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

void Session::cmd_idle(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("IDLE takes no arguments");
  if (sel_) report_changes(true);
  out_ += "+ idling\r\n";
  idling_ = true;
  idle_tag_ = tag;
}

}  // namespace a3::imap
