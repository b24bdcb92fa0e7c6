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
#include "schemas/codec.h"

namespace a3::imap {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

using Strand = asio::strand<asio::io_context::executor_type>;

// What a connection's coroutines (reader, IDLE pusher, watchdog) and the
// projector's wake-ups share.
struct Live {
  Live(tcp::socket s, Strand ex)
      : strand(ex), conn(std::move(s)), timer(ex), wake(ex), write_done(ex) {}
  Strand strand;
  net::Conn conn;
  std::chrono::steady_clock::time_point deadline;
  bool done = false;
  asio::steady_timer timer;       // the watchdog's
  asio::steady_timer wake;        // IDLE: something changed (cancelled to wake)
  asio::steady_timer write_done;  // a write finished (cancelled to wake)
  bool wake_pending = false;      // on the strand
  bool writing = false;           // on the strand
  std::mutex session_mu;          // the session runs on pool threads
  std::mutex watch_mu;
  std::optional<schemas::Uuid> watching;  // the mailbox an IDLE waits on
};

}  // namespace

struct Server::State {
  asio::io_context& io;
  config::Config config;
  projections::Store& store;
  eventlog::EventLog& log;
  ssl::context* tls;
  net::AuthThrottle& throttle;
  Shared shared;
  // Session work may wait for the log and the projector: never on an I/O
  // thread.
  asio::thread_pool pool{8};
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::mutex mu;
  std::size_t connections = 0;
  std::map<asio::ip::address, std::size_t> per_ip;
  std::atomic<std::uint64_t> next_session{1};
  std::vector<std::weak_ptr<Live>> live;  // guarded by mu
  bool stopping = false;                  // guarded by mu
};

namespace {

tcp::endpoint parse_endpoint(const std::string& bind) {
  const auto colon = bind.rfind(':');
  std::string host = bind.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const auto port = static_cast<unsigned short>(std::stoi(bind.substr(colon + 1)));
  return {asio::ip::make_address(host), port};
}

awaitable<void> watchdog(std::shared_ptr<Live> live) {
  while (!live->done) {
    live->timer.expires_at(live->deadline);
    boost::system::error_code ec;
    co_await live->timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (!live->done && std::chrono::steady_clock::now() >= live->deadline) {
      live->conn.socket().close(ec);
      co_return;
    }
  }
}

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
                                 std::optional<std::string> account) {
  std::lock_guard lock(live->session_mu);
  session->auth_result(account);
  co_return session->take_output();
}

awaitable<std::string> poll_idle(std::shared_ptr<Live> live, Session* session) {
  std::lock_guard lock(live->session_mu);
  session->idle_poll();
  co_return session->take_output();
}

