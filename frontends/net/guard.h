// The daemon's guard at the door, one for SMTP, IMAP and POP3: who may
// connect (the configured blocked networks, the bans, the connection
// limits) and who gets banned (offenses counted per client IP).
//
// Bans are events (BanAdded, BanLifted under schemas::kBansKey): a3ctl ban
// appends them, and so does this guard when an IP crosses a threshold; the
// mailbox projection keeps them in the view, and follow() loads them here,
// so every node and every replay knows the same bans (docs/security.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/address.hpp>

#include "common/config.h"
#include "common/network.h"
#include "frontends/net/listener.h"
#include "projections/records.h"
#include "projections/store.h"
#include "schemas/event.h"

namespace a3::net {

// What a client can do that counts towards a ban ([security] ban_after_*).
enum class Offense {
  auth_failure,       // a failed login (SMTP AUTH, IMAP LOGIN/AUTHENTICATE, POP3)
  protocol_error,     // a command answered as an error of the client (5xx, BAD, -ERR)
  unknown_recipient,  // SMTP RCPT TO a user that does not exist here
};

class Guard {
 public:
  explicit Guard(const config::Security& security);
  ~Guard();
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  // SIGHUP: connection limits, blocked networks and ban rules. Connections
  // already open stay; offenses counted so far are kept.
  void reload(const config::Security& security);
  ConnectionLimits& limits() { return limits_; }

  // Why a new connection from `ip` is refused before anything is said to
  // it ("blocked": a configured network; "banned"), or nullopt.
  std::optional<std::string_view> refuses(const boost::asio::ip::address& ip) const;
  // The reason of the ban that holds `ip` now, or nullopt.
  std::optional<std::string> banned(const boost::asio::ip::address& ip) const;

  // The projected bans, replacing the set (follow() calls it).
  void set_bans(const std::vector<projections::BanRecord>& bans);
  std::size_t active_bans() const;

  struct Verdict {
    bool banned = false;                // close the session: `reason` says why
    std::string reason;                 // for the client and the log
    std::optional<schemas::Event> ban;  // the BanAdded to append, if this made it
  };
  // Counts one offense of `kind` from `ip` (the session is `actor`). When
  // the count reaches its rule's threshold within ban_window_s, the ban is
  // in force here at once and returned for the caller to append; an IP
  // already banned is banned without a new event. Loopback and the other
  // networks of ban_exempt_networks are never banned automatically.
  Verdict offense(const boost::asio::ip::address& ip, Offense kind, const schemas::Actor& actor);

  // Loads the store's bans, reloads them after each batch that changed
  // them, and appends BanLifted for expired ones every `sweep`, on `ex`.
  void follow(projections::Store& store, boost::asio::any_io_executor ex,
              std::chrono::milliseconds sweep = std::chrono::seconds(30));
  // Stops following (the daemon's stop: its I/O threads must run out of
  // work). The bans in force stay.
  void stop();

 private:
  struct Rules {
    int after[3] = {0, 0, 0};  // by Offense; 0: never
    std::chrono::seconds window{600};
    std::chrono::seconds duration{3600};
    NetworkMap<char> exempt;
  };
  struct Counts {
    int n[3] = {0, 0, 0};
    std::chrono::steady_clock::time_point since[3];
    std::chrono::steady_clock::time_point last;
  };
  // The bans in force: by network (their expiry, ms since the epoch; 0:
  // never), and the index lookups use.
  struct Bans {
    NetworkMap<std::int64_t> map;
    NetworkIndex index;
  };
  static std::shared_ptr<const Bans> indexed(NetworkMap<std::int64_t> map);

  void prune_locked(std::chrono::steady_clock::time_point now);

  ConnectionLimits limits_;
  std::shared_ptr<const NetworkIndex> blocked_;  // std::atomic_load/store
  std::shared_ptr<const Bans> bans_;             // std::atomic_load/store
  std::mutex bans_mu_;                           // serialises the writers of bans_
  std::shared_ptr<const Rules> rules_;           // std::atomic_load/store
  std::mutex mu_;
  std::map<boost::asio::ip::address, Counts> counts_;  // guarded by mu_
  struct Follower;
  std::shared_ptr<Follower> follower_;
};

}  // namespace a3::net
