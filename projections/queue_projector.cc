// The mailbox projection's outbound queue (docs/outbound.md) and bans
// (ADR 0014): the Applier's events of the delivery worker and the guard.
#include <algorithm>

#include <fmt/format.h>

#include "common/network.h"
#include "projections/applier.h"
#include "projections/mailbox_projector.h"

namespace a3::projections::detail {

std::optional<view::QueueRecord> Applier::queued(const Uuid& id) {
  auto v = b_.get(Family::queue, view::id_key(id));
  if (!v) return std::nullopt;
  auto q = view::decode_queue(*v);
  if (!q || q->account != e_.account) return std::nullopt;
  return q;
}

void Applier::save(const view::QueueRecord& q) {
  b_.put(Family::queue, view::id_key(q.id), view::encode(q));
  out_.mailboxes.push_back(kOutboundQueue);  // the delivery worker wakes
}

// Moves the entry's place in the due index.
void Applier::reschedule(view::QueueRecord& q, std::int64_t at_ms) {
  b_.del(Family::queue_due, view::due_key(q.next_attempt_ms, q.id));
  q.next_attempt_ms = at_ms;
  b_.put(Family::queue_due, view::due_key(q.next_attempt_ms, q.id), q.account);
}

// Once no recipient is pending the entry leaves the queue with its body.
void Applier::save_or_finish(view::QueueRecord& q) {
  if (!q.pending().empty()) return save(q);
  b_.del(Family::queue, view::id_key(q.id));
  b_.del(Family::queue_due, view::due_key(q.next_attempt_ms, q.id));
  blob_ref(q.blob, -1);
  out_.mailboxes.push_back(kOutboundQueue);
}

// Sets the state and reply of the named recipients that are still pending.
void Applier::settle(view::QueueRecord& q, const std::vector<std::string>& who, Rcpt state,
                     const std::string& reply) {
  for (auto& r : q.recipients) {
    if (r.state != Rcpt::pending) continue;
    if (std::find(who.begin(), who.end(), r.address) == who.end()) continue;
    r.state = state;
    r.reply = reply;
  }
}

void Applier::apply(const OutboundQueued& e) {
  if (b_.get(Family::queue, view::id_key(e.queue_id)))
    return fail(OutcomeCode::invalid, "queue id " + e.queue_id.str() + " is in use");
  std::optional<std::string> assembled;
  if (e.staged) {
    drop_stale_chunks();
    assembled = assemble(e.raw, *e.staged);
    if (!assembled) return;
  }
  const std::string& raw = assembled ? *assembled : e.raw;
  view::QueueRecord q;
  q.id = e.queue_id;
  q.account = e_.account;
  q.mail_from = e.mail_from;
  for (const auto& r : e.recipients)
    q.recipients.push_back({r.address, r.notify, r.orcpt, {}, {}});
  q.blob = view::sha256(raw);
  q.size = raw.size();
  q.queued_ms = e_.at_ms;
  q.expires_ms = e.expires_ms;
  q.envid = e.envid;
  q.ret_headers = e.ret_headers;
  q.smtputf8 = e.smtputf8;
  q.eightbit = e.eightbit;
  blob_ref(q.blob, +1, &raw);
  q.next_attempt_ms = e_.at_ms;  // due at once
  b_.put(Family::queue_due, view::due_key(q.next_attempt_ms, q.id), q.account);
  save(q);
}

// The entry an event names, changed by `change`; an unknown id makes the
// event a no-op with its reason.
template <typename F>
void Applier::change_entry(const Uuid& id, F&& change) {
  auto q = queued(id);
  if (!q) return fail(OutcomeCode::invalid, "not queued: " + id.str());
  change(*q);
}

void Applier::apply(const DeliveryAttempted& e) {
  change_entry(e.queue_id, [&](view::QueueRecord& q) {
    q.attempts = std::max(q.attempts, e.attempt);
    q.last_host = e.host;
    save(q);
  });
}

void Applier::apply(const Delivered& e) {
  change_entry(e.queue_id, [&](view::QueueRecord& q) {
    settle(q, e.recipients, Rcpt::delivered, e.reply);
    q.last_host = e.host;
    save_or_finish(q);
  });
}

void Applier::apply(const Deferred& e) {
  change_entry(e.queue_id, [&](view::QueueRecord& q) {
    settle(q, e.recipients, Rcpt::pending, e.reply);  // still pending, with the reply
    for (auto& r : q.recipients)
      if (e.delay_reported && std::count(e.recipients.begin(), e.recipients.end(), r.address))
        r.delay_reported = true;
    q.last_host = e.host;
    q.last_reply = e.reply;
    reschedule(q, e.next_attempt_ms);
    save(q);
  });
}

void Applier::apply(const Bounced& e) {
  change_entry(e.queue_id, [&](view::QueueRecord& q) {
    settle(q, e.recipients, Rcpt::bounced, e.reply);
    q.last_reply = e.reply;
    save_or_finish(q);
  });
}

void Applier::apply(const Expired& e) {
  change_entry(e.queue_id, [&](view::QueueRecord& q) {
    settle(q, e.recipients, Rcpt::expired, e.reply);
    save_or_finish(q);
  });
}

void Applier::apply(const DeliveryRescheduled& e) {
  change_entry(e.queue_id, [&](view::QueueRecord& q) {
    reschedule(q, e.next_attempt_ms);
    save(q);
  });
}

void Applier::apply(const OutboundDeleted& e) {
  change_entry(e.queue_id, [&](view::QueueRecord& q) {
    for (auto& r : q.recipients)
      r.state = Rcpt::expired;
    save_or_finish(q);
  });
}

// Bans live in the meta family (no view format change): "ban/" network.
void Applier::apply(const BanAdded& e) {
  const auto network = Network::parse(e.network);
  if (!network) return fail(OutcomeCode::invalid, "not a network: " + e.network);
  view::BanRecord r;
  r.network = network->str();
  r.reason = e.reason;
  r.rule = e.rule;
  r.added_ms = e_.at_ms;
  r.expires_ms = e.expires_ms;
  r.by = fmt::format("{} {}", to_string(e_.actor.protocol),
                     e_.actor.user.empty() ? e_.actor.remote_ip : e_.actor.user);
  b_.put(Family::meta, view::ban_key(r.network), view::encode(r));
  out_.mailboxes.push_back(bans_changed());
}

void Applier::apply(const BanLifted& e) {
  const auto network = Network::parse(e.network);
  if (!network) return fail(OutcomeCode::invalid, "not a network: " + e.network);
  const std::string key = view::ban_key(network->str());
  const auto held = b_.get(Family::meta, key);
  if (!held) return fail(OutcomeCode::invalid, "not banned: " + e.network);
  if (e.expires_ms != 0) {
    // Written for one ban (the sweep's, once it expired): a newer ban of
    // the network, added meanwhile, stays.
    const auto r = view::decode_ban(*held);
    if (!r || r->expires_ms != e.expires_ms)
      return fail(OutcomeCode::invalid, "a newer ban holds " + e.network);
  }
  b_.del(Family::meta, key);
  out_.mailboxes.push_back(bans_changed());
}

}  // namespace a3::projections::detail
