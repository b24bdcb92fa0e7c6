#include "frontends/net/guard.h"

#include <algorithm>
#include <atomic>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/clock.h"
#include "common/metrics.h"

namespace a3::net {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kMaxTracked = 100'000;

constexpr std::string_view kRuleNames[] = {"auth_failures", "protocol_errors",
                                           "unknown_recipients"};
constexpr std::string_view kWhat[] = {"failed logins", "protocol errors", "unknown recipients"};

// Networks checked at load (config.cc); one that does not parse is skipped.
NetworkMap<char> networks(const std::vector<std::string>& cidrs) {
  NetworkMap<char> out;
  for (const auto& c : cidrs)
    if (auto n = Network::parse(c)) out.insert(*n, 0);
  return out;
}

std::shared_ptr<const NetworkIndex> index_of(const std::vector<std::string>& cidrs) {
  std::vector<std::pair<Network, std::int64_t>> entries;
  for (const auto& c : cidrs)
    if (auto n = Network::parse(c)) entries.emplace_back(*n, 0);
  return std::make_shared<const NetworkIndex>(entries);
}

void publish(std::size_t active) {
  metrics::gauge("a3_bans_active", "Client networks banned now (a3ctl ban list)", {})
      .Set(static_cast<double>(active));
}

}  // namespace

// The subscription and the sweep of follow(); shared with the sweep's
// coroutine, which stops once the guard is gone.
struct Guard::Follower {
  projections::Store* store = nullptr;
  projections::Store::Subscription subscription;
  std::shared_ptr<asio::steady_timer> timer;
  std::atomic<bool> stopped{false};
};

Guard::Guard(const config::Security& security, std::shared_ptr<const AccessRules> access)
    : limits_(security), bans_(indexed({})) {
  reload(security, std::move(access));
}

Guard::~Guard() {
  stop();
}

void Guard::stop() {
  if (!follower_) return;
  follower_->stopped = true;
  follower_->subscription.reset();
  asio::post(follower_->timer->get_executor(), [t = follower_->timer] { t->cancel(); });
  follower_.reset();
}

void Guard::reload(const config::Security& security, std::shared_ptr<const AccessRules> access) {
  if (!access) access = std::make_shared<const AccessRules>(security.access);  // may throw: first
  limits_.set(security);
  std::atomic_store(&access_, std::move(access));
  std::atomic_store(&blocked_, index_of(security.blocked_networks));
  std::atomic_store(&trusted_, index_of(security.trusted_proxies));
  auto rules = std::make_shared<Rules>();
  rules->after[static_cast<int>(Offense::auth_failure)] = security.ban_after_auth_failures;
  rules->after[static_cast<int>(Offense::protocol_error)] = security.ban_after_protocol_errors;
  rules->after[static_cast<int>(Offense::unknown_recipient)] =
      security.ban_after_unknown_recipients;
  rules->window = std::chrono::seconds(security.ban_window_s);
  rules->duration = std::chrono::seconds(security.ban_duration_s);
  rules->exempt = networks(security.exempt_networks);
  if (security.enable_rate_limiting) rules->max_requests = security.max_requests_per_window;
  rules->request_window = std::chrono::seconds(security.rate_limit_window_s);
  rules->max_messages_per_account = security.max_messages_per_hour_per_account;
  rules->max_messages_per_ip = security.max_messages_per_hour_per_ip;
  std::atomic_store(&rules_, std::shared_ptr<const Rules>(std::move(rules)));
}

std::optional<std::string_view> Guard::refuses(const asio::ip::address& ip) const {
  if (std::atomic_load(&blocked_)->find(ip, now_ms())) return "blocked";
  if (banned(ip)) return "banned";
  return std::nullopt;
}

std::optional<std::string> Guard::banned(const asio::ip::address& ip) const {
  const auto bans = std::atomic_load(&bans_);
  const std::int64_t now = now_ms();
  const auto expiry = bans->index.find(ip, now);
  if (!expiry) return std::nullopt;
  if (*expiry == 0) return std::string("banned");
  return fmt::format("banned for {} s more", (*expiry - now + 999) / 1000);
}

std::shared_ptr<const Guard::Bans> Guard::indexed(NetworkMap<std::int64_t> map) {
  std::vector<std::pair<Network, std::int64_t>> entries;
  entries.reserve(map.size());
  map.for_each([&](const Network& n, std::int64_t expires) { entries.emplace_back(n, expires); });
  auto bans = std::make_shared<Bans>();
  bans->index = NetworkIndex(entries);
  bans->map = std::move(map);
  return bans;
}

