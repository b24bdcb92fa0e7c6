#include "frontends/net/auth.h"

#include <algorithm>
#include <vector>

#include "common/ascii.h"
#include "common/password.h"

namespace a3::net {

std::optional<std::string> authenticate(const projections::Store& store, const std::string& user,
                                        const std::string& password) {
  auto account = store.account_for_address(ascii::lower(user));
  if (!account) {
    static const std::string dummy = password::hash("a3mailer timing equaliser");
    password::verify(dummy, password);
    return std::nullopt;
  }
  const auto record = store.account(*account);
  if (!record || !password::verify(record->password_hash, password)) return std::nullopt;
  return *account;
}

std::chrono::milliseconds AuthThrottle::delay(const std::string& ip) {
  std::lock_guard lock(mu_);
  const auto it = failures_.find(ip);
  if (it == failures_.end()) return std::chrono::milliseconds(0);
  if (std::chrono::steady_clock::now() - it->second.last > kForget) {
    failures_.erase(it);
    return std::chrono::milliseconds(0);
  }
  const int over = it->second.failures - free_failures_;
  if (over <= 0) return std::chrono::milliseconds(0);
  return std::min(max_delay_, std::chrono::milliseconds(250) * (1 << std::min(over, 16)));
}

void AuthThrottle::record(const std::string& ip, bool success) {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (success) {
    const auto it = failures_.find(ip);
    if (it != failures_.end() && it->second.failures <= free_failures_) failures_.erase(it);
    return;
  }
  if (failures_.size() >= kMaxTracked) {
    // Bounded memory whatever the number of addresses trying: the stale
    // go first, then the oldest half.
    std::erase_if(failures_, [&](const auto& kv) { return now - kv.second.last > kForget; });
    if (failures_.size() >= kMaxTracked) {
      std::vector<std::chrono::steady_clock::time_point> times;
      for (const auto& [k, e] : failures_)
        times.push_back(e.last);
      std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
      const auto cut = times[times.size() / 2];
      std::erase_if(failures_, [&](const auto& kv) { return kv.second.last <= cut; });
    }
  }
  auto& e = failures_[ip];
  ++e.failures;
  e.last = now;
}

schemas::Event auth_event(schemas::Protocol protocol, const std::string& mechanism,
                          const std::string& user, const std::optional<std::string>& account,
                          const std::string& remote_ip, const std::string& session_id,
                          const std::string& reason) {
  const schemas::Actor actor{protocol, account.value_or(""), remote_ip, session_id};
  const std::string key = account.value_or(ascii::lower(user));
  if (account) return schemas::make_event(key, actor, schemas::AuthSucceeded{mechanism, user});
  return schemas::make_event(key, actor, schemas::AuthFailed{mechanism, user, reason});
}

}  // namespace a3::net
