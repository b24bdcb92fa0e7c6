// STORE: RFC 9051 6.4.6 STORE, RFC 7162 3.1.3 UNCHANGEDSINCE.
//
// store = "STORE" SP sequence-set SP store-att-flags
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/imap/message_text.h"
#include "frontends/imap/session.h"

namespace a3::imap {

using projections::OutcomeCode;

void Session::store_flags(const std::string& tag, Parser& p, bool uid) {
  p.sp();
  const SequenceSet set = p.sequence_set();
  p.sp();
  std::optional<std::uint64_t> unchanged_since;
  if (p.consume('(')) {
    if (!p.keyword("UNCHANGEDSINCE")) throw ParseError("Unknown STORE modifier");
    p.sp();
    unchanged_since = p.number64();
    p.expect(')');
    p.sp();
    enable_condstore();
  }
  schemas::FlagOp op = schemas::FlagOp::replace;
  if (p.consume('+')) {
    op = schemas::FlagOp::add;
  } else if (p.consume('-')) {
    op = schemas::FlagOp::remove;
  }
  std::string item = ascii::upper(p.atom());
  bool silent = false;
  if (item == "FLAGS.SILENT") {
    silent = true;
  } else if (item != "FLAGS") {
    throw ParseError("Expected FLAGS");
  }
  p.sp();
  std::vector<std::string> flags;
  if (p.peek() == '(') {
    flags = p.flag_list();
  } else {
    do {
      flags.push_back(p.flag());
    } while (p.consume(' '));
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  static const char* system[] = {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"};
  std::vector<std::string> clean;
  for (const auto& f : flags) {
    if (ascii::iequals(f, "\\Recent")) continue;  // session state, never stored
    if (f.starts_with("\\")) {
      bool known = false;
      for (const char* s : system)
        known = known || ascii::iequals(f, s);
      if (!known) throw ParseError("Unknown system flag " + f);
    }
    clean.push_back(f);
  }
  if (sel_->read_only) return tagged(tag, "NO", "[READ-ONLY] Mailbox is read-only");
  auto uids = resolve(set, uid);
  if (uids.empty()) return tagged(tag, "OK", "STORE completed");
  schemas::FlagsChanged change{sel_->box.id, uids, op, clean, unchanged_since};
  execute(tag, std::move(change),
          [this, tag, uid, silent, uids = std::move(uids)](const projections::Outcome& o) {
            answer_store(tag, o, uids, uid, silent);
          });
}

void Session::answer_store(const std::string& tag, const projections::Outcome& o,
                           const std::vector<std::uint32_t>& uids, bool uid, bool silent) {
  if (!o.ok() && o.code != OutcomeCode::mailbox_missing)
    return tagged(tag, "NO", "[CANNOT] STORE failed: " + o.detail);
  const std::vector<std::uint32_t>& modified = o.modified;
  // A silent STORE tells the client nothing of its own change (RFC 9051
  // 6.4.6), and the change stays ours: the next poll does not report it
  // either. With CONDSTORE its new MODSEQ is still sent (RFC 7162 3.1.3).
  const std::set<std::uint32_t> changed(o.uids.begin(), o.uids.end());
  const std::set<std::uint32_t> refused(modified.begin(), modified.end());
  const auto index = current();
  for (const auto& m : index->messages) {
    if (!std::binary_search(uids.begin(), uids.end(), m.uid) || refused.contains(m.uid)) continue;
    const std::uint32_t seq = seq_of(m.uid);
    if (!seq) continue;
    if (silent && !(condstore_ && changed.contains(m.uid))) continue;
    if (!silent) note_flags(m.flags);
    std::string line = fmt::format("{} FETCH (", seq);
    std::string inner;
    if (uid || condstore_) inner = fmt::format("UID {}", m.uid);
    if (!silent)
      inner += (inner.empty() ? "" : " ") +
               ("FLAGS " + flag_text(m.flags, !rev2_ && sel_->is_recent(m.uid)));
    if (condstore_) inner += fmt::format(" MODSEQ ({})", m.modseq);
    untagged(line + inner + ")");
  }
  if (!modified.empty()) {
    std::vector<std::uint32_t> shown;
    for (auto u : modified)
      if (const std::uint32_t n = uid ? u : seq_of(u)) shown.push_back(n);
    return tagged(
        tag, "OK",
        fmt::format("[MODIFIED {}] Conditional STORE failed", SequenceSet::format(shown)));
  }
  tagged(tag, "OK", "STORE completed");
}

void Session::cmd_store(const std::string& tag, Parser& p) {
  store_flags(tag, p, false);
}

void Session::cmd_uid_store(const std::string& tag, Parser& p) {
  store_flags(tag, p, true);
}

}  // namespace a3::imap