void Guard::set_bans(const std::vector<projections::BanRecord>& records) {
  NetworkMap<std::int64_t> map;
  const std::int64_t now = now_ms();
  for (const auto& r : records) {
    if (!r.active(now)) continue;
    if (auto n = Network::parse(r.network)) map.insert(*n, r.expires_ms);
  }
  std::lock_guard lock(bans_mu_);
  // This node's own bans that the view does not hold yet (their event is
  // on its way, or could not be appended) stay until they expire.
  std::vector<Network> arrived;
  local_.for_each([&](const Network& n, std::int64_t expires) {
    const auto* held = map.find_exact(n);
    if (expires <= now || (held && *held == expires))
      arrived.push_back(n);
    else if (!held)
      map.insert(n, expires);
  });
  for (const auto& n : arrived)
    local_.erase(n);
  std::atomic_store(&bans_, indexed(std::move(map)));
}

void Guard::set_bans_and_publish(const std::vector<projections::BanRecord>& records) {
  set_bans(records);
  active_bans();
}

std::size_t Guard::active_bans() const {
  const auto bans = std::atomic_load(&bans_);
  const std::int64_t now = now_ms();
  std::size_t n = 0;
  bans->map.for_each([&](const Network&, std::int64_t expires) {
    if (expires == 0 || now < expires) ++n;
  });
  publish(n);
  return n;
}

void Guard::prune_locked(Clock::time_point now) {
  const auto window = std::atomic_load(&rules_)->window;
  std::erase_if(counts_, [&](const auto& kv) { return now - kv.second.last > window; });
  if (counts_.size() < kMaxTracked) return;
  // Still full: the oldest half goes (bounded memory whatever the number
  // of addresses misbehaving).
  std::vector<Clock::time_point> times;
  times.reserve(counts_.size());
  for (const auto& [ip, c] : counts_)
    times.push_back(c.last);
  std::nth_element(times.begin(), times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2),
                   times.end());
  const auto cut = times[times.size() / 2];
  std::erase_if(counts_, [&](const auto& kv) { return kv.second.last <= cut; });
}

bool Guard::request(const asio::ip::address& address) {
  const auto rules = std::atomic_load(&rules_);
  if (rules->max_requests <= 0) return true;
  const asio::ip::address ip = unmapped(address);
  if (rules->exempt.find(ip)) return true;
  const auto now = Clock::now();
  std::lock_guard lock(requests_mu_);
  if (requests_.size() >= kMaxTracked && !requests_.contains(ip)) {
    // Bounded memory: windows that have ended go (their counts are zero).
    std::erase_if(requests_,
                  [&](const auto& kv) { return now - kv.second.since > rules->request_window; });
    if (requests_.size() >= kMaxTracked) requests_.clear();
  }
  Requests& r = requests_[ip];
  if (r.n == 0 || now - r.since > rules->request_window) {
    r.since = now;
    r.n = 0;
  }
  if (r.n >= rules->max_requests) {
    metrics::counter("a3_rate_limited_total", "Requests refused by the rate limit", {}).Increment();
    return false;
  }
  ++r.n;
  return true;
}

std::pair<std::string, int> Guard::message_key(const asio::ip::address& address,
                                               const std::string& account) const {
  const auto rules = std::atomic_load(&rules_);
  if (!account.empty()) return {"a" + account, rules->max_messages_per_account};
  const asio::ip::address ip = unmapped(address);
  if (rules->max_messages_per_ip <= 0 || rules->exempt.find(ip)) return {"", 0};
  return {"i" + ip.to_string(), rules->max_messages_per_ip};
}

bool Guard::may_send(const asio::ip::address& ip, const std::string& account) {
  const auto [key, max] = message_key(ip, account);
  if (max <= 0) return true;
  const auto now = Clock::now();
  std::lock_guard lock(messages_mu_);
  const auto it = messages_.find(key);
  if (it == messages_.end() || now - it->second.since > std::chrono::hours(1)) return true;
  if (it->second.n < max) return true;
  metrics::counter("a3_messages_limited_total", "Messages refused by the hourly limits",
                   {{"by", account.empty() ? "ip" : "account"}})
      .Increment();
  return false;
}

void Guard::sent(const asio::ip::address& ip, const std::string& account) {
  const auto [key, max] = message_key(ip, account);
  if (max <= 0) return;
  const auto now = Clock::now();
  std::lock_guard lock(messages_mu_);
  if (messages_.size() >= kMaxTracked && !messages_.contains(key)) {
    std::erase_if(messages_,
                  [&](const auto& kv) { return now - kv.second.since > std::chrono::hours(1); });
    if (messages_.size() >= kMaxTracked) messages_.clear();
  }
  Requests& r = messages_[key];
  if (r.n == 0 || now - r.since > std::chrono::hours(1)) {
    r.since = now;
    r.n = 0;
  }
  ++r.n;
}

