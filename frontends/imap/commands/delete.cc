// DELETE: RFC 9051 6.3.5 DELETE.
//
// delete = "DELETE" SP mailbox

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_delete(const std::string& tag, Parser& p) {
  p.sp();
  const std::string name = decode_name(p.mailbox());
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (name == "INBOX") return tagged(tag, "NO", "[CANNOT] INBOX cannot be deleted");
  auto box = find_mailbox(name);
  if (!box) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  if (sel_ && sel_->box.id == box->id) sel_.reset();
  execute(tag, schemas::MailboxDeleted{box->id}, [this, tag](const projections::Outcome& o) {
    if (!o.ok()) return tagged(tag, "NO", "[NONEXISTENT] " + o.detail);
    tagged(tag, "OK", "DELETE completed");
  });
}

}  // namespace a3::imap
