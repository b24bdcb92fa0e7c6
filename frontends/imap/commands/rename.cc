// RENAME: RFC 9051 6.3.6 RENAME.
//
// rename = "RENAME" SP mailbox SP mailbox

#include "frontends/imap/mailbox_names.h"
#include "frontends/imap/session.h"

namespace a3::imap {

using projections::OutcomeCode;

void Session::cmd_rename(const std::string& tag, Parser& p) {
  p.sp();
  const std::string from = decode_name(p.mailbox());
  p.sp();
  std::string to = decode_name(p.mailbox());
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (!to.empty() && to.back() == '/') to.pop_back();
  auto box = find_mailbox(from);
  if (!box) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  if (to == "INBOX" || !valid_name(to)) return tagged(tag, "NO", "[CANNOT] Invalid target name");
  if (find_mailbox(to)) return tagged(tag, "NO", "[ALREADYEXISTS] Target mailbox exists");
  if (from == "INBOX") {
    // RFC 9051 6.3.6: INBOX's messages move to the new mailbox; INBOX stays.
    const schemas::Uuid id = schemas::Uuid::v7();
    auto created = execute(tag, schemas::MailboxCreated{id, to, ""});
    if (!created) return;
    if (!created->ok()) return tagged(tag, "NO", "[CANNOT] " + created->detail);
    std::vector<std::uint32_t> uids;
    for (const auto& m : store_.messages(box->id))
      uids.push_back(m.uid);
    if (!uids.empty()) {
      auto moved = execute(tag, schemas::MessagesMoved{box->id, uids, id});
      if (!moved) return;
    }
    return tagged(tag, "OK", "RENAME completed");
  }
  for (std::size_t slash = to.find('/'); slash != std::string::npos;
       slash = to.find('/', slash + 1)) {
    const std::string parent = to.substr(0, slash);
    if (find_mailbox(parent) || parent == from) continue;
    auto o = execute(tag, schemas::MailboxCreated{schemas::Uuid::v7(), parent, ""});
    if (!o) return;
  }
  auto o = execute(tag, schemas::MailboxRenamed{box->id, to});
  if (!o) return;
  if (o->code == OutcomeCode::mailbox_exists)
    return tagged(tag, "NO", "[ALREADYEXISTS] " + o->detail);
  if (!o->ok()) return tagged(tag, "NO", "[CANNOT] " + o->detail);
  if (sel_ && sel_->box.id == box->id) sel_->box.name = to;
  tagged(tag, "OK", "RENAME completed");
}

}  // namespace a3::imap