Guard::Verdict Guard::offense(const asio::ip::address& address, Offense kind,
                              const schemas::Actor& actor) {
  const asio::ip::address ip = unmapped(address);
  Verdict v;
  if (auto reason = banned(ip)) {
    v.banned = true;
    v.reason = *reason;
    return v;
  }
  const auto rules = std::atomic_load(&rules_);
  const int k = static_cast<int>(kind);
  const int after = rules->after[k];
  if (after <= 0 || rules->exempt.find(ip)) return v;
  // An IPv6 host has a /64 to pick addresses from: it is counted, and
  // banned, as its /64 (an IPv4 address as itself).
  const auto network = Network::parse(ip.to_string() + (ip.is_v4() ? "/32" : "/64"));
  if (!network) return v;  // an address always parses
  const asio::ip::address subject = network->base();
  const auto now = Clock::now();
  int count = 0;
  {
    std::lock_guard lock(mu_);
    if (counts_.size() >= kMaxTracked && !counts_.contains(subject)) prune_locked(now);
    Counts& c = counts_[subject];
    c.last = now;
    if (c.n[k] == 0 || now - c.since[k] > rules->window) {
      c.n[k] = 0;
      c.since[k] = now;
    }
    count = ++c.n[k];
    if (count < after) return v;
    c.n[k] = 0;  // the ban starts a new count
  }
  const std::int64_t expires = now_ms() + rules->duration.count() * 1000;
  {
    // In force here before its event is even appended: the next connect
    // from this IP is refused whatever the log does (kept in local_ until
    // the view has it).
    std::lock_guard lock(bans_mu_);
    NetworkMap<std::int64_t> map = std::atomic_load(&bans_)->map;
    map.insert(*network, expires);
    local_.insert(*network, expires);
    std::atomic_store(&bans_, indexed(std::move(map)));
  }
  active_bans();
  v.banned = true;
  v.reason = fmt::format("{} {} in {} s; banned for {} s", count, kWhat[k], rules->window.count(),
                         rules->duration.count());
  schemas::Actor by{schemas::Protocol::system, "", ip.to_string(), actor.session_id};
  v.ban = schemas::make_event(
      std::string(schemas::kBansKey), std::move(by),
      schemas::BanAdded{network->str(), v.reason, expires, std::string(kRuleNames[k])});
  metrics::counter("a3_bans_total", "Bans made automatically, by rule",
                   {{"rule", std::string(kRuleNames[k])}})
      .Increment();
  spdlog::warn("security: {} banned: {} ({} {})", network->str(), v.reason,
               schemas::to_string(actor.protocol), actor.session_id);
  return v;
}

namespace {

// Lifts bans once they expire: a BanLifted for each ban past its expiry,
// at the earliest expiry (or every `period`, and whenever the bans
// change). It names the ban's expiry, so it never lifts a newer ban of the
// network; its id is derived from the ban, so that when several nodes
// sweep at once the projection applies the first and ignores the others
// as duplicates.
asio::awaitable<void> sweep(std::shared_ptr<void> keep, projections::Store* store,
                            std::shared_ptr<asio::steady_timer> timer,
                            const std::atomic<bool>* stopped, std::chrono::milliseconds period) {
  (void)keep;
  while (!*stopped) {
    std::vector<schemas::Event> lifts;
    const std::int64_t now = now_ms();
    std::int64_t next = now + period.count();
    for (const auto& b : store->bans()) {
      if (b.active(now)) {
        if (b.expires_ms != 0) next = std::min(next, b.expires_ms);
        continue;
      }
      schemas::Event e = schemas::make_event(
          std::string(schemas::kBansKey), {schemas::Protocol::system, "", "", "ban-sweep"},
          schemas::BanLifted{b.network, "expired", b.expires_ms});
      e.id = schemas::Uuid::derived(fmt::format("ban lifted {} {}", b.network, b.expires_ms));
      lifts.push_back(std::move(e));
    }
    if (!lifts.empty()) {
      const std::size_t n = lifts.size();
      auto done = co_await store->execute(std::move(lifts), projections::Store::Wait::durable);
      if (!done) {
        spdlog::warn("security: expired bans not lifted yet: {}", done.error().message());
      } else {
        spdlog::info("security: {} expired ban{} lifted", n, n == 1 ? "" : "s");
      }
    }
    if (*stopped) co_return;  // stop() may have come while the log took them
    // Woken early (cancelled) when the bans change.
    timer->expires_after(std::chrono::milliseconds(std::max<std::int64_t>(next - now, 0) + 20));
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace

void Guard::follow(projections::Store& store, asio::any_io_executor ex,
                   std::chrono::milliseconds period) {
  auto f = std::make_shared<Follower>();
  f->store = &store;
  // The timer is used on its strand only (the sweep, and the cancels).
  f->timer = std::make_shared<asio::steady_timer>(asio::make_strand(ex));
  // On the projector's thread, before the event's writer hears it was
  // applied (a3ctl ban returns with the ban in force): reading the bans
  // and indexing them takes milliseconds, and only when they change.
  f->subscription = store.subscribe_bans([this, &store, timer = f->timer] {
    set_bans_and_publish(store.bans());
    asio::post(timer->get_executor(), [timer] { timer->cancel(); });
  });
  set_bans_and_publish(store.bans());
  follower_ = f;
  asio::co_spawn(f->timer->get_executor(), sweep(f, &store, f->timer, &f->stopped, period),
                 asio::detached);
}

}  // namespace a3::net
