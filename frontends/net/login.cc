#include "frontends/net/login.h"
#include "common/logging.h"
#include "common/metrics.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>

namespace a3::net {

namespace asio = boost::asio;

namespace {

asio::awaitable<std::optional<std::string>> check(const projections::Store& store, std::string user,
                                                  std::string password) {
  co_return authenticate(store, user, password);
}

asio::thread_pool& password_pool() {
  static asio::thread_pool pool(2);
  return pool;
}

}  // namespace

std::shared_ptr<void> SessionLimit::acquire(const std::string& account) {
  std::lock_guard lock(mu_);
  int& n = sessions_[account];
  if (max_ > 0 && n >= max_) {
    if (n == 0) sessions_.erase(account);
    return nullptr;
  }
  ++n;
  // The handle's deleter gives the slot back; it owns nothing else.
  return std::shared_ptr<void>(this, [account](SessionLimit* self) {
    std::lock_guard guard(self->mu_);
    if (--self->sessions_[account] == 0) self->sessions_.erase(account);
  });
}

asio::awaitable<LoginResult> login(LoginContext ctx, std::string mechanism, std::string user,
                                   std::string password) {
  const auto delay = ctx.throttle.delay(ctx.remote_ip);
  if (delay.count() > 0) {
    asio::steady_timer pause(co_await asio::this_coro::executor, delay);
    co_await pause.async_wait(asio::use_awaitable);
  }
  auto checked = asio::co_spawn(password_pool(), check(ctx.store, user, std::move(password)),
                                asio::use_awaitable);
  std::optional<std::string> account = co_await std::move(checked);
  // Valid credentials are no failure for the throttle, even when refused.
  ctx.throttle.record(ctx.remote_ip, account.has_value());
  LoginResult result;
  std::string reason = "invalid credentials";
  if (account && ctx.per_account) {
    result.slot = ctx.per_account->acquire(*account);
    if (!result.slot) {
      logging::log(spdlog::level::info,
                   {schemas::to_string(ctx.protocol), ctx.session_id, ctx.remote_ip, *account},
                   "already {} sessions; login refused", ctx.per_account->max());
      reason = fmt::format("session limit ({} sessions)", ctx.per_account->max());
      result.over_limit = true;
      account.reset();
    }
  }
  metrics::login(schemas::to_string(ctx.protocol), account             ? "success"
                                                   : result.over_limit ? "refused_limit"
                                                                       : "failure");
  std::vector<schemas::Event> audit;
  audit.push_back(
      auth_event(ctx.protocol, mechanism, user, account, ctx.remote_ip, ctx.session_id, reason));
  auto logged = ctx.store.execute(std::move(audit), projections::Store::Wait::durable);
  if (!co_await std::move(logged)) {
    logging::log(spdlog::level::warn,
                 {schemas::to_string(ctx.protocol), ctx.session_id, ctx.remote_ip, user},
                 "the login could not be logged; answered a temporary failure");
    co_return LoginResult{std::nullopt, true, false, nullptr};
  }
  logging::log(spdlog::level::debug,
               {schemas::to_string(ctx.protocol), ctx.session_id, ctx.remote_ip, user},
               "login {} ({})", account ? "accepted" : "refused", mechanism);
  result.account = std::move(account);
  co_return result;
}

}  // namespace a3::net
