// Per-account point-in-time rollback on the live store.
//
// The account's state at the target is computed from its own events (its
// partition replayed up to the target into a scratch view); the rollback is
// then the list of events that take the live account back to that state:
// re-create the account or its deleted mailboxes, rename mailboxes back,
// re-append expunged messages with their original bodies, flags and internal
// dates, and restore changed flags. Mail and mailboxes that appeared after
// the target stay. Being events, the rollback is audited and survives any
// replay.
#pragma once

#include <string>
#include <vector>

#include "eventlog/event_log.h"
#include "projections/store.h"
#include "schemas/event.h"

namespace a3::projections {

struct RollbackPlan {
  std::vector<schemas::Event> events;  // to append, in order
  std::vector<std::string> steps;      // one line per change, for --dry-run and the report
  std::size_t messages_restored = 0;
  std::size_t flags_restored = 0;
  std::size_t mailboxes_restored = 0;
};

// `target` is the partition's end offset to roll back to (events before it
// count). Throws std::runtime_error (unknown account at the target, log
// unreadable).
RollbackPlan plan_account_rollback(eventlog::EventLog& log, const Store& live,
                                   const std::string& account, std::int64_t target,
                                   const schemas::Actor& actor);

}  // namespace a3::projections
