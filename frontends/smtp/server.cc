#include "frontends/smtp/server.h"

#include <atomic>
#include <map>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "common/ascii.h"
#include "common/clock.h"
#include "frontends/net/auth.h"
#include "frontends/net/conn.h"
#include "frontends/net/listener.h"
#include "frontends/net/login.h"
#include "frontends/smtp/delivery.h"
#include "frontends/smtp/replies.h"
#include "frontends/smtp/session.h"

namespace a3::smtp {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using net::Conn;
using namespace std::chrono_literals;

struct Server::State {
  asio::io_context& io;
  config::Config config;
  projections::Store& store;
  ssl::context* tls;
  net::AuthThrottle& throttle;
  net::Listeners listeners{io, config.security, "smtp", "421 4.7.0 Too many connections\r\n"};
  std::atomic<std::uint64_t> next_session{1};
};

namespace {

awaitable<void> serve(std::shared_ptr<Server::State> st, tcp::socket socket,
                      config::Listener listener,
                      asio::strand<asio::io_context::executor_type> strand) {
  const auto& cfg = st->config;
  const std::string remote_ip = socket.remote_endpoint().address().to_string();
  const std::string session_id = fmt::format("{:x}", st->next_session.fetch_add(1));
  auto live = std::make_shared<net::Connection>(std::move(socket), strand);
  if (!st->listeners.track(live)) co_return;
  Conn& conn = live->conn;
  StorePolicy policy(st->store, cfg.server.local_domains);
  Limits limits;
  limits.max_message_size = static_cast<std::size_t>(cfg.smtp.max_message_size);
  limits.max_recipients = static_cast<std::size_t>(cfg.smtp.max_recipients);
  limits.max_text_line = static_cast<std::size_t>(cfg.smtp.max_line_length);
  limits.max_errors = cfg.smtp.max_errors;
  limits.reject_bare_lf = cfg.smtp.reject_bare_lf;
  limits.enable_vrfy = cfg.smtp.enable_vrfy;
  const bool implicit = listener.tls == config::TlsMode::implicit;
  SessionInfo info{cfg.server.hostname,         remote_ip,
                   st->tls != nullptr,          implicit,
                   listener.protocol != "smtp", cfg.smtp.allow_plaintext_auth};
  Session session(info, limits, policy);

  auto& deadline = live->deadline;
  deadline = std::chrono::steady_clock::now() + 30s;  // greeting / TLS handshake
  // Same strand as this coroutine: the two never run at once.
  const auto executor = co_await asio::this_coro::executor;
  asio::co_spawn(executor, net::watchdog(live), [](std::exception_ptr) {});
  struct Done {
    net::Connection& l;
    ~Done() {
      l.done = true;
      l.timer.cancel();
    }
  } mark_done{*live};

  if (implicit) co_await conn.start_tls(*st->tls);
  const std::string greeting = session.greeting();
  co_await conn.write(greeting);
  DeliveryContext ctx{
      cfg.server.hostname,
      remote_ip,
      session_id,
      conn.tls_description(),
      "",
      listener.protocol == "smtp" ? schemas::Protocol::smtp : schemas::Protocol::submission,
      0};
  const auto partition = [&store = st->store](std::string_view key) {
    return store.partition_for(key);
  };
  // A large message goes to the log in chunks while it comes in.
  std::optional<StagedStream> stream;
  std::uint64_t stream_transaction = 0;  // the session's transaction it belongs to
  std::vector<std::string> chunk_to;
  std::string carry;  // taken from the session, less than a chunk
  auto start_stream = [&] {
    stream.emplace();
    stream_transaction = session.transaction();
    chunk_to = chunk_keys(session.envelope().accounts, partition);
  };
  std::array<char, 16384> buf;
  for (;;) {
    deadline = std::chrono::steady_clock::now() +
               std::chrono::seconds(session.starttls_requested() ? 30 : cfg.smtp.command_timeout_s);
    const std::size_t n = co_await conn.read_some(asio::buffer(buf));
    session.receive(std::string_view(buf.data(), n));
    if (stream && session.transaction() != stream_transaction) {
      // Its message was refused or reset: abandoned (the projector drops
      // the chunks), never carried into the next message.
      stream.reset();
      carry = std::string();
    }
    if (session.in_message() && session.buffered_data() >= StagedStream::kChunkBytes) {
      if (session.data_refused()) {
        session.take_data();  // refused at its end anyway: hold nothing
      } else {
        if (!stream) start_stream();
        carry += session.take_data();
        while (carry.size() >= StagedStream::kChunkBytes) {
          auto sent = stream_chunk(st->store, *stream, chunk_to,
                                   carry.substr(0, StagedStream::kChunkBytes), ctx);
          co_await std::move(sent);
          carry.erase(0, StagedStream::kChunkBytes);
        }
      }
    }
    for (;;) {
      if (auto out = session.take_output(); !out.empty()) co_await conn.write(out);
      if (auto request = session.take_auth()) {
        net::LoginContext login{
            st->store, st->throttle,
            listener.protocol == "smtp" ? schemas::Protocol::smtp : schemas::Protocol::submission,
            remote_ip, session_id};
        auto attempt = net::login(login, request->mechanism, request->user, request->password);
        const net::LoginResult result = co_await std::move(attempt);
        if (result.unavailable) {
          session.auth_unavailable();
        } else {
          session.auth_result(result.account.has_value(), result.account.value_or(""));
        }
        ctx.auth_user = session.authenticated_user();
        continue;
      }
      auto message = session.take_message();
      if (!message) break;
      ctx.tls = conn.tls_description();
      // Staged when it already is, or when one copy per recipient account
      // would hold too much.
      const std::size_t copies = std::max<std::size_t>(1, message->envelope.accounts.size());
      if (!stream && message->data.size() * copies > StagedStream::kChunkBytes) start_stream();
      if (stream) {
        std::string rest = std::exchange(carry, std::string()) + message->data;
        message->data = std::string();
        for (std::size_t pos = 0; pos < rest.size(); pos += StagedStream::kChunkBytes) {
          auto sent = stream_chunk(st->store, *stream, chunk_to,
                                   rest.substr(pos, StagedStream::kChunkBytes), ctx);
          co_await std::move(sent);
        }
      }
      ctx.now_ms = now_ms();
      auto delivered = deliver(st->store, *message, ctx, stream ? &*stream : nullptr);
      const auto refused = co_await std::move(delivered);
      stream.reset();
      if (refused) {
        spdlog::warn("smtp {}: a message was not delivered ({}); answered {}", session_id,
                     projections::to_string(*refused), reply_for(*refused, Stage::data).code);
        session.not_delivered(*refused);
      } else {
        session.delivered(true);
      }
    }
    if (session.starttls_requested()) {
      deadline = std::chrono::steady_clock::now() + 30s;  // the handshake
      co_await conn.start_tls(*st->tls);
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
}

// Closes the listeners and every connection, each on its own executor, so
// that all coroutines end and the io_context runs out of work: I/O objects
// must not outlive their io_context's run.
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

}  // namespace a3::smtp
