// The daemon's life under systemd and operators' signals: what a SIGHUP
// reload can apply and what needs a restart, and the watchdog's heartbeat.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/config.h"
#include "eventlog/event_log.h"
#include "frontends/admin/protocol.h"
#include "projections/audit/audit_projector.h"
#include "projections/projector.h"

namespace a3::daemon {

// What differs between the configuration running and a new one that a
// reload cannot apply ("server.listener", "eventlog", ...): each takes
// effect at the next start.
std::vector<std::string> needs_restart(const config::Config& running, const config::Config& fresh);

// The admin socket's "health" (a3ctl health): whether the log takes
// appends and how far each projector is behind it, one "name: ok|error:
// detail" line each; ok only if every line is.
admin::Reply health(eventlog::EventLog& log, const projections::Projector& projector,
                    const projections::audit::AuditProjector* audit, std::int64_t max_lag);

// Sends systemd's WATCHDOG=1 while the I/O threads answer: a task posted to
// them must run within half of WatchdogSec, or systemd is not told and
// restarts the service. Does nothing unless systemd asked for a watchdog.
class Watchdog {
 public:
  explicit Watchdog(boost::asio::io_context& io);
  ~Watchdog();

 private:
  boost::asio::io_context& io_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace a3::daemon
