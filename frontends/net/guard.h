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
#include <functional>
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
#include "frontends/net/access.h"
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
  // `access`: the access lists, built beforehand (null: built here from
  // security.access; that may throw).
  explicit Guard(const config::Security& security, std::shared_ptr<const AccessRules> access = {});
  ~Guard();
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  // SIGHUP: connection limits, blocked networks, ban rules and the access
  // lists (`access`, built beforehand; null: built here from
  // security.access). Connections already open stay; offenses counted so
  // far are kept.
  void reload(const config::Security& security, std::shared_ptr<const AccessRules> access = {});
  // The access-control file's rules in force; a session keeps the ones it
  // started with.
  std::shared_ptr<const AccessRules> access() const { return std::atomic_load(&access_); }
  ConnectionLimits& limits() { return limits_; }

  // Why a new connection from `ip` is refused before anything is said to
  // it ("blocked": a configured network; "banned"), or nullopt.
  std::optional<std::string_view> refuses(const boost::asio::ip::address& ip) const;
  // Whether `ip` may send a PROXY header ([security] trusted_proxies).
  bool trusted_proxy(const boost::asio::ip::address& ip) const {
    return std::atomic_load(&trusted_)->find(ip, 0).has_value();
  }
  // The reason of the ban that holds `ip` now, or nullopt.
  std::optional<std::string> banned(const boost::asio::ip::address& ip) const;

  // The projected bans, replacing the set (follow() calls it); this
  // node's own bans that the view does not hold yet stay.
  void set_bans(const std::vector<projections::BanRecord>& bans);
  // The bans in force now (and a3_bans_active set to it).
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

  // The guide's rate limit ([security] enable_rate_limiting): counts one
  // request (a connection, or a command) from `ip`; false when the IP has
  // made max_requests_per_window of them within rate_limit_window. Always
  // true when off, and for exempt_networks.
  bool request(const boost::asio::ip::address& ip);
  // request(ip) as a session's Limits::allow_request (the guard outlives
  // the sessions); empty while the rate limit is off, so that a session
  // then carries and calls nothing (a reload turning it on applies to the
  // connections that follow).
  std::function<bool()> requests_of(const boost::asio::ip::address& ip) {
    if (std::atomic_load(&rules_)->max_requests <= 0) return {};
    return [this, ip] { return request(ip); };
  }
  // Whether an hourly message limit is set (else may_send/sent need not
  // be called).
  bool limits_messages() const {
    const auto rules = std::atomic_load(&rules_);
    return rules->max_messages_per_account > 0 || rules->max_messages_per_ip > 0;
  }

  // Messages per hour ([security] max_messages_per_hour_per_account on a
  // logged-in client, max_messages_per_hour_per_ip on one that is not):
  // whether one more may start (MAIL FROM), and one was accepted (250).
  // An hour starts with the first message counted; exempt_networks are
  // not limited by IP.
  bool may_send(const boost::asio::ip::address& ip, const std::string& account);
  void sent(const boost::asio::ip::address& ip, const std::string& account);

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
    // Requests per client IP (0: no limit).
    int max_requests = 0;
    std::chrono::seconds request_window{60};
    int max_messages_per_account = 0, max_messages_per_ip = 0;  // per hour; 0: none
  };
  struct Requests {
    std::chrono::steady_clock::time_point since;
    int n = 0;
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
  void set_bans_and_publish(const std::vector<projections::BanRecord>& bans);

  void prune_locked(std::chrono::steady_clock::time_point now);

  ConnectionLimits limits_;
  std::shared_ptr<const NetworkIndex> blocked_;  // std::atomic_load/store
  std::shared_ptr<const NetworkIndex> trusted_;  // trusted_proxies; std::atomic_load/store
  std::shared_ptr<const Bans> bans_;             // std::atomic_load/store
  std::mutex bans_mu_;                           // serialises the writers of bans_
  NetworkMap<std::int64_t> local_;             // bans made here, until the view has them; bans_mu_
  std::shared_ptr<const Rules> rules_;         // std::atomic_load/store
  std::shared_ptr<const AccessRules> access_;  // std::atomic_load/store
  std::mutex mu_;
  std::map<boost::asio::ip::address, Counts> counts_;  // guarded by mu_
  std::mutex requests_mu_;
  std::map<boost::asio::ip::address, Requests> requests_;  // guarded by requests_mu_
  // Messages: "a" account or "i" address -> this hour's count.
  std::mutex messages_mu_;
  std::map<std::string, Requests> messages_;  // guarded by messages_mu_
  // The key and the limit that apply to a client, or a limit of 0.
  std::pair<std::string, int> message_key(const boost::asio::ip::address& ip,
                                          const std::string& account) const;
  struct Follower;
  std::shared_ptr<Follower> follower_;
};

}  // namespace a3::net
