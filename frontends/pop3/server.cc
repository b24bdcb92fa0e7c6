#include "frontends/pop3/server.h"

#include <atomic>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "frontends/net/listener.h"
#include "frontends/net/login.h"
#include "frontends/pop3/session.h"

namespace a3::pop3 {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using namespace std::chrono_literals;

struct Server::State {
  asio::io_context& io;
  config::Config config;
  projections::Store& store;
  ssl::context* tls;
  net::AuthThrottle& throttle;
  Maildrops maildrops;
  asio::thread_pool pool{4};
  net::Listeners listeners{io, config.security, "pop3", "-ERR [SYS/TEMP] Too many connections\r\n"};
  std::atomic<std::uint64_t> next_session{1};
};

namespace {

awaitable<std::string> feed(Session* session, std::string bytes) {
  session->receive(bytes);
  co_return session->take_output();
}

awaitable<std::string> auth_done(Session* session, net::LoginResult result) {
  if (result.unavailable) {
    session->auth_unavailable();
  } else {
    session->auth_result(result.account);
  }
  co_return session->take_output();
}

awaitable<void> serve(std::shared_ptr<Server::State> st, tcp::socket socket,
                      config::Listener listener, net::Strand strand) {
  const auto& cfg = st->config;
  const std::string remote_ip = socket.remote_endpoint().address().to_string();
  const std::string session_id = fmt::format("p{:x}", st->next_session.fetch_add(1));
  auto live = std::make_shared<net::Connection>(std::move(socket), strand);
  if (!st->listeners.track(live)) co_return;
  const bool implicit = listener.tls == config::TlsMode::implicit;
  SessionInfo info{cfg.server.hostname, remote_ip, session_id,
                   st->tls != nullptr,  implicit,  cfg.pop3.allow_plaintext_auth};
  // Destroyed on this coroutine's exit, which releases the maildrop.
  Session session(info, Limits{}, st->store, st->maildrops);

  live->deadline = std::chrono::steady_clock::now() + 30s;  // greeting / TLS handshake
  asio::co_spawn(strand, net::watchdog(live), [](std::exception_ptr) {});
  struct Done {
    net::Connection& c;
    ~Done() {
      c.done = true;
      c.timer.cancel();
    }
  } mark_done{*live};

  if (implicit) co_await live->conn.start_tls(*st->tls);
  const std::string greeting = session.greeting();
  co_await live->conn.write(greeting);
  std::array<char, 4096> buf;
  for (;;) {
    // RFC 1939 3: an autologout timer of at least 10 minutes.
    live->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(cfg.pop3.timeout_s);
    const std::size_t n = co_await live->conn.read_some(asio::buffer(buf));
    auto fed = asio::co_spawn(st->pool, feed(&session, std::string(buf.data(), n)), use_awaitable);
    std::string out = co_await std::move(fed);
    for (;;) {
      if (!out.empty()) {
        co_await live->conn.write(out);
        out.clear();
      }
      if (session.has_buffered_commands()) {
        // Output was held back: the pipelined commands go on.
        auto more = asio::co_spawn(st->pool, feed(&session, std::string()), use_awaitable);
        out = co_await std::move(more);
        continue;
      }
      auto request = session.take_auth();
      if (!request) break;
      net::LoginContext login{st->store, st->throttle, schemas::Protocol::pop3, remote_ip,
                              session_id};
      auto attempt = net::login(login, request->mechanism, request->user, request->password);
      net::LoginResult result = co_await std::move(attempt);
      auto done = asio::co_spawn(st->pool, auth_done(&session, std::move(result)), use_awaitable);
      out = co_await std::move(done);
    }
    if (session.starttls_requested()) {
      live->deadline = std::chrono::steady_clock::now() + 30s;
      co_await live->conn.start_tls(*st->tls);
      session.tls_established();
    }
    if (session.closed()) break;
  }
}

}  // namespace

Server::Server(asio::io_context& io, const config::Config& config, projections::Store& store,
               ssl::context* tls, net::AuthThrottle& throttle)
    : state_(std::make_shared<State>(io, config, store, tls, throttle)) {}

Server::~Server() {
  stop();
  state_->pool.join();
}

void Server::stop() {
  state_->listeners.stop();
}

void Server::listen(const config::Listener& listener) {
  auto st = state_;
  st->listeners.listen(listener, st->tls != nullptr,
                       [st, listener](tcp::socket socket, net::Strand strand) {
                         return serve(st, std::move(socket), listener, strand);
                       });
}

}  // namespace a3::pop3
