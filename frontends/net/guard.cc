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

Guard::Guard(const config::Security& security) : limits_(security), bans_(indexed({})) {
  reload(security);
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

void Guard::reload(const config::Security& security) {
  limits_.set(security);
  std::atomic_store(&blocked_, index_of(security.blocked_networks));
  auto rules = std::make_shared<Rules>();
  rules->after[static_cast<int>(Offense::auth_failure)] = security.ban_after_auth_failures;
  rules->after[static_cast<int>(Offense::protocol_error)] = security.ban_after_protocol_errors;
  rules->after[static_cast<int>(Offense::unknown_recipient)] =
      security.ban_after_unknown_recipients;
  rules->window = std::chrono::seconds(security.ban_window_s);
  rules->duration = std::chrono::seconds(security.ban_duration_s);
  rules->exempt = networks(security.ban_exempt_networks);
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
  publish(bans->map.size());
  return bans;
}

void Guard::set_bans(const std::vector<projections::BanRecord>& records) {
  NetworkMap<std::int64_t> map;
  const std::int64_t now = now_ms();
  for (const auto& r : records) {
    if (!r.active(now)) continue;
    if (auto n = Network::parse(r.network)) map.insert(*n, r.expires_ms);
  }
  auto bans = indexed(std::move(map));
  std::lock_guard lock(bans_mu_);
  std::atomic_store(&bans_, std::move(bans));
}

std::size_t Guard::active_bans() const {
  const auto bans = std::atomic_load(&bans_);
  const std::int64_t now = now_ms();
  std::size_t n = 0;
  bans->map.for_each([&](const Network&, std::int64_t expires) {
    if (expires == 0 || now < expires) ++n;
  });
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
  const auto now = Clock::now();
  int count = 0;
  {
    std::lock_guard lock(mu_);
    if (counts_.size() >= kMaxTracked && !counts_.contains(ip)) prune_locked(now);
    Counts& c = counts_[ip];
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
  const auto network = Network::parse(ip.to_string());
  if (!network) return v;  // an address always parses
  {
    // In force here before its event is even appended: the next connect
    // from this IP is refused whatever the log does.
    std::lock_guard lock(bans_mu_);
    NetworkMap<std::int64_t> map = std::atomic_load(&bans_)->map;
    map.insert(*network, expires);
    std::atomic_store(&bans_, indexed(std::move(map)));
  }
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
// change). Its id is derived from the ban, so that several nodes sweeping
// at once append it once (a duplicate id is a no-op).
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
      schemas::Event e = schemas::make_event(std::string(schemas::kBansKey),
                                             {schemas::Protocol::system, "", "", "ban-sweep"},
                                             schemas::BanLifted{b.network, "expired"});
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
  // The projector's thread must not wait: the reload runs on `ex`.
  f->subscription = store.subscribe_bans([this, ex, &store, timer = f->timer] {
    asio::post(ex, [this, &store] { set_bans(store.bans()); });
    asio::post(timer->get_executor(), [timer] { timer->cancel(); });
  });
  set_bans(store.bans());
  follower_ = f;
  asio::co_spawn(f->timer->get_executor(), sweep(f, &store, f->timer, &f->stopped, period),
                 asio::detached);
}

}  // namespace a3::net
