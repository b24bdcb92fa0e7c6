#include "frontends/imap/server.h"

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "frontends/imap/session.h"
#include "frontends/net/conn.h"
#include "frontends/net/driver.h"
#include "frontends/net/listener.h"

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
// store's wake-ups share.
struct Live : net::Connection {
  Live(tcp::socket s, Strand ex, asio::thread_pool& pool)
      : net::Connection(std::move(s), ex), wake(ex), work(asio::make_strand(pool)) {}
  void close() override {
    net::Connection::close();
    wake.cancel();
  }
  asio::steady_timer wake;            // IDLE: something changed (cancelled to wake)
  bool wake_pending = false;          // on the strand
  std::uint64_t idle_generation = 0;  // on the strand: one per IDLE
  // The session's work runs here, one call at a time: on the pool, since it
  // may wait for the log; the reader and the IDLE pusher both call it.
  asio::strand<asio::thread_pool::executor_type> work;
  // While the session IDLEs: changes to the selected mailbox wake it.
  projections::Store::Subscription watch;  // on the strand
  std::optional<schemas::Uuid> watching;   // on the strand
};

}  // namespace

struct Server::State {
  asio::io_context& io;
  config::Config config;
  projections::Store& store;
  net::TlsContexts* tls;  // null: no TLS
  net::AuthThrottle& throttle;
  net::Guard& guard;  // the daemon's, shared with the other protocols
  // What SIGHUP may change (limits, access lists, TLS policy): each new
  // connection takes the one in force (std::atomic_load).
  std::shared_ptr<const config::Config> live = std::make_shared<const config::Config>(config);
  Shared shared;
  // Session work may wait for the log and the projector: never on an I/O
  // thread.
  asio::thread_pool pool{8};
  net::Listeners listeners{
      io,      guard, "imap", "* BYE Too many connections\r\n", "* BYE Server shutting down\r\n",
      "* BYE "};
  net::SessionLimit per_account{config.imap.max_connections_per_user};
  std::atomic<std::uint64_t> next_session{1};
};

