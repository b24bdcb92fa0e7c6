// The state IMAP sessions share: \\Recent claims and the message indexes
// of the mailboxes in use (ADR 0007).
#include <algorithm>

#include "frontends/imap/session.h"

namespace a3::imap {

using projections::MailboxRecord;

std::uint32_t Shared::claim_recent(const schemas::Uuid& mailbox, std::uint32_t uidnext) {
  std::lock_guard lock(mu_);
  auto [it, fresh] = claimed_.try_emplace(mailbox, uidnext);
  // Unknown since start-up: nothing is recent (RFC 3501 leaves the server
  // free to say less rather than announce old mail as new).
  const std::uint32_t from = fresh ? uidnext : it->second;
  it->second = std::max(it->second, uidnext);
  return from;
}

const projections::MessageRecord* MessageIndex::find(std::uint32_t uid) const {
  const auto it = std::lower_bound(
      messages.begin(), messages.end(), uid,
      [](const projections::MessageRecord& m, std::uint32_t u) { return m.uid < u; });
  return it != messages.end() && it->uid == uid ? &*it : nullptr;
}

std::shared_ptr<const MessageIndex> Shared::messages(const projections::Store& store,
                                                     const MailboxRecord& box) {
  std::shared_ptr<const MessageIndex> cached;
  {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(box.id); it != cache_.end()) {
      it->second.used = ++clock_;
      cached = it->second.index;
    }
  }
  if (cached && cached->modseq >= box.highestmodseq) return cached;
  auto next = std::make_shared<MessageIndex>();
  if (cached) {
    // Only what changed since: the CONDSTORE index says which UIDs.
    *next = *cached;
    auto& v = next->messages;
    for (const auto& c : store.changes_since(box.id, cached->modseq)) {
      next->modseq = std::max(next->modseq, c.modseq);
      const auto it = std::lower_bound(
          v.begin(), v.end(), c.uid,
          [](const projections::MessageRecord& m, std::uint32_t u) { return m.uid < u; });
      const bool present = it != v.end() && it->uid == c.uid;
      auto record = c.expunged ? std::nullopt : store.message(box.id, c.uid);
      if (!record) {
        if (present) v.erase(it);
      } else if (present) {
        *it = std::move(*record);
      } else {
        v.insert(it, std::move(*record));
      }
    }
  } else {
    next->messages = store.messages(box.id);
  }
  next->modseq = std::max(next->modseq, box.highestmodseq);
  std::lock_guard lock(mu_);
  auto& slot = cache_[box.id];
  if (!slot.index || slot.index->modseq <= next->modseq) slot.index = next;
  slot.used = ++clock_;
  if (cache_.size() > kCachedMailboxes) {
    // The least recently used half goes.
    std::vector<std::uint64_t> uses;
    for (const auto& [id, c] : cache_)
      uses.push_back(c.used);
    std::nth_element(uses.begin(), uses.begin() + uses.size() / 2, uses.end());
    const std::uint64_t cut = uses[uses.size() / 2];
    std::erase_if(cache_, [&](const auto& kv) { return kv.second.used < cut; });
  }
  return next;
}

}  // namespace a3::imap
