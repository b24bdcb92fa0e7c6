// What the commands on messages share: FLAGS announcements, the untagged
// reports of changes made elsewhere (RFC 9051 7.5.1), sequence numbers and
// sequence sets. The commands are in commands/.
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

// ---- COPY / MOVE ----

// ---- EXPUNGE ----

}  // namespace a3::imap
