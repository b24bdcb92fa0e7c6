#include "projections/mailbox_projector.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/network.h"
#include "projections/applier.h"
#include "projections/flags.h"
#include "projections/view/encoding.h"

namespace a3::projections {

namespace {

using namespace schemas;
using view::Family;

struct DefaultMailbox {
  const char* name;
  const char* special_use;
};
constexpr DefaultMailbox kDefaultMailboxes[] = {
    {"INBOX", ""},        {"Sent", "\\Sent"}, {"Drafts", "\\Drafts"},
    {"Trash", "\\Trash"}, {"Junk", "\\Junk"},
};

}  // namespace

namespace detail {

using ascii::iequals;

std::optional<view::AccountRecord> Applier::account() {
  auto v = b_.get(Family::accounts, e_.account);
  if (!v) return std::nullopt;
  return view::decode_account(*v);
}

// The mailbox `id` if it exists and belongs to the event's account.
std::optional<view::MailboxRecord> Applier::mailbox(const Uuid& id) {
  auto v = b_.get(Family::mailbox_state, view::id_key(id));
  if (!v) return std::nullopt;
  auto m = view::decode_mailbox(*v);
  if (!m || m->account != e_.account) return std::nullopt;
  return m;
}

void Applier::save(view::MailboxRecord& m) {
  m.highestmodseq = std::max(m.highestmodseq, modseq_);
  b_.put(Family::mailbox_state, view::id_key(m.id), view::encode(m));
  if (std::find(out_.mailboxes.begin(), out_.mailboxes.end(), m.id) == out_.mailboxes.end()) {
    out_.mailboxes.push_back(m.id);
  }
}

std::optional<view::MessageRecord> Applier::message(const Uuid& mailbox, std::uint32_t uid) {
  auto v = b_.get(Family::messages, view::message_key(mailbox, uid));
  if (!v) return std::nullopt;
  return view::decode_message(*v, uid);
}

void Applier::blob_ref(const view::Sha256& h, int delta, const std::string* raw,
                       const std::string* summary) {
  const std::string key = view::blob_key(h);
  auto v = b_.get(Family::blob_refs, key);
  std::uint64_t n = v && v->size() == 8 ? view::get_be64(*v) : 0;
  if (delta > 0) {
    if (n == 0 && raw) {
      b_.put(Family::blobs, key, *raw);
      // MIME is parsed once per body, here, never per FETCH.
      b_.put(Family::mime, key, summary ? *summary : encoded_mime_summary(*raw));
    }
    ++n;
  } else if (n > 0) {
    --n;
  }
  if (n == 0) {
    b_.del(Family::blob_refs, key);
    b_.del(Family::blobs, key);
    b_.del(Family::mime, key);
  } else {
    std::string c;
    view::put_be64(c, n);
    b_.put(Family::blob_refs, key, c);
  }
}

// Adds a message to `m` (which the caller saves): the next UID.
std::uint32_t Applier::add_message(view::MailboxRecord& m, view::MessageRecord msg) {
  msg.uid = m.uidnext++;
  msg.modseq = modseq_;
  m.messages += 1;
  m.size += msg.size;
  if (!has_flag(msg.flags, "\\Seen")) m.unseen += 1;
  b_.put(Family::messages, view::message_key(m.id, msg.uid), view::encode(msg));
  b_.put(Family::changes, view::change_key(m.id, msg.modseq, msg.uid), "");
  return msg.uid;
}

void Applier::remove_message(view::MailboxRecord& m, const view::MessageRecord& msg) {
  m.messages -= 1;
  m.size -= msg.size;
  if (!has_flag(msg.flags, "\\Seen")) m.unseen -= 1;
  b_.del(Family::messages, view::message_key(m.id, msg.uid));
  std::string seq;
  view::put_be64(seq, modseq_);
  b_.put(Family::expunged, view::message_key(m.id, msg.uid), seq);
  b_.del(Family::changes, view::change_key(m.id, msg.modseq, msg.uid));
  b_.put(Family::changes, view::change_key(m.id, modseq_, msg.uid), "x");
  blob_ref(msg.blob, -1);
}

void Applier::create_mailbox(const Uuid& id, const std::string& name,
                             const std::string& special_use) {
  view::MailboxRecord m;
  m.id = id;
  m.account = e_.account;
  m.name = name;
  m.special_use = special_use;
  // RFC 9051 2.3.1.1: a recreated name must get a new UIDVALIDITY; MODSEQs
  // only grow, so this one is larger than any earlier one of the account
  // (until the partition passes 2^32 events: docs/adr/0001).
  m.uidvalidity = static_cast<std::uint32_t>(modseq_) ? static_cast<std::uint32_t>(modseq_) : 1;
  b_.put(Family::mailboxes, view::named_key(e_.account, name), view::id_key(id));
  save(m);
}

void Applier::delete_mailbox_contents(view::MailboxRecord& m) {
  std::vector<view::MessageRecord> msgs;
  b_.scan(Family::messages, view::id_key(m.id), [&](std::string_view k, std::string_view v) {
    if (auto r = view::decode_message(v, view::uid_of_message_key(k))) msgs.push_back(*r);
    return true;
  });
  for (const auto& msg : msgs) {
    blob_ref(msg.blob, -1);
    b_.del(Family::messages, view::message_key(m.id, msg.uid));
  }
  std::vector<std::string> gone;
  b_.scan(Family::expunged, view::id_key(m.id), [&](std::string_view k, std::string_view) {
    gone.emplace_back(k);
    return true;
  });
  for (const auto& k : gone)
    b_.del(Family::expunged, k);
  gone.clear();
  b_.scan(Family::changes, view::id_key(m.id), [&](std::string_view k, std::string_view) {
    gone.emplace_back(k);
    return true;
  });
  for (const auto& k : gone)
    b_.del(Family::changes, k);
}

void Applier::remove_mailbox(view::MailboxRecord& m) {
  delete_mailbox_contents(m);
  b_.del(Family::mailboxes, view::named_key(m.account, m.name));
  b_.del(Family::mailbox_state, view::id_key(m.id));
  out_.mailboxes.push_back(m.id);
}

void Applier::apply(const AccountCreated& e) {
  if (account_exists()) return fail(OutcomeCode::account_exists, e_.account);
  view::AccountRecord a{e_.account, e.password_hash, {}, e.quota_bytes, e_.at_ms};
  for (const auto& addr : e.addresses)
    a.addresses.push_back(view::lowercase(addr));
  std::sort(a.addresses.begin(), a.addresses.end());
  a.addresses.erase(std::unique(a.addresses.begin(), a.addresses.end()), a.addresses.end());
  b_.put(Family::accounts, e_.account, view::encode(a));
  for (const auto& addr : a.addresses) {
    b_.put(Family::addresses, view::named_key(addr, e_.account), "");
  }
  for (const auto& d : kDefaultMailboxes) {
    create_mailbox(default_mailbox_id(e_.id, d.name), d.name, d.special_use);
    b_.put(Family::subscriptions, view::named_key(e_.account, d.name), "");
  }
}

void Applier::apply(const AccountPasswordChanged& e) {
  auto a = account();
  if (!a) return fail(OutcomeCode::unknown_account, e_.account);
  a->password_hash = e.password_hash;
  b_.put(Family::accounts, e_.account, view::encode(*a));
}

void Applier::apply(const AccountQuotaChanged& e) {
  auto a = account();
  if (!a) return fail(OutcomeCode::unknown_account, e_.account);
  a->quota_bytes = e.quota_bytes;
  b_.put(Family::accounts, e_.account, view::encode(*a));
}

void Applier::apply(const AccountAddressesChanged& e) {
  auto a = account();
  if (!a) return fail(OutcomeCode::unknown_account, e_.account);
  for (const auto& addr : a->addresses) {
    b_.del(Family::addresses, view::named_key(addr, e_.account));
  }
  a->addresses.clear();
  for (const auto& addr : e.addresses)
    a->addresses.push_back(view::lowercase(addr));
  std::sort(a->addresses.begin(), a->addresses.end());
  a->addresses.erase(std::unique(a->addresses.begin(), a->addresses.end()), a->addresses.end());
  for (const auto& addr : a->addresses) {
    b_.put(Family::addresses, view::named_key(addr, e_.account), "");
  }
  b_.put(Family::accounts, e_.account, view::encode(*a));
}

void Applier::apply(const AccountDeleted&) {
  auto a = account();
  if (!a) return fail(OutcomeCode::unknown_account, e_.account);
  for (const auto& addr : a->addresses) {
    b_.del(Family::addresses, view::named_key(addr, e_.account));
  }
  std::vector<view::MailboxRecord> boxes;
  b_.scan(Family::mailboxes, view::named_key(e_.account, ""),
          [&](std::string_view, std::string_view id) {
            Uuid u;
            if (id.size() == 16) std::copy(id.begin(), id.end(), u.bytes.begin());
            if (auto m = mailbox(u)) boxes.push_back(*m);
            return true;
          });
  for (auto& m : boxes)
    remove_mailbox(m);
  std::vector<std::string> subs;
  b_.scan(Family::subscriptions, view::named_key(e_.account, ""),
          [&](std::string_view k, std::string_view) {
            subs.emplace_back(k);
            return true;
          });
  for (const auto& k : subs)
    b_.del(Family::subscriptions, k);
  b_.del(Family::accounts, e_.account);
}

void Applier::apply(const MailboxCreated& e) {
  if (!account_exists()) return fail(OutcomeCode::unknown_account, e_.account);
  const std::string name = view::normalize_mailbox_name(e.name);
  if (name.empty()) return fail(OutcomeCode::invalid, "empty mailbox name");
  if (b_.get(Family::mailboxes, view::named_key(e_.account, name))) {
    return fail(OutcomeCode::mailbox_exists, name);
  }
  if (b_.get(Family::mailbox_state, view::id_key(e.mailbox_id))) {
    return fail(OutcomeCode::invalid, "mailbox id already in use");
  }
  create_mailbox(e.mailbox_id, name, e.special_use);
  if (auto m = mailbox(e.mailbox_id)) out_.uidvalidity = m->uidvalidity;
}

void Applier::apply(const MailboxRenamed& e) {
  if (!account_exists()) return fail(OutcomeCode::unknown_account, e_.account);
  auto m = mailbox(e.mailbox_id);
  if (!m) return fail(OutcomeCode::mailbox_missing, e.mailbox_id.str());
  const std::string to = view::normalize_mailbox_name(e.new_name);
  // Renaming INBOX moves its messages (RFC 9051 6.3.6): the frontend
  // expresses that as create + move, never as this event.
  if (m->name == "INBOX" || to == "INBOX" || to.empty()) {
    return fail(OutcomeCode::invalid, "INBOX cannot be renamed");
  }
  if (b_.get(Family::mailboxes, view::named_key(e_.account, to))) {
    return fail(OutcomeCode::mailbox_exists, to);
  }
  // Inferior names move along (RFC 9051 6.3.6): "a/b" renamed to "c"
  // renames "a/b/x" to "c/x".
  const std::string from = m->name;
  std::vector<std::pair<std::string, std::string>> renames{{from, to}};
  b_.scan(Family::mailboxes, view::named_key(e_.account, from + "/"),
          [&](std::string_view k, std::string_view) {
            const std::string old_name(k.substr(e_.account.size() + 1));
            renames.emplace_back(old_name, to + old_name.substr(from.size()));
            return true;
          });
  for (const auto& [old_name, new_name] : renames) {
    if (old_name != from && b_.get(Family::mailboxes, view::named_key(e_.account, new_name))) {
      return fail(OutcomeCode::mailbox_exists, new_name);
    }
  }
  for (const auto& [old_name, new_name] : renames) {
    auto id = b_.get(Family::mailboxes, view::named_key(e_.account, old_name));
    if (!id || id->size() != 16) continue;
    Uuid u;
    std::copy(id->begin(), id->end(), u.bytes.begin());
    auto box = mailbox(u);
    if (!box) continue;
    b_.del(Family::mailboxes, view::named_key(e_.account, old_name));
    b_.put(Family::mailboxes, view::named_key(e_.account, new_name), *id);
    box->name = new_name;
    save(*box);
  }
}

void Applier::apply(const MailboxDeleted& e) {
  if (!account_exists()) return fail(OutcomeCode::unknown_account, e_.account);
  auto m = mailbox(e.mailbox_id);
  if (!m) return fail(OutcomeCode::mailbox_missing, e.mailbox_id.str());
  if (m->name == "INBOX") return fail(OutcomeCode::invalid, "INBOX cannot be deleted");
  remove_mailbox(*m);
}

void Applier::apply(const MailboxSubscriptionChanged& e) {
  if (!account_exists()) return fail(OutcomeCode::unknown_account, e_.account);
  const std::string key = view::named_key(e_.account, view::normalize_mailbox_name(e.name));
  if (e.subscribed) {
    b_.put(Family::subscriptions, key, "");
  } else {
    b_.del(Family::subscriptions, key);
  }
}

void Applier::apply(const BodyChunk& e) {
  drop_stale_chunks();
  const std::string key = view::staging_key(partition_, e.started_ms, e.blob_id, e.seq);
  if (e_.at_ms - e.started_ms < kStagedLifetimeMs) b_.put(Family::staging, key, e.data);
}

// Chunks of this partition that started a day earlier (in event time)
// than the event being applied were abandoned (a client that went away, a
// retry that was a duplicate): they go. Decided from this partition's
// events alone, so a replay drops the same ones.
void Applier::drop_stale_chunks() {
  const std::string begin = view::staging_prefix(partition_, 0, Uuid{});
  const std::string end = view::staging_prefix(partition_, e_.at_ms - kStagedLifetimeMs, Uuid{});
  std::vector<std::string> stale;
  b_.scan_range(Family::staging, begin, end, [&](std::string_view k) { stale.emplace_back(k); });
  for (const auto& k : stale)
    b_.del(Family::staging, k);
}

// raw + the staged chunks, or nullopt (with the outcome set) if any is
// missing: the message is then not appended, never appended truncated.
std::optional<std::string> Applier::assemble(const std::string& raw, const StagedBody& st) {
  std::string whole = raw;
  // Trust the announced size only as far as the chunks could carry it.
  whole.reserve(raw.size() + std::min<std::uint64_t>(st.size, std::uint64_t{st.chunks} << 20));
  for (std::uint32_t seq = 0; seq < st.chunks; ++seq) {
    auto chunk =
        b_.get(Family::staging, view::staging_key(partition_, st.started_ms, st.blob_id, seq));
    if (!chunk) {
      fail(OutcomeCode::invalid, fmt::format("body {} lacks chunk {}", st.blob_id.str(), seq));
      return std::nullopt;
    }
    whole += *chunk;
  }
  if (whole.size() != raw.size() + st.size) {
    fail(OutcomeCode::invalid, fmt::format("body {} has {} bytes, not {}", st.blob_id.str(),
                                           whole.size() - raw.size(), st.size));
    return std::nullopt;
  }
  if (st.last_use) {
    for (std::uint32_t seq = 0; seq < st.chunks; ++seq)
      b_.del(Family::staging, view::staging_key(partition_, st.started_ms, st.blob_id, seq));
  }
  return whole;
}

void Applier::apply(const MessageAppended& e) {
  if (!account_exists()) return fail(OutcomeCode::unknown_account, e_.account);
  auto m = mailbox(e.mailbox_id);
  if (!m) return fail(OutcomeCode::mailbox_missing, e.mailbox_id.str());
  std::optional<std::string> assembled;
  if (e.staged) {
    drop_stale_chunks();
    assembled = assemble(e.raw, *e.staged);
    if (!assembled) return;
  }
  const std::string& raw = assembled ? *assembled : e.raw;
  view::MessageRecord msg;
  msg.flags = normalize_flags(e.flags);
  msg.size = raw.size();
  msg.internal_date_ms = e.internal_date_ms;
  msg.blob = view::sha256(raw);
  msg.event_id = e_.id;
  msg.appended_at_ms = e_.at_ms;
  blob_ref(msg.blob, +1, &raw, assembled ? nullptr : mime_summary_);
  out_.uids.push_back(add_message(*m, std::move(msg)));
  out_.uidvalidity = m->uidvalidity;
  save(*m);
}

void Applier::copy(const Uuid& from_id, const std::vector<std::uint32_t>& uids, const Uuid& to_id,
                   bool move) {
  if (!account_exists()) return fail(OutcomeCode::unknown_account, e_.account);
  auto from = mailbox(from_id);
  if (!from) return fail(OutcomeCode::mailbox_missing, from_id.str());
  auto to = mailbox(to_id);
  if (!to) return fail(OutcomeCode::mailbox_missing, to_id.str());
  // Within one mailbox (RFC 6851 allows MOVE there) both ends are one
  // record: a new UID, the old one expunged, one MODSEQ.
  const bool same = from->id == to->id;
  view::MailboxRecord& source = same ? *to : *from;
  const std::set<std::uint32_t> wanted(uids.begin(), uids.end());
  for (std::uint32_t uid : wanted) {
    auto msg = message(source.id, uid);
    if (!msg) continue;  // already expunged: COPY of a vanished message copies nothing
    view::MessageRecord copy = *msg;
    copy.appended_at_ms = e_.at_ms;  // saved into this mailbox now (RFC 8514 SAVEDATE)
    blob_ref(copy.blob, +1);
    out_.uids.push_back(add_message(*to, copy));
    out_.source_uids.push_back(uid);
    if (move) remove_message(source, *msg);
  }
  out_.uidvalidity = to->uidvalidity;
  if (out_.source_uids.empty()) return;  // nothing changed: no new MODSEQ
  save(*to);
  if (!same) save(*from);
}

void Applier::apply(const FlagsChanged& e) {
  if (!account_exists()) return fail(OutcomeCode::unknown_account, e_.account);
  auto m = mailbox(e.mailbox_id);
  if (!m) return fail(OutcomeCode::mailbox_missing, e.mailbox_id.str());
  const auto flags = normalize_flags(e.flags);
  const std::set<std::uint32_t> wanted(e.uids.begin(), e.uids.end());
  for (std::uint32_t uid : wanted) {
    auto msg = message(m->id, uid);
    if (!msg) continue;
    // RFC 7162 3.1.3: a message modified since UNCHANGEDSINCE is not changed.
    if (e.unchanged_since && msg->modseq > *e.unchanged_since) {
      out_.modified.push_back(uid);
      continue;
    }
    std::vector<std::string> next;
    switch (e.op) {
      case FlagOp::add:
        next = msg->flags;
        next.insert(next.end(), flags.begin(), flags.end());
        break;
      case FlagOp::remove:
        for (const auto& f : msg->flags) {
          if (!has_flag(flags, f)) next.push_back(f);
        }
        break;
      case FlagOp::replace:
        next = flags;
        break;
    }
    next = normalize_flags(next);
    if (next == msg->flags) continue;  // no change, no new MODSEQ
    const bool was_seen = has_flag(msg->flags, "\\Seen");
    const bool seen = has_flag(next, "\\Seen");
    if (was_seen && !seen) m->unseen += 1;
    if (!was_seen && seen) m->unseen -= 1;
    msg->flags = std::move(next);
    b_.del(Family::changes, view::change_key(m->id, msg->modseq, uid));
    msg->modseq = modseq_;
    b_.put(Family::messages, view::message_key(m->id, uid), view::encode(*msg));
    b_.put(Family::changes, view::change_key(m->id, msg->modseq, uid), "");
    out_.uids.push_back(uid);
  }
  if (!out_.uids.empty()) save(*m);
}

void Applier::apply(const MessagesExpunged& e) {
  if (!account_exists()) return fail(OutcomeCode::unknown_account, e_.account);
  auto m = mailbox(e.mailbox_id);
  if (!m) return fail(OutcomeCode::mailbox_missing, e.mailbox_id.str());
  const std::set<std::uint32_t> wanted(e.uids.begin(), e.uids.end());
  for (std::uint32_t uid : wanted) {
    auto msg = message(m->id, uid);
    if (!msg) continue;  // already gone: expunging twice is harmless
    remove_message(*m, *msg);
    out_.uids.push_back(uid);
  }
  if (!out_.uids.empty()) save(*m);
}

}  // namespace detail

const Uuid& bans_changed() {
  static const Uuid id = Uuid::derived("a3mailer: bans changed");
  return id;
}

Uuid default_mailbox_id(const Uuid& event_id, std::string_view name) {
  std::string seed = view::id_key(event_id);
  seed.append(name);
  const auto h = view::sha256(seed);
  Uuid u;
  std::copy(h.begin(), h.begin() + 16, u.bytes.begin());
  return u;
}

std::string encoded_mime_summary(std::string_view raw) {
  return view::encode(mime::parse(raw));
}

Outcome apply_event(view::Batch& batch, const Event& event, eventlog::Position pos,
                    const std::string* mime_summary) {
  const std::string id = view::id_key(event.id);
  Outcome o;
  if (auto seen = batch.get(Family::applied, id)) {
    o.code = OutcomeCode::duplicate;
    o.detail = "event " + event.id.str() + " was applied at " + *seen;
  } else {
    batch.put(Family::applied, id, pos.str());
    o = detail::Applier(batch, event, pos, mime_summary).run();
  }
  if (!o.ok()) {
    batch.put(Family::meta, view::outcome_key(pos.partition, pos.offset),
              fmt::format("{} {}", kind_name(event.body), o.str()));
  }
  return o;
}

}  // namespace a3::projections