namespace {

// Runs `work` on the session's strand of the pool, and takes what the
// session says there too: the reader and the IDLE pusher both call it, and
// the session is only ever touched on that strand by either of them.
template <typename F>
awaitable<std::string> on_session(std::shared_ptr<Live> live, Session& session, F&& work) {
  std::string out;
  auto run = [&] {
    work();
    out = session.take_output();
  };
  co_await net::run_on(live->work, run);
  co_return out;
}

// Runs `step` (feeding bytes, a login's verdict) and then the writes the
// commands ask for, each awaited without holding a thread (the log's and
// the projector's threads complete it) and handed back to the session: all
// on the session's strand, where this coroutine resumes (the quota check
// and the answers read the view). Returns what the session said.
awaitable<std::string> step_and_write(projections::Store& store, Session& session,
                                      const std::function<void()>& step) {
  step();
  while (auto write = session.take_write()) {
    const auto result = co_await store.execute(std::move(write->events), write->wait);
    session.write_done(result);
  }
  co_return session.take_output();
}

// While the session IDLEs: waits for wake-ups and writes what changed. It
// holds the session (and the server's state the session uses), so that a
// poll in flight when the connection ends finishes on a live session.
awaitable<void> idle_pusher(std::shared_ptr<Server::State> st, std::shared_ptr<Live> live,
                            std::shared_ptr<Session> held) {
  Session& session = *held;
  (void)st;  // kept alive, not used
  const std::uint64_t generation = live->idle_generation;
  for (;;) {
    // Checked after every wait and every poll: IDLE may have ended (or a
    // new IDLE begun, with its own pusher) while this one was busy.
    if (live->done || !live->watching || live->idle_generation != generation) co_return;
    if (!live->wake_pending) {
      live->wake.expires_at(std::chrono::steady_clock::time_point::max());
      boost::system::error_code ec;
      co_await live->wake.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    live->wake_pending = false;
    std::string out = co_await on_session(live, session, [&session] { session.idle_poll(); });
    if (!out.empty()) co_await net::write(live, std::move(out));
  }
}

// The IMAP session behind the driver; IDLE's watch and pusher around it.
class ImapHandler : public net::Handler {
 public:
  ImapHandler(std::shared_ptr<Server::State> st, std::shared_ptr<Live> live,
              std::shared_ptr<Session> session)
      : st_(std::move(st)),
        live_(std::move(live)),
        held_(std::move(session)),
        session_(*held_),
        store_(st_->store),
        cfg_(st_->config.imap),
        login_by_(std::chrono::steady_clock::now() +
                  std::chrono::seconds(st_->config.security.login_timeout_s)) {}
  ~ImapHandler() override {
    live_->watch.reset();
    live_->watching.reset();
    live_->wake.cancel();
  }

  std::string greeting() override { return session_.greeting(); }
  awaitable<std::string> feed(std::string bytes) override {
    const std::function<void()> step = [&] { session_.receive(bytes); };
    co_return co_await call(step);
  }
  bool has_buffered_commands() const override { return session_.has_buffered_commands(); }
  std::optional<net::AuthRequest> take_auth() override { return session_.take_auth(); }
  awaitable<std::string> auth_done(net::LoginResult result) override {
    const std::function<void()> step = [&] {
      if (result.unavailable) {
        session_.auth_unavailable();
      } else if (result.over_limit) {
        session_.auth_over_limit();
      } else {
        session_.auth_result(result.account);
      }
    };
    co_return co_await call(step);
  }
  // During IDLE, changes to the selected mailbox wake the pusher.
  awaitable<void> before_read() override {
    const bool idle = session_.idling();
    const auto watch = idle ? session_.selected_mailbox() : std::nullopt;
    if (watch != live_->watching) {
      live_->watch.reset();
      live_->watching = watch;
      if (watch) {
        std::weak_ptr<Live> weak = live_;
        live_->watch = store_.subscribe(*watch, [weak] {
          auto l = weak.lock();
          if (!l) return;
          asio::post(l->strand, [l] {
            l->wake_pending = true;
            l->wake.cancel();
          });
        });
      }
    }
    if (idle && !pusher_) {
      pusher_ = true;
      ++live_->idle_generation;
      live_->wake_pending = true;  // report what happened before IDLE began
      asio::co_spawn(live_->strand, idle_pusher(st_, live_, held_), net::log_end("imap idle"));
    } else if (!idle && pusher_) {
      pusher_ = false;
      live_->wake.cancel();  // the pusher sees it is no longer watching
    }
    co_return;
  }
  bool starttls_requested() const override { return session_.starttls_requested(); }
  void tls_established() override { session_.tls_established(); }
  bool closed() const override { return session_.closed(); }
  Offenses offenses() const override { return {session_.bad_answers(), 0}; }
  bool between_commands() const override { return session_.between_commands(); }
  bool partial_line() const override { return session_.partial_line(); }
  std::uint64_t lines_received() const override { return session_.lines_received(); }
  // Before login a client gets a minute per command (RFC 9051 5.4's 30
  // minutes are for authenticated sessions), within [security]
  // login_timeout_s.
  std::chrono::seconds read_timeout() const override {
    if (session_.idling()) return std::chrono::seconds(cfg_.idle_timeout_s);
    if (session_.authenticated()) return std::chrono::seconds(cfg_.autologout_s);
    return net::before_login(login_by_, std::chrono::seconds(60));
  }

 private:
  // Runs `step` and the writes it leads to on the session's strand: one
  // hop there and back per batch of input, as for a read.
  awaitable<std::string> call(const std::function<void()>& step) {
    co_return co_await asio::co_spawn(live_->work, step_and_write(store_, session_, step),
                                      use_awaitable);
  }

  std::shared_ptr<Server::State> st_;
  std::shared_ptr<Live> live_;
  std::shared_ptr<Session> held_;
  Session& session_;
  projections::Store& store_;
  const config::Imap& cfg_;
  std::chrono::steady_clock::time_point login_by_;
  bool pusher_ = false;
};

awaitable<void> serve(std::shared_ptr<Server::State> st, tcp::socket socket,
                      config::Listener listener, Strand strand, asio::ip::address address) {
  const auto snapshot = std::atomic_load(&st->live);
  const auto& cfg = *snapshot;
  // The certificate in force when the connection came, to its end.
  const std::shared_ptr<ssl::context> tls = st->tls ? st->tls->current() : nullptr;
  // The client's address: the peer's, or what a trusted proxy's PROXY
  // header said.
  const std::string remote_ip = address.to_string();
  const std::string session_id = fmt::format("i{:x}", st->next_session.fetch_add(1));
  auto live = std::make_shared<Live>(std::move(socket), strand, st->pool);
  if (!st->listeners.track(live)) co_return;
  Limits limits;
  limits.max_line_before_auth = static_cast<std::size_t>(cfg.imap.max_line_before_auth);
  limits.max_line_after_auth = static_cast<std::size_t>(cfg.imap.max_line_after_auth);
  limits.append_limit = static_cast<std::size_t>(cfg.imap.append_limit);
  limits.search_timeout = std::chrono::seconds(cfg.imap.search_timeout_s);
  limits.allow_request = st->guard.requests_of(address);
  const bool implicit = listener.tls == config::TlsMode::implicit;
  SessionInfo info{cfg.server.hostname, remote_ip, session_id,
                   tls != nullptr,      implicit,  cfg.imap.allow_plaintext_auth};
  auto session = std::make_shared<Session>(info, limits, st->store, st->shared);
  ImapHandler handler(st, live, session);
  const std::size_t buffer = net::read_buffer_size(cfg, 4096);
  net::DriverOptions options{tls.get(),        implicit,   buffer,     schemas::Protocol::imap,
                             remote_ip,        session_id, &st->store, &st->throttle,
                             &st->per_account, &st->guard, "* BYE "};
  co_await net::drive(live, handler, std::move(options));
}

}  // namespace

Server::Server(asio::io_context& io, const config::Config& config, projections::Store& store,
               net::TlsContexts* tls, net::AuthThrottle& throttle, net::Guard& guard)
    : state_(std::make_shared<State>(io, config, store, tls, throttle, guard)) {}

Server::~Server() {
  stop();
  state_->pool.join();
}

void Server::reload(const config::Config& config) {
  auto st = state_;
  std::atomic_store(&st->live, std::make_shared<const config::Config>(config));
}

void Server::stop() {
  state_->listeners.stop();
}

void Server::abort() {
  state_->listeners.abort();
}

void Server::listen(const config::Listener& listener) {
  auto st = state_;
  st->listeners.listen(listener, st->tls != nullptr,
                       [st, listener](tcp::socket socket, Strand strand, asio::ip::address client) {
                         return serve(st, std::move(socket), listener, strand, client);
                       });
}

}  // namespace a3::imap
