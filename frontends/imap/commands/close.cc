// CLOSE: RFC 9051 6.4.1 CLOSE, 6.4.2 UNSELECT.
//
// command-select = "CLOSE" / "UNSELECT" / ...
#include <algorithm>

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::close_mailbox(const std::string& tag, Parser& p, bool expunge) {
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (expunge && !sel_->read_only) {
    // RFC 9051 6.4.1: \Deleted messages go, silently.
    std::vector<std::uint32_t> uids;
    const auto index = current();
    for (const auto& m : index->messages) {
      if (std::find(m.flags.begin(), m.flags.end(), "\\Deleted") != m.flags.end())
        uids.push_back(m.uid);
    }
    if (!uids.empty()) {
      report_after_ = false;
      auto o = execute(tag, schemas::MessagesExpunged{sel_->box.id, uids});
      if (!o) return;
    }
  }
  sel_.reset();
  report_after_ = false;
  tagged(tag, "OK", expunge ? "CLOSE completed" : "UNSELECT completed");
}

void Session::cmd_close(const std::string& tag, Parser& p) {
  close_mailbox(tag, p, true);
}

}  // namespace a3::imap
