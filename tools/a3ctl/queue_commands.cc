// a3ctl queue list|show|retry|delete|flush: the outbound queue, read from
// the view; changes are events (DeliveryRescheduled, OutboundDeleted)
// appended through the daemon when it runs.
#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/clock.h"
#include "common/json.h"
#include "tools/a3ctl/commands.h"
#include "tools/a3ctl/output.h"
#include "tools/a3ctl/store_access.h"

namespace a3::ctl {

namespace {

using projections::QueueRecipient;
using projections::QueueRecord;

std::string_view state_name(QueueRecipient::State s) {
  switch (s) {
    case QueueRecipient::State::pending:
      return "pending";
    case QueueRecipient::State::delivered:
      return "delivered";
    case QueueRecipient::State::bounced:
      return "bounced";
    case QueueRecipient::State::expired:
      return "expired";
  }
  return "?";
}

std::string entry_json(const QueueRecord& q) {
  std::string rcpts;
  for (const auto& r : q.recipients) {
    if (!rcpts.empty()) rcpts += ',';
    rcpts += fmt::format(R"({{"address":{},"state":"{}","reply":{}}})", json_string(r.address),
                         state_name(r.state), json_string(r.reply));
  }
  return fmt::format(
      R"({{"id":"{}","account":{},"from":{},"size":{},"queued":"{}","next_attempt":"{}","expires":"{}","attempts":{},"last_host":{},"last_reply":{},"recipients":[{}]}})",
      q.id.str(), json_string(q.account), json_string(q.mail_from), q.size, iso(q.queued_ms),
      iso(q.next_attempt_ms), iso(q.expires_ms), q.attempts, json_string(q.last_host),
      json_string(q.last_reply), rcpts);
}

}  // namespace

int queue_command(const std::string& sub, Context& ctx) {
  const auto& args = ctx.args;
  const bool json = !args.empty() && args.back() == "--json";
  if (sub == "list") {
    auto access = StoreAccess::open(ctx.config);
    const auto entries = access->store().queue(100'000);
    for (const auto& q : entries) {
      if (json) {
        fmt::print("{}\n", entry_json(q));
        continue;
      }
      std::size_t pending = q.pending().size();
      fmt::print("{}  {:>8}  {}  from=<{}>  to={}/{}  attempts={}  next={}{}\n", q.id.str(), q.size,
                 iso(q.queued_ms), q.mail_from, pending, q.recipients.size(), q.attempts,
                 iso(q.next_attempt_ms), q.last_reply.empty() ? "" : "  last: " + q.last_reply);
    }
    if (!json) {
      const auto s = access->store().queue_stats();
      fmt::print("{} message(s) queued{}\n", s.messages,
                 s.messages ? ", oldest " + iso(s.oldest_ms) : std::string());
    }
    return 0;
  }
  if (sub == "flush") {
    // Everything due now: the worker takes it at once.
    auto access = StoreAccess::open(ctx.config);
    std::vector<schemas::Event> events;
    const auto now = now_ms();
    for (const auto& q : access->store().queue(100'000)) {
      events.push_back(schemas::make_event(q.account, operator_actor(),
                                           schemas::DeliveryRescheduled{q.id, now}));
    }
    return run_events(*access, events, "rescheduled");
  }
  if (sub == "show" || sub == "retry" || sub == "delete") {
    if (args.size() != (json ? 2u : 1u)) {
      fmt::print(stderr, "a3ctl: usage: queue {} ID\n", sub);
      return 2;
    }
    const auto id = schemas::Uuid::parse(args[0]);
    if (!id) return fmt::print(stderr, "a3ctl: '{}' is not a queue id\n", args[0]), 2;
    auto access = StoreAccess::open(ctx.config);
    const auto q = access->store().queued(*id);
    if (!q) return fmt::print(stderr, "a3ctl: {} is not in the queue\n", args[0]), 1;
    if (sub == "show") {
      if (json) return fmt::print("{}\n", entry_json(*q)), 0;
      fmt::print("id:           {}\naccount:      {}\nfrom:         <{}>\nsize:         {}\n",
                 q->id.str(), q->account, q->mail_from, q->size);
      fmt::print("queued:       {}\nexpires:      {}\nnext attempt: {}\nattempts:     {}\n",
                 iso(q->queued_ms), iso(q->expires_ms), iso(q->next_attempt_ms), q->attempts);
      if (!q->last_host.empty()) fmt::print("last host:    {}\n", q->last_host);
      for (const auto& r : q->recipients) {
        fmt::print("to:           <{}>  {}{}\n", r.address, state_name(r.state),
                   r.reply.empty() ? "" : "  " + r.reply);
      }
      return 0;
    }
    std::vector<schemas::Event> events;
    if (sub == "retry") {
      events.push_back(schemas::make_event(q->account, operator_actor(),
                                           schemas::DeliveryRescheduled{q->id, now_ms()}));
      return run_events(*access, events, "rescheduled");
    }
    events.push_back(schemas::make_event(q->account, operator_actor(),
                                         schemas::OutboundDeleted{q->id, "deleted by a3ctl"}));
    return run_events(*access, events, "deleted");
  }
  fmt::print(stderr, "a3ctl: usage: queue list|show|retry|delete|flush\n");
  return 2;
}

}  // namespace a3::ctl
