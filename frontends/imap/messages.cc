// SELECT, the untagged reports of changes made elsewhere, and the commands
// that change messages: STORE, COPY, MOVE, EXPUNGE. FETCH is in fetch.cc,
// SEARCH in search.cc.
#include <algorithm>
#include <chrono>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/imap/message_text.h"
#include "frontends/imap/session.h"
#include "mime/mime.h"

namespace a3::imap {

using projections::MessageRecord;
using projections::OutcomeCode;

bool has_flag(const std::vector<std::string>& flags, std::string_view f) {
  for (const auto& x : flags) {
    if (ascii::iequals(x, f)) return true;
  }
  return false;
}

std::string flag_text(const std::vector<std::string>& flags, bool recent) {
  std::string out;
  for (const auto& f : flags) {
    if (!out.empty()) out += ' ';
    out += f;
  }
  if (recent) out += out.empty() ? "\\Recent" : " \\Recent";
  return "(" + out + ")";
}

// ---- selection and change reports ----

// FLAGS and PERMANENTFLAGS with the keywords in use (RFC 9051 7.3.5).
void Session::announce_flags() {
  std::string kw;
  for (const auto& k : sel_->keywords)
    kw += " " + k;
  untagged("FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft" + kw + ")");
  untagged(sel_->read_only ? "OK [PERMANENTFLAGS ()] Read-only mailbox"
                           : "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft" +
                                 kw + " \\*)] Flags permitted");
}

// Before a FETCH shows flags: a keyword the client has not been told of
// comes with a new FLAGS response first.
void Session::note_flags(const std::vector<std::string>& flags) {
  bool fresh = false;
  for (const auto& f : flags) {
    if (!f.starts_with("\\")) fresh = sel_->keywords.insert(f).second || fresh;
  }
  if (fresh) announce_flags();
}

// RFC 7162 3.1: the first CONDSTORE-enabling command while a mailbox is
// selected reports its HIGHESTMODSEQ.
void Session::enable_condstore() {
  if (condstore_) return;
  condstore_ = true;
  if (sel_) {
    untagged(fmt::format("OK [HIGHESTMODSEQ {}] Highest",
                         std::max<std::uint64_t>(1, sel_->box.highestmodseq)));
  }
}

void Session::cmd_select(const std::string& tag, Parser& p, bool read_only) {
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

std::uint32_t Session::seq_of(std::uint32_t uid) const {
  const auto it = std::lower_bound(sel_->uids.begin(), sel_->uids.end(), uid);
  if (it == sel_->uids.end() || *it != uid) return 0;
  return static_cast<std::uint32_t>(it - sel_->uids.begin()) + 1;
}

void Session::expunged(const std::vector<std::uint32_t>& uids) {
  std::vector<std::uint32_t> gone;
  for (auto u : uids) {
    if (seq_of(u)) gone.push_back(u);
  }
  if (gone.empty()) return;
  std::sort(gone.begin(), gone.end());
  if (qresync_) {
    untagged("VANISHED " + SequenceSet::format(gone));
  } else {
    // Highest first: the lower sequence numbers stay valid meanwhile.
    for (auto it = gone.rbegin(); it != gone.rend(); ++it)
      untagged(fmt::format("{} EXPUNGE", seq_of(*it)));
  }
  std::vector<std::uint32_t> keep;
  std::set_difference(sel_->uids.begin(), sel_->uids.end(), gone.begin(), gone.end(),
                      std::back_inserter(keep));
  sel_->uids = std::move(keep);
}

void Session::report_changes(bool allow_expunge) {
  if (!sel_) return;
  const auto box = store_.mailbox(sel_->box.id);
  if (!box) {
    untagged("BYE The selected mailbox was deleted");
    sel_.reset();
    state_ = State::closed;
    return;
  }
  sel_->box = *box;
  if (box->highestmodseq == sel_->modseq && box->uidnext == sel_->uidnext &&
      !(sel_->expunges_pending && allow_expunge))
    return;
  const auto index = shared_.messages(store_, *box);
  const auto& msgs = index->messages;
  std::vector<std::uint32_t> now;
  now.reserve(msgs.size());
  for (const auto& m : msgs)
    now.push_back(m.uid);
  // Expunges are found by comparing UIDs; held back now, they wait for the
  // next command that may report them.
  {
    std::vector<std::uint32_t> gone;
    std::set_difference(sel_->uids.begin(), sel_->uids.end(), now.begin(), now.end(),
                        std::back_inserter(gone));
    if (allow_expunge && !gone.empty()) expunged(gone);
    sel_->expunges_pending = !allow_expunge && !gone.empty();
  }
  const std::uint32_t last_known = sel_->uids.empty() ? 0 : sel_->uids.back();
  const std::size_t before = sel_->uids.size();
  for (const auto& m : msgs) {
    if (m.uid > last_known) sel_->uids.push_back(m.uid);
  }
  // Flag changes by others, for messages the client already knows.
  for (const auto& m : msgs) {
    if (m.modseq <= sel_->modseq || sel_->own_modseqs.contains(m.modseq)) continue;
    const std::uint32_t seq = seq_of(m.uid);
    if (!seq || seq > before) continue;
    note_flags(m.flags);
    std::string line = fmt::format("{} FETCH (UID {} FLAGS {}", seq, m.uid,
                                   flag_text(m.flags, !rev2_ && sel_->is_recent(m.uid)));
    if (condstore_) line += fmt::format(" MODSEQ ({})", m.modseq);
    untagged(line + ")");
  }
  if (sel_->uids.size() != before) {
    untagged(fmt::format("{} EXISTS", sel_->uids.size()));
    if (!rev2_) {
      if (!sel_->read_only) {
        const std::uint32_t from = shared_.claim_recent(box->id, box->uidnext);
        if (from < box->uidnext) {
          if (!sel_->recent.empty() && sel_->recent.back().second == from) {
            sel_->recent.back().second = box->uidnext;
          } else {
            sel_->recent.emplace_back(from, box->uidnext);
          }
        }
      }
      std::uint32_t recent = 0;
      for (auto u : sel_->uids)
        recent += sel_->is_recent(u) ? 1 : 0;
      untagged(fmt::format("{} RECENT", recent));
    }
  }
  sel_->modseq = box->highestmodseq;
  sel_->own_modseqs.clear();
  sel_->uidnext = box->uidnext;
}

std::vector<std::uint32_t> Session::resolve(const SequenceSet& set, bool uid) const {
  std::vector<std::uint32_t> out;
  if (set.saved) {
    for (auto u : sel_->saved) {
      if (seq_of(u)) out.push_back(u);
    }
    return out;
  }
  const auto& uids = sel_->uids;
  if (uid) {
    const std::uint32_t star = uids.empty() ? 0 : uids.back();
    for (auto u : uids) {
      if (set.contains(u, star)) out.push_back(u);
    }
    // RFC 9051 6.4.8: "n:*" always includes the highest UID, even if n is
    // higher than it.
    if (!uids.empty() && out.empty()) {
      for (const auto& r : set.ranges) {
        if ((r.first == 0 || r.last == 0) && !uids.empty()) out.push_back(uids.back());
      }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }
  const auto n = static_cast<std::uint32_t>(uids.size());
  for (const auto& r : set.ranges) {
    if ((r.first != 0 && r.first > n) || (r.last != 0 && r.last > n) ||
        (n == 0 && (r.first == 0 || r.last == 0)))
      throw ParseError("Invalid message sequence number");
  }
  for (std::uint32_t seq = 1; seq <= n; ++seq) {
    if (set.contains(seq, n)) out.push_back(uids[seq - 1]);
  }
  return out;
}

// ---- STORE ----

void Session::cmd_store(const std::string& tag, Parser& p, bool uid) {
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
  const auto uids = resolve(set, uid);
  std::vector<std::uint32_t> modified;
  if (!uids.empty()) {
    auto o = execute(tag, schemas::FlagsChanged{sel_->box.id, uids, op, clean, unchanged_since});
    if (!o) return;
    if (!o->ok() && o->code != OutcomeCode::mailbox_missing)
      return tagged(tag, "NO", "[CANNOT] STORE failed: " + o->detail);
    modified = o->modified;
    // A silent STORE told the client nothing: changes others made to these
    // messages before it must still be reported (RFC 9051 6.4.6).
    if (silent) sel_->own_modseqs.erase(o->modseq);
    const std::set<std::uint32_t> changed(o->uids.begin(), o->uids.end());
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

// ---- COPY / MOVE ----

void Session::cmd_copy(const std::string& tag, Parser& p, bool uid, bool move) {
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
  std::optional<projections::Outcome> o;
  if (move) {
    o = execute(tag, schemas::MessagesMoved{sel_->box.id, uids, target->id});
  } else {
    o = execute(tag, schemas::MessagesCopied{sel_->box.id, uids, target->id});
  }
  if (!o) return;
  if (o->code == OutcomeCode::mailbox_missing)
    return tagged(tag, "NO", "[TRYCREATE] No such mailbox");
  if (!o->ok()) return tagged(tag, "NO", "[CANNOT] " + o->detail);
  std::string copyuid;
  if (!o->uids.empty()) {
    copyuid = fmt::format("[COPYUID {} {} {}] ", o->uidvalidity,
                          SequenceSet::format(o->source_uids), SequenceSet::format(o->uids));
    // The UID sets must pair up in order: format() sorts, and source UIDs
    // were applied in ascending order, so the new UIDs ascend with them.
  }
  if (!move) return tagged(tag, "OK", copyuid + "COPY completed");
  if (!copyuid.empty()) untagged("OK " + copyuid + "Moved");
  expunged(o->source_uids);
  tagged(tag, "OK", "MOVE completed");
}

// ---- EXPUNGE ----

void Session::cmd_expunge(const std::string& tag, Parser& p, bool uid) {
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
  if (!uids.empty()) {
    auto o = execute(tag, schemas::MessagesExpunged{sel_->box.id, uids});
    if (!o) return;
    expunged(o->uids);
  }
  tagged(tag, "OK", "EXPUNGE completed");
}

}  // namespace a3::imap
