// CLOSE: RFC 9051 6.4.1 CLOSE, 6.4.2 UNSELECT.
//
// command-select = "CLOSE" / "UNSELECT" / ...
#include <algorithm>

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::close_mailbox(const std::string& tag, Parser& p, bool expunge) {
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  // Nothing is reported: the mailbox is no longer selected.
  report_after_ = false;
  auto done = [this, tag, expunge] {
    sel_.reset();
    tagged(tag, "OK", expunge ? "CLOSE completed" : "UNSELECT completed");
  };
  std::vector<std::uint32_t> uids;
  if (expunge && !sel_->read_only) {
    // RFC 9051 6.4.1: \Deleted messages go, silently.
    const auto index = current();
    for (const auto& m : index->messages) {
      if (std::find(m.flags.begin(), m.flags.end(), "\\Deleted") != m.flags.end())
        uids.push_back(m.uid);
    }
  }
  if (uids.empty()) return done();
  execute(tag, schemas::MessagesExpunged{sel_->box.id, uids},
          [done](const projections::Outcome&) { done(); });
}

void Session::cmd_close(const std::string& tag, Parser& p) {
  close_mailbox(tag, p, true);
}

}  // namespace a3::imap
