// STATUS: RFC 9051 6.3.11 STATUS.
//
// status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"
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

void Session::cmd_status(const std::string& tag, Parser& p) {
  p.sp();
  const std::string wire = p.mailbox();
  const std::string name = decode_name(wire);
  p.sp();
  p.expect('(');
  std::vector<std::string> items;
  do {
    items.push_back(ascii::upper(p.atom()));
  } while (p.consume(' '));
  p.expect(')');
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  auto box = find_mailbox(name);
  if (!box) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  untagged(fmt::format("STATUS {} ({})", encode_name(name), status_items(*box, items)));
  tagged(tag, "OK", "STATUS completed");
}

}  // namespace a3::imap
