// One login attempt, the same for every protocol: the client IP's penalty
// is served first (whatever the credentials turn out to be, so a quick
// answer never reveals a success), the password is checked off the I/O
// threads, the outcome goes to the throttle and to the audit trail.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "frontends/net/auth.h"
#include "projections/store.h"

namespace a3::net {

// Authenticated sessions per account, for one protocol: a session holds its
// slot (the handle acquire() returns) until it ends.
class SessionLimit {
 public:
  explicit SessionLimit(int max) : max_(max) {}
  // A slot for `account`; none when it has max sessions already (a max of 0
  // means no limit).
  std::shared_ptr<void> acquire(const std::string& account);
  int max() const { return max_; }

 private:
  const int max_;
  std::mutex mu_;
  std::map<std::string, int> sessions_;  // guarded by mu_
};

struct LoginContext {
  projections::Store& store;
  AuthThrottle& throttle;
  schemas::Protocol protocol;
  std::string remote_ip;
  std::string session_id;
  SessionLimit* per_account = nullptr;  // null: no limit on an account's sessions
};

struct LoginResult {
  std::optional<std::string> account;  // set when the credentials are valid
  // The outcome could not be written to the log (the audit trail must show
  // every login): the client gets a temporary failure, never a success.
  bool unavailable = false;
  // The credentials were valid but the account has as many sessions as
  // the protocol allows (the guide's max_connections_per_user).
  bool over_limit = false;
  // The session's slot under the per-account limit, held while it lasts.
  std::shared_ptr<void> slot;
};

// The account the credentials name, or none. Argon2id (64 MiB, ~0.1 s a
// check) runs on one small pool shared by every protocol, which bounds its
// memory whatever the number of clients trying. The AuthSucceeded or
// AuthFailed event is durable before the result is known.
boost::asio::awaitable<LoginResult> login(LoginContext ctx, std::string mechanism, std::string user,
                                          std::string password);

}  // namespace a3::net
