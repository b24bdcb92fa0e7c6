// One login attempt, the same for every protocol: the client IP's penalty
// is served first (whatever the credentials turn out to be, so a quick
// answer never reveals a success), the password is checked off the I/O
// threads, the outcome goes to the throttle and to the audit trail.
#pragma once

#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "eventlog/event_log.h"
#include "frontends/net/auth.h"
#include "projections/store.h"

namespace a3::net {

struct LoginContext {
  const projections::Store& store;
  eventlog::EventLog& log;
  AuthThrottle& throttle;
  boost::asio::thread_pool& pool;  // where Argon2id runs
  schemas::Protocol protocol;
  std::string remote_ip;
  std::string session_id;
};

// The account the credentials name, or nullopt.
boost::asio::awaitable<std::optional<std::string>> login(LoginContext ctx, std::string mechanism,
                                                         std::string user, std::string password);

}  // namespace a3::net
