#include "frontends/pop3/server.h"

#include <atomic>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "frontends/net/driver.h"
#include "frontends/net/listener.h"
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
  net::TlsContexts* tls;  // null: no TLS
  net::AuthThrottle& throttle;
  net::Guard& guard;  // the daemon's, shared with the other protocols
  // What SIGHUP may change (limits, access lists, TLS policy): each new
  // connection takes the one in force (std::atomic_load).
  std::shared_ptr<const config::Config> live = std::make_shared<const config::Config>(config);
  Maildrops maildrops;
  asio::thread_pool pool{4};
  net::Listeners listeners{io,
                           guard,
                           "pop3",
                           "-ERR [SYS/TEMP] Too many connections\r\n",
                           "-ERR [SYS/TEMP] Server shutting down\r\n",
                           "-ERR [SYS/PERM] "};
  net::SessionLimit per_account{config.pop3.max_connections_per_user};
  std::atomic<std::uint64_t> next_session{1};
};

namespace {

// The POP3 session behind the driver. Its work (which reads the store and
// may wait for the log at QUIT) runs on the server's pool, one call at a
// time.
class Pop3Handler : public net::Handler {
 public:
  Pop3Handler(Session& session, projections::Store& store, asio::thread_pool& pool, int timeout_s,
              int login_timeout_s)
      : session_(session),
        store_(store),
        pool_(pool),
        timeout_s_(timeout_s),
        login_by_(std::chrono::steady_clock::now() + std::chrono::seconds(login_timeout_s)) {}

  std::string greeting() override { return session_.greeting(); }
  awaitable<std::string> feed(std::string bytes) override {
    co_return co_await on_pool([&] { session_.receive(bytes); });
  }
  bool has_buffered_commands() const override { return session_.has_buffered_commands(); }
  std::optional<net::AuthRequest> take_auth() override { return session_.take_auth(); }
  awaitable<std::string> auth_done(net::LoginResult result) override {
    co_return co_await on_pool([&] {
      if (result.unavailable) {
        session_.auth_unavailable();
      } else if (result.over_limit) {
        session_.auth_over_limit();
      } else {
        session_.auth_result(result.account);
      }
    });
  }
  // QUIT's expunge: awaited without holding a thread.
  awaitable<std::optional<std::string>> more() override {
    auto update = session_.take_update();
    if (!update) co_return std::nullopt;
    std::vector<schemas::Event> events;
    events.push_back(std::move(*update));
    const auto r = co_await store_.execute(std::move(events));
    if (r) {
      session_.update_done(r->front());
    } else {
      session_.update_done(r.error());
    }
    co_return session_.take_output();
  }
  bool starttls_requested() const override { return session_.starttls_requested(); }
  void tls_established() override { session_.tls_established(); }
  bool closed() const override { return session_.closed(); }
  Offenses offenses() const override { return {session_.bad_answers(), 0}; }
  bool between_commands() const override { return session_.between_commands(); }
  bool partial_line() const override { return session_.partial_line(); }
  std::uint64_t lines_received() const override { return session_.lines_received(); }
  // RFC 1939 3: an autologout timer of at least 10 minutes (before login,
  // within [security] login_timeout_s).
  std::chrono::seconds read_timeout() const override {
    const std::chrono::seconds timeout(timeout_s_);
    return session_.authenticated() ? timeout : net::before_login(login_by_, timeout);
  }

 private:
  template <typename F>
  awaitable<std::string> on_pool(F&& work) {
    co_await net::run_on(pool_.get_executor(), work);
    co_return session_.take_output();
  }

  Session& session_;
  projections::Store& store_;
  asio::thread_pool& pool_;
  int timeout_s_;
  std::chrono::steady_clock::time_point login_by_;
};

awaitable<void> serve(std::shared_ptr<Server::State> st, tcp::socket socket,
                      config::Listener listener, net::Strand strand, asio::ip::address address) {
  const auto snapshot = std::atomic_load(&st->live);
  const auto& cfg = *snapshot;
  // The certificate in force when the connection came, to its end.
  const std::shared_ptr<ssl::context> tls = st->tls ? st->tls->current() : nullptr;
  // The client's address: the peer's, or what a trusted proxy's PROXY
  // header said.
  const std::string remote_ip = address.to_string();
  const std::string session_id = fmt::format("p{:x}", st->next_session.fetch_add(1));
  auto live = std::make_shared<net::Connection>(std::move(socket), strand);
  if (!st->listeners.track(live)) co_return;
  const bool implicit = listener.tls == config::TlsMode::implicit;
  SessionInfo info{cfg.server.hostname, remote_ip, session_id,
                   tls != nullptr,      implicit,  cfg.pop3.allow_plaintext_auth};
  // Destroyed on this coroutine's exit, which releases the maildrop.
  Limits limits;
  limits.allow_request = st->guard.requests_of(address);
  Session session(info, limits, st->store, st->maildrops);
  Pop3Handler handler(session, st->store, st->pool, cfg.pop3.timeout_s,
                      cfg.security.login_timeout_s);
  const std::size_t buffer = net::read_buffer_size(cfg, 4096);
  net::DriverOptions options{
      tls.get(),         implicit,   buffer,        schemas::Protocol::pop3, remote_ip,
      session_id,        &st->store, &st->throttle, &st->per_account,        &st->guard,
      "-ERR [SYS/TEMP] "};
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
  st->listeners.listen(
      listener, st->tls != nullptr,
      [st, listener](tcp::socket socket, net::Strand strand, asio::ip::address client) {
        return serve(st, std::move(socket), listener, strand, client);
      });
}

}  // namespace a3::pop3
