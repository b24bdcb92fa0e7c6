// EXPUNGE: RFC 9051 6.4.3 EXPUNGE, RFC 4315 UID EXPUNGE.
//
// expunge = "EXPUNGE"
#include <algorithm>

#include "frontends/imap/message_text.h"
#include "frontends/imap/session.h"

namespace a3::imap {

void Session::expunge_messages(const std::string& tag, Parser& p, bool uid) {
  std::optional<SequenceSet> set;
  if (uid) {
    p.sp();
    set = p.sequence_set();
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (sel_->read_only) return tagged(tag, "NO", "[READ-ONLY] Mailbox is read-only");
  std::vector<std::uint32_t> within;
  if (set) within = resolve(*set, true);
  std::vector<std::uint32_t> uids;
  const auto index = current();
  for (const auto& m : index->messages) {
    if (!has_flag(m.flags, "\\Deleted") || !seq_of(m.uid)) continue;
    if (set && !std::binary_search(within.begin(), within.end(), m.uid)) continue;
    uids.push_back(m.uid);
  }
  if (uids.empty()) return tagged(tag, "OK", "EXPUNGE completed");
  execute(tag, schemas::MessagesExpunged{sel_->box.id, uids},
          [this, tag](const projections::Outcome& o) {
            expunged(o.uids);
            tagged(tag, "OK", "EXPUNGE completed");
          });
}

void Session::cmd_expunge(const std::string& tag, Parser& p) {
  expunge_messages(tag, p, false);
}

void Session::cmd_uid_expunge(const std::string& tag, Parser& p) {
  expunge_messages(tag, p, true);
}

}  // namespace a3::imap
