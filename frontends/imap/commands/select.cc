// SELECT: RFC 9051 6.3.2 SELECT, 6.3.3 EXAMINE, RFC 7162 CONDSTORE/QRESYNC.
//
// select = "SELECT" SP mailbox [select-params]
#include <algorithm>

#include <fmt/format.h>

#include "frontends/imap/message_text.h"
#include "frontends/imap/session.h"

namespace a3::imap {

void Session::select_mailbox(const std::string& tag, Parser& p, bool read_only) {
  p.sp();
  const std::string name = decode_name(p.mailbox());
  bool condstore_param = false;
  struct Qresync {
    std::uint32_t uidvalidity = 0;
    std::uint64_t modseq = 0;
    std::optional<SequenceSet> known;
  };
  std::optional<Qresync> qr;
  if (p.consume(' ')) {
    p.expect('(');
    do {
      if (p.keyword("CONDSTORE")) {
        condstore_param = true;
      } else if (p.keyword("QRESYNC")) {
        if (!qresync_) throw ParseError("QRESYNC must be enabled first");
        Qresync q;
        p.sp();
        p.expect('(');
        q.uidvalidity = p.number();
        p.sp();
        q.modseq = p.number64();
        if (p.consume(' ')) {
          if (p.peek() != '(') q.known = p.sequence_set();
          if (p.consume(' ') || p.peek() == '(') {
            // the sequence match data only saves the server work: skipped
            p.expect('(');
            p.sequence_set();
            p.sp();
            p.sequence_set();
            p.expect(')');
          }
        }
        p.expect(')');
        qr = q;
      } else {
        throw ParseError("Unknown SELECT parameter");
      }
    } while (p.consume(' '));
    p.expect(')');
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  report_after_ = false;
  if (sel_) {
    sel_.reset();
    if (rev2_ || qresync_) untagged("OK [CLOSED] Previous mailbox closed");
  }
  auto box = find_mailbox(name);
  if (!box) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  if (condstore_param) condstore_ = true;
  Selected s;
  s.box = *box;
  s.read_only = read_only;
  s.modseq = box->highestmodseq;
  s.uidnext = box->uidnext;
  const auto index = shared_.messages(store_, *box);
  const auto& msgs = index->messages;
  std::uint32_t first_unseen = 0;
  for (const auto& m : msgs) {
    s.uids.push_back(m.uid);
    for (const auto& f : m.flags) {
      if (!f.starts_with("\\")) s.keywords.insert(f);
    }
    if (!first_unseen && !has_flag(m.flags, "\\Seen"))
      first_unseen = static_cast<std::uint32_t>(s.uids.size());
  }
  // EXAMINE does not take \Recent away from other sessions (RFC 3501 6.3.2).
  if (!read_only) s.recent.emplace_back(shared_.claim_recent(box->id, box->uidnext), box->uidnext);
  std::uint32_t recent = 0;
  for (auto u : s.uids)
    recent += s.is_recent(u) ? 1 : 0;
  untagged(fmt::format("{} EXISTS", s.uids.size()));
  if (!rev2_) untagged(fmt::format("{} RECENT", recent));
  sel_ = std::move(s);
  announce_flags();
  if (!rev2_ && first_unseen) untagged(fmt::format("OK [UNSEEN {}] First unseen", first_unseen));
  untagged(fmt::format("OK [UIDVALIDITY {}] UIDs valid", box->uidvalidity));
  untagged(fmt::format("OK [UIDNEXT {}] Predicted next UID", box->uidnext));
  untagged(
      fmt::format("OK [HIGHESTMODSEQ {}] Highest", std::max<std::uint64_t>(1, box->highestmodseq)));
  if (rev2_) untagged(fmt::format("LIST () \"/\" {}", encode_name(box->name)));
  if (qr && qr->uidvalidity == box->uidvalidity) {
    // RFC 7162 3.2.5.1: what the client missed since its MODSEQ.
    std::vector<std::uint32_t> vanished;
    for (const auto& [uid, modseq] : store_.expunged_since(box->id, qr->modseq)) {
      if (!qr->known || qr->known->contains(uid, box->uidnext - 1)) vanished.push_back(uid);
    }
    if (!vanished.empty()) untagged("VANISHED (EARLIER) " + SequenceSet::format(vanished));
    for (std::size_t i = 0; i < msgs.size(); ++i) {
      const auto& m = msgs[i];
      if (m.modseq <= qr->modseq) continue;
      if (qr->known && !qr->known->contains(m.uid, box->uidnext - 1)) continue;
      note_flags(m.flags);
      untagged(fmt::format("{} FETCH (UID {} FLAGS {} MODSEQ ({}))", i + 1, m.uid,
                           flag_text(m.flags, sel_->is_recent(m.uid) && !rev2_), m.modseq));
    }
  }
  tagged(tag, "OK", read_only ? "[READ-ONLY] EXAMINE completed" : "[READ-WRITE] SELECT completed");
}

void Session::cmd_select(const std::string& tag, Parser& p) {
  select_mailbox(tag, p, false);
}

}  // namespace a3::imap
