// DELETE: RFC 9051 6.3.5 DELETE.
//
// delete = "DELETE" SP mailbox
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

void Session::cmd_delete(const std::string& tag, Parser& p) {
  p.sp();
  const std::string name = decode_name(p.mailbox());
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (name == "INBOX") return tagged(tag, "NO", "[CANNOT] INBOX cannot be deleted");
  auto box = find_mailbox(name);
  if (!box) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  if (sel_ && sel_->box.id == box->id) sel_.reset();
  auto o = execute(tag, schemas::MailboxDeleted{box->id});
  if (!o) return;
  if (!o->ok()) return tagged(tag, "NO", "[NONEXISTENT] " + o->detail);
  tagged(tag, "OK", "DELETE completed");
}

}  // namespace a3::imap
