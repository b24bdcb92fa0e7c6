// The delivery worker: takes due entries from the outbound queue (a
// projection of the log, in the store), delivers them through the relay or
// the domains' MX hosts, and appends what happened (DeliveryAttempted, then
// Delivered / Deferred / Bounced / Expired, and a DSN for the sender) —
// the queue's state is only ever what those events made it (docs/outbound.md).
//
// It runs on a thread and an io_context of its own: DNS (libunbound), SMTP
// client connections and the store's completions all resume there.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "projections/store.h"

namespace a3::delivery {

struct WorkerOptions {
  std::string hostname;  // EHLO, Reporting-MTA
  std::vector<std::string> local_domains;
  config::Outbound outbound;
  // The deployment guide's smarthost; empty host: MX delivery.
  std::string relay_host;
  int relay_port = 25;
  std::string relay_user, relay_password;  // AUTH when relay_user is set
  bool relay_auth_missing = false;         // relay_auth without credentials: defer
  static WorkerOptions from(const config::Config& c);
};

// Retry delay after `attempts` failed attempts: initial, doubling, capped.
std::int64_t backoff_ms(const config::Outbound& o, std::uint32_t attempts);

class Worker {
 public:
  Worker(projections::Store& store, WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread (throws std::runtime_error if the resolver cannot be
  // set up); stop() waits for it after in-flight attempts are abandoned
  // (they are tried again later: the queue is in the log).
  void start();
  void stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace a3::delivery
