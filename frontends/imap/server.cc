#include "frontends/imap/server.h"

#include <atomic>
#include <map>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "frontends/imap/session.h"
#include "frontends/net/conn.h"
#include "frontends/net/listener.h"
#include "frontends/net/login.h"

namespace a3::imap {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

using net::Strand;

// What a connection's coroutines (reader, IDLE pusher, watchdog) and the
// projector's wake-ups share.
struct Live : net::Connection {
  Live(tcp::socket s, Strand ex) : net::Connection(std::move(s), ex), wake(ex), write_done(ex) {}
  void close() override {
    net::Connection::close();
    wake.cancel();
  }
  asio::steady_timer wake;        // IDLE: something changed (cancelled to wake)
  asio::steady_timer write_done;  // a write finished (cancelled to wake)
  bool wake_pending = false;      // on the strand
  bool writing = false;           // on the strand
  std::mutex session_mu;          // the session runs on pool threads
  // While the session IDLEs: changes to the selected mailbox wake it.
  projections::Store::Subscription watch;  // on the strand
  std::optional<schemas::Uuid> watching;   // on the strand
};

}  // namespace

struct Server::State {
  asio::io_context& io;
  config::Config config;
  projections::Store& store;
  ssl::context* tls;
  net::AuthThrottle& throttle;
  Shared shared;
  // Session work may wait for the log and the projector: never on an I/O
  // thread.
  asio::thread_pool pool{8};
  net::Listeners listeners{io, config.security, "imap", "* BYE Too many connections\r\n"};
  std::atomic<std::uint64_t> next_session{1};
};

namespace {

// One write at a time on the connection: the reader and the IDLE pusher
// both write.
awaitable<void> write(std::shared_ptr<Live> live, std::string data) {
  while (live->writing) {
    live->write_done.expires_at(std::chrono::steady_clock::time_point::max());
    boost::system::error_code ec;
    co_await live->write_done.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  live->writing = true;
  struct Release {
    Live& l;
    ~Release() {
      l.writing = false;
      l.write_done.cancel();
    }
  } release{*live};
  co_await live->conn.write(data);
}

// Session work, on the pool.
awaitable<std::string> feed(std::shared_ptr<Live> live, Session* session, std::string bytes) {
  std::lock_guard lock(live->session_mu);
  session->receive(bytes);
  co_return session->take_output();
}

awaitable<std::string> auth_done(std::shared_ptr<Live> live, Session* session,
                                 net::LoginResult result) {
  std::lock_guard lock(live->session_mu);
  if (result.unavailable) {
    session->auth_unavailable();
  } else {
    session->auth_result(result.account);
  }
  co_return session->take_output();
}

awaitable<std::string> poll_idle(std::shared_ptr<Live> live, Session* session) {
  std::lock_guard lock(live->session_mu);
  session->idle_poll();
  co_return session->take_output();
}

// While the session IDLEs: waits for wake-ups and writes what changed.
awaitable<void> idle_pusher(std::shared_ptr<Server::State> st, std::shared_ptr<Live> live,
                            Session* session) {
  for (;;) {
    if (!live->wake_pending) {
      live->wake.expires_at(std::chrono::steady_clock::time_point::max());
      boost::system::error_code ec;
      co_await live->wake.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    live->wake_pending = false;
    if (live->done || !live->watching) co_return;
    auto polled = asio::co_spawn(st->pool, poll_idle(live, session), use_awaitable);
    std::string out = co_await std::move(polled);
    if (!out.empty()) {
      auto written = write(live, std::move(out));
      co_await std::move(written);
    }
  }
}

awaitable<void> serve(std::shared_ptr<Server::State> st, tcp::socket socket,
                      config::Listener listener, Strand strand) {
  const auto& cfg = st->config;
  const std::string remote_ip = socket.remote_endpoint().address().to_string();
  const std::string session_id = fmt::format("i{:x}", st->next_session.fetch_add(1));
  auto live = std::make_shared<Live>(std::move(socket), strand);
  if (!st->listeners.track(live)) co_return;
  Limits limits;
  limits.max_line_before_auth = static_cast<std::size_t>(cfg.imap.max_line_before_auth);
  limits.max_line_after_auth = static_cast<std::size_t>(cfg.imap.max_line_after_auth);
  limits.append_limit = static_cast<std::size_t>(cfg.imap.append_limit);
  const bool implicit = listener.tls == config::TlsMode::implicit;
  SessionInfo info{cfg.server.hostname, remote_ip, session_id,
                   st->tls != nullptr,  implicit,  cfg.imap.allow_plaintext_auth};
  Session session(info, limits, st->store, st->shared);

  live->deadline = std::chrono::steady_clock::now() + 30s;  // greeting / TLS handshake
  asio::co_spawn(strand, net::watchdog(live), [](std::exception_ptr) {});
  struct Done {
    Live& l;
    ~Done() {
      l.watch.reset();
      l.watching.reset();
      l.done = true;
      l.timer.cancel();
      l.wake.cancel();
    }
  } mark_done{*live};

  if (implicit) co_await live->conn.start_tls(*st->tls);
  {
    auto w = write(live, session.greeting());
    co_await std::move(w);
  }
  bool pusher = false;
  std::array<char, 4096> buf;
  for (;;) {
    const bool idle = session.idling();
    // Before login a client gets a minute per command (RFC 9051 5.4's 30
    // minutes are for authenticated sessions).
    live->deadline = std::chrono::steady_clock::now() +
                     std::chrono::seconds(idle                      ? cfg.imap.idle_timeout_s
                                          : session.authenticated() ? cfg.imap.autologout_s
                                                                    : 60);
    const auto watch = idle ? session.selected_mailbox() : std::nullopt;
    if (watch != live->watching) {
      live->watch.reset();
      live->watching = watch;
      if (watch) {
        std::weak_ptr<Live> weak = live;
        live->watch = st->store.subscribe(*watch, [weak] {
          auto l = weak.lock();
          if (!l) return;
          asio::post(l->strand, [l] {
            l->wake_pending = true;
            l->wake.cancel();
          });
        });
      }
    }
    if (idle && !pusher) {
      pusher = true;
      live->wake_pending = true;  // report what happened before IDLE began
      asio::co_spawn(strand, idle_pusher(st, live, &session), [](std::exception_ptr) {});
    } else if (!idle && pusher) {
      pusher = false;
      live->wake.cancel();  // the pusher sees it is no longer watching
    }
    const std::size_t n = co_await live->conn.read_some(asio::buffer(buf));
    auto fed =
        asio::co_spawn(st->pool, feed(live, &session, std::string(buf.data(), n)), use_awaitable);
    std::string out = co_await std::move(fed);
    for (;;) {
      if (!out.empty()) {
        auto w = write(live, std::move(out));
        co_await std::move(w);
        out.clear();
      }
      if (session.has_buffered_commands()) {
        auto more = asio::co_spawn(st->pool, feed(live, &session, std::string()), use_awaitable);
        out = co_await std::move(more);
        continue;
      }
      auto request = session.take_auth();
      if (!request) break;
      net::LoginContext login{st->store, st->throttle, schemas::Protocol::imap, remote_ip,
                              session_id};
      auto attempt = net::login(login, request->mechanism, request->user, request->password);
      net::LoginResult result = co_await std::move(attempt);
      auto done =
          asio::co_spawn(st->pool, auth_done(live, &session, std::move(result)), use_awaitable);
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
                       [st, listener](tcp::socket socket, Strand strand) {
                         return serve(st, std::move(socket), listener, strand);
                       });
}

}  // namespace a3::imap