awaitable<std::optional<std::string>> check_password(std::shared_ptr<Server::State> st,
                                                     AuthRequest request) {
  co_return net::authenticate(st->store, request.user, request.password);
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
    {
      std::lock_guard lock(live->watch_mu);
      if (live->done || !live->watching) co_return;
    }
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
  {
    std::lock_guard lock(st->mu);
    if (st->stopping) co_return;
    std::erase_if(st->live, [](const std::weak_ptr<Live>& w) { return w.expired(); });
    st->live.push_back(live);
  }
  Limits limits;
  limits.max_line_before_auth = static_cast<std::size_t>(cfg.imap.max_line_before_auth);
  limits.max_line_after_auth = static_cast<std::size_t>(cfg.imap.max_line_after_auth);
  limits.append_limit = static_cast<std::size_t>(cfg.imap.append_limit);
  const bool implicit = listener.tls == config::TlsMode::implicit;
  SessionInfo info{cfg.server.hostname, remote_ip,       session_id, st->tls != nullptr,
                   implicit,            cfg.imap.allow_plaintext_auth};
  Session session(info, limits, st->store, st->shared);

  live->deadline = std::chrono::steady_clock::now() + 30s;  // greeting / TLS handshake
  asio::co_spawn(strand, watchdog(live), [](std::exception_ptr) {});
  struct Done {
    Live& l;
    ~Done() {
      {
        std::lock_guard lock(l.watch_mu);
        l.watching.reset();
      }
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
    live->deadline =
        std::chrono::steady_clock::now() +
        std::chrono::seconds(idle ? cfg.imap.idle_timeout_s : cfg.imap.autologout_s);
    {
      std::lock_guard lock(live->watch_mu);
      live->watching = idle ? session.selected_mailbox() : std::nullopt;
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
    auto fed = asio::co_spawn(st->pool, feed(live, &session, std::string(buf.data(), n)),
                              use_awaitable);
    std::string out = co_await std::move(fed);
    for (;;) {
      if (!out.empty()) {
        auto w = write(live, std::move(out));
        co_await std::move(w);
        out.clear();
      }
      auto request = session.take_auth();
      if (!request) break;
      // The IP's penalty first, whatever the credentials turn out to be.
      const auto delay = st->throttle.delay(remote_ip);
      if (delay.count() > 0) {
        asio::steady_timer pause(strand, delay);
        co_await pause.async_wait(use_awaitable);
      }
      auto checked = asio::co_spawn(st->pool, check_password(st, *request), use_awaitable);
      const std::optional<std::string> account = co_await std::move(checked);
      const auto audit = net::auth_event(schemas::Protocol::imap, request->mechanism,
                                         request->user, account, remote_ip, session_id);
      st->log.append_async(audit.account, schemas::encode(audit), [](eventlog::AppendResult) {});
      st->throttle.record(remote_ip, account.has_value());
      auto done = asio::co_spawn(st->pool, auth_done(live, &session, account), use_awaitable);
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
               eventlog::EventLog& log, projections::Projector& projector, ssl::context* tls,
               net::AuthThrottle& throttle)
    : state_(std::make_shared<State>(io, config, store, log, tls, throttle)) {
  std::weak_ptr<State> weak = state_;
  projector.add_listener([weak](const std::vector<schemas::Uuid>& mailboxes) {
    auto st = weak.lock();
    if (!st) return;
    std::vector<std::shared_ptr<Live>> wake;
    {
      std::lock_guard lock(st->mu);
      for (const auto& w : st->live) {
        auto l = w.lock();
        if (!l) continue;
        std::lock_guard watch(l->watch_mu);
        if (l->watching &&
            std::find(mailboxes.begin(), mailboxes.end(), *l->watching) != mailboxes.end())
          wake.push_back(l);
      }
    }
    for (auto& l : wake) {
      asio::post(l->strand, [l] {
        l->wake_pending = true;
        l->wake.cancel();
      });
    }
  });
}

Server::~Server() {
  stop();
  state_->pool.join();
}

void Server::stop() {
  auto st = state_;
  std::vector<std::weak_ptr<Live>> live;
  {
    std::lock_guard lock(st->mu);
    if (st->stopping) return;
    st->stopping = true;
    live = st->live;
  }
  asio::post(st->io, [st] {
    for (auto& a : st->acceptors) {
      boost::system::error_code ec;
      a->close(ec);
    }
  });
  for (auto& w : live) {
    if (auto l = w.lock()) {
      asio::post(l->strand, [l] {
        boost::system::error_code ec;
        l->conn.socket().close(ec);
        l->timer.cancel();
        l->wake.cancel();
      });
    }
  }
}

void Server::listen(const config::Listener& listener) {
  if (listener.tls == config::TlsMode::implicit && !state_->tls) {
    throw std::runtime_error(fmt::format("{} listener {} needs [tls] certificate and private_key",
                                         listener.protocol, listener.bind));
  }
  auto acceptor = std::make_unique<tcp::acceptor>(state_->io);
  try {
    const auto ep = parse_endpoint(listener.bind);
    acceptor->open(ep.protocol());
    acceptor->set_option(tcp::acceptor::reuse_address(true));
    acceptor->bind(ep);
    acceptor->listen();
  } catch (const std::exception& e) {
    throw std::runtime_error(
        fmt::format("{} listener {}: {}", listener.protocol, listener.bind, e.what()));
  }
  auto* a = acceptor.get();
  state_->acceptors.push_back(std::move(acceptor));
  auto st = state_;
  asio::co_spawn(
      state_->io,
      [st, a, listener]() -> awaitable<void> {
        for (;;) {
          boost::system::error_code ec;
          tcp::socket socket = co_await a->async_accept(asio::redirect_error(use_awaitable, ec));
          if (ec == asio::error::operation_aborted || !a->is_open()) co_return;
          if (ec) {
            spdlog::warn("imap: accept on {} failed: {}", listener.bind, ec.message());
            asio::steady_timer backoff(st->io, 100ms);
            co_await backoff.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
          }
          const auto ip = socket.remote_endpoint(ec).address();
          if (ec) continue;
          bool refused = false;
          {
            std::lock_guard lock(st->mu);
            const auto& sec = st->config.security;
            if (st->connections >= static_cast<std::size_t>(sec.max_connections) ||
                st->per_ip[ip] >= static_cast<std::size_t>(sec.max_connections_per_ip)) {
              refused = true;
            } else {
              ++st->connections;
              ++st->per_ip[ip];
            }
          }
          if (refused) {
            asio::write(socket, asio::buffer(std::string("* BYE Too many connections\r\n")), ec);
            socket.close(ec);
            continue;
          }
          auto executor = asio::make_strand(st->io);
          asio::co_spawn(executor, serve(st, std::move(socket), listener, executor),
                         [st, ip](std::exception_ptr e) {
                           if (e) {
                             try {
                               std::rethrow_exception(e);
                             } catch (const boost::system::system_error& se) {
                               if (se.code() != asio::error::eof &&
                                   se.code() != asio::error::operation_aborted) {
                                 spdlog::debug("imap: session ended: {}", se.what());
                               }
                             } catch (const std::exception& ex) {
                               spdlog::warn("imap: session failed: {}", ex.what());
                             }
                           }
                           std::lock_guard lock(st->mu);
                           --st->connections;
                           if (--st->per_ip[ip] == 0) st->per_ip.erase(ip);
                         });
        }
      },
      [listener](std::exception_ptr e) {
        if (e) spdlog::debug("imap: listener {} stopped", listener.bind);
      });
  spdlog::info("imap: listening on {} ({})", listener.bind, listener.protocol);
}

}  // namespace a3::imap
