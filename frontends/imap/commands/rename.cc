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
  std::vector<schemas::Body> events;
  if (from == "INBOX") {
    // RFC 9051 6.3.6: INBOX's messages move to the new mailbox; INBOX
    // stays. One write: the new mailbox, then the move into it (applied
    // after the creation; if the creation fails, the move finds no target
    // and moves nothing).
    const schemas::Uuid id = schemas::Uuid::v7();
    events.emplace_back(schemas::MailboxCreated{id, to, ""});
    std::vector<std::uint32_t> uids;
    for (const auto& m : store_.messages(box->id))
      uids.push_back(m.uid);
    if (!uids.empty()) events.emplace_back(schemas::MessagesMoved{box->id, uids, id});
    return execute(tag, std::move(events), [this, tag](const Outcomes& outcomes) {
      const auto& created = outcomes.front();
      if (!created.ok()) return tagged(tag, "NO", "[CANNOT] " + created.detail);
      tagged(tag, "OK", "RENAME completed");
    });
  }
  // Superior names are created as needed, in the same write.
  for (std::size_t slash = to.find('/'); slash != std::string::npos;
       slash = to.find('/', slash + 1)) {
    const std::string parent = to.substr(0, slash);
    if (find_mailbox(parent) || parent == from) continue;
    events.emplace_back(schemas::MailboxCreated{schemas::Uuid::v7(), parent, ""});
  }
  events.emplace_back(schemas::MailboxRenamed{box->id, to});
  execute(tag, std::move(events), [this, tag, id = box->id, to](const Outcomes& outcomes) {
    const auto& o = outcomes.back();
    if (o.code == OutcomeCode::mailbox_exists)
      return tagged(tag, "NO", "[ALREADYEXISTS] " + o.detail);
    if (!o.ok()) return tagged(tag, "NO", "[CANNOT] " + o.detail);
    if (sel_ && sel_->box.id == id) sel_->box.name = to;
    tagged(tag, "OK", "RENAME completed");
  });
}

}  // namespace a3::imap
