#include "frontends/net/login.h"

#include <boost/asio.hpp>

#include "schemas/codec.h"

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

asio::awaitable<std::optional<std::string>> login(LoginContext ctx, std::string mechanism,
                                                  std::string user, std::string password) {
  const auto delay = ctx.throttle.delay(ctx.remote_ip);
  if (delay.count() > 0) {
    asio::steady_timer pause(co_await asio::this_coro::executor, delay);
    co_await pause.async_wait(asio::use_awaitable);
  }
  auto checked = asio::co_spawn(password_pool(), check(ctx.store, user, std::move(password)),
                                asio::use_awaitable);
  const std::optional<std::string> account = co_await std::move(checked);
  const auto audit =
      auth_event(ctx.protocol, mechanism, user, account, ctx.remote_ip, ctx.session_id);
  ctx.log.append_async(audit.account, schemas::encode(audit), [](eventlog::AppendResult) {});
  ctx.throttle.record(ctx.remote_ip, account.has_value());
  co_return account;
}

}  // namespace a3::net
