#include "frontends/net/auth.h"

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
  const int over = (it == failures_.end() ? 0 : it->second) - free_failures_;
  if (over <= 0) return std::chrono::milliseconds(0);
  return std::min(max_delay_, std::chrono::milliseconds(250) * (1 << std::min(over, 16)));
}

void AuthThrottle::record(const std::string& ip, bool success) {
  std::lock_guard lock(mu_);
  if (success) {
    failures_.erase(ip);
    return;
  }
  // Bounded memory whatever the number of addresses trying.
  if (failures_.size() > 100'000) failures_.clear();
  ++failures_[ip];
}

schemas::Event auth_event(schemas::Protocol protocol, const std::string& mechanism,
                          const std::string& user, const std::optional<std::string>& account,
                          const std::string& remote_ip, const std::string& session_id) {
  const schemas::Actor actor{protocol, account.value_or(""), remote_ip, session_id};
  const std::string key = account.value_or(ascii::lower(user));
  if (account) return schemas::make_event(key, actor, schemas::AuthSucceeded{mechanism, user});
  return schemas::make_event(key, actor,
                             schemas::AuthFailed{mechanism, user, "invalid credentials"});
}

}  // namespace a3::net
