// COPY: RFC 9051 6.4.7 COPY, 6.4.8 MOVE (RFC 6851), RFC 4315 COPYUID.
//
// copy = "COPY" SP sequence-set SP mailbox

#include <fmt/format.h>

#include "frontends/imap/session.h"

namespace a3::imap {

using projections::OutcomeCode;

void Session::copy_messages(const std::string& tag, Parser& p, bool uid, bool move) {
  p.sp();
  const SequenceSet set = p.sequence_set();
  p.sp();
  const std::string name = decode_name(p.mailbox());
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  const auto uids = resolve(set, uid);
  auto target = find_mailbox(name);
  if (!target) return tagged(tag, "NO", "[TRYCREATE] No such mailbox");
  if (move && sel_->read_only) return tagged(tag, "NO", "[READ-ONLY] Mailbox is read-only");
  if (uids.empty()) return tagged(tag, "OK", move ? "MOVE completed" : "COPY completed");
  // MOVE within one mailbox is allowed too (RFC 6851): one event either way.
  schemas::Body event;
  if (move) {
    event = schemas::MessagesMoved{sel_->box.id, uids, target->id};
  } else {
    event = schemas::MessagesCopied{sel_->box.id, uids, target->id};
  }
  execute(tag, std::move(event), [this, tag, move](const projections::Outcome& o) {
    if (o.code == OutcomeCode::mailbox_missing)
      return tagged(tag, "NO", "[TRYCREATE] No such mailbox");
    if (!o.ok()) return tagged(tag, "NO", "[CANNOT] " + o.detail);
    std::string copyuid;
    if (!o.uids.empty()) {
      copyuid = fmt::format("[COPYUID {} {} {}] ", o.uidvalidity,
                            SequenceSet::format(o.source_uids), SequenceSet::format(o.uids));
      // The UID sets must pair up in order: format() sorts, and source UIDs
      // were applied in ascending order, so the new UIDs ascend with them.
    }
    if (!move) return tagged(tag, "OK", copyuid + "COPY completed");
    if (!copyuid.empty()) untagged("OK " + copyuid + "Moved");
    expunged(o.source_uids);
    tagged(tag, "OK", "MOVE completed");
  });
}

void Session::cmd_copy(const std::string& tag, Parser& p) {
  copy_messages(tag, p, false, false);
}

void Session::cmd_uid_copy(const std::string& tag, Parser& p) {
  copy_messages(tag, p, true, false);
}

}  // namespace a3::imap
