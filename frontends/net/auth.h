// Authentication shared by every protocol: checking a password against the
// store, the per-IP penalty for failures, and the audit events.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "projections/store.h"
#include "schemas/event.h"

namespace a3::net {

// The account a SASL identity names (an account or any of its addresses)
// if the password matches its Argon2id hash. Unknown names cost the same
// work as known ones (no timing oracle). Slow by design: call it off the
// I/O threads.
std::optional<std::string> authenticate(const projections::Store& store, const std::string& user,
                                        const std::string& password);

// Failed logins per client IP, shared by SMTP, IMAP and POP3: from
// `free_failures` on, each attempt from that IP waits twice as long as the
// previous one, up to `max_delay`. A success forgives a few failures (a
// mistyped password) but not a penalty already earned: an attacker with one
// valid account cannot reset it between guesses. An IP's record is
// forgotten 15 minutes after its last failure.
class AuthThrottle {
 public:
  AuthThrottle(int free_failures, std::chrono::seconds max_delay)
      : free_failures_(free_failures), max_delay_(max_delay) {}

  // How long an attempt from `ip` must wait before its credentials are
  // even looked at (so a quick answer never reveals a success).
  std::chrono::milliseconds delay(const std::string& ip);
  void record(const std::string& ip, bool success);

 private:
  static constexpr auto kForget = std::chrono::minutes(15);
  static constexpr std::size_t kMaxTracked = 100'000;
  struct Entry {
    int failures = 0;
    std::chrono::steady_clock::time_point last;
  };
  std::mutex mu_;
  std::map<std::string, Entry> failures_;
  int free_failures_;
  std::chrono::milliseconds max_delay_;
};

// AuthSucceeded (account set) or AuthFailed with `reason`, for the audit
// trail.
schemas::Event auth_event(schemas::Protocol protocol, const std::string& mechanism,
                          const std::string& user, const std::optional<std::string>& account,
                          const std::string& remote_ip, const std::string& session_id,
                          const std::string& reason = "invalid credentials");

}  // namespace a3::net
