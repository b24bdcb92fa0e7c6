// How a3ctl reaches the store: through the running daemon's admin socket
// (writes) and a read-only follower of its view (reads), or, with no daemon,
// by opening the log and the view itself and catching the view up first.
// Either way the commands see the same results.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "eventlog/event_log.h"
#include "frontends/admin/protocol.h"
#include "projections/projector.h"
#include "projections/store.h"
#include "schemas/event.h"

namespace a3::ctl {

class StoreAccess {
 public:
  // Throws std::runtime_error with a message for the operator.
  static std::unique_ptr<StoreAccess> open(const config::Config& config);
  ~StoreAccess();

  bool via_daemon() const { return via_daemon_; }
  // Appends and applies the events in order; one reply each.
  std::vector<admin::Reply> execute(const std::vector<schemas::Event>& events);
  // Read queries, up to date with everything applied so far.
  projections::Store& store();
  // The event log for reading (the daemon's, followed read-only, when it runs).
  eventlog::EventLog& log();

 private:
  StoreAccess() = default;
  config::Config config_;
  std::string socket_path_;
  bool via_daemon_ = false;
  std::unique_ptr<eventlog::EventLog> log_;
  std::unique_ptr<projections::view::ViewDb> view_;
  std::unique_ptr<projections::Projector> projector_;
  std::unique_ptr<projections::Store> store_;
};

// Runs `events` through the store (the daemon's, when it runs), prints
// each refusal and "<done> N of M"; exit status 0, or 1 if any failed.
int run_events(StoreAccess& access, const std::vector<schemas::Event>& events,
               std::string_view done);

std::string admin_socket_path(const config::Config& config);

// Whether a daemon answers on this configuration's admin socket.
bool daemon_running(const config::Config& config);

}  // namespace a3::ctl
