#include "frontends/smtp/server.h"
#include "common/logging.h"

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
#include "common/metrics.h"
#include "common/network.h"
#include "delivery/authentication.h"
#include "frontends/net/auth.h"
#include "frontends/net/conn.h"
#include "frontends/net/driver.h"
#include "frontends/net/listener.h"
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
  net::TlsContexts* tls;  // null: no TLS
  net::AuthThrottle& throttle;
  net::Guard& guard;  // the daemon's, shared with the other protocols
  // What SIGHUP may change (limits, access lists, TLS policy): each new
  // connection takes the one in force (std::atomic_load).
  std::shared_ptr<const config::Config> live = std::make_shared<const config::Config>(config);
  net::Listeners listeners{io, guard, "smtp", "421 4.7.0 Too many connections\r\n",
                           "421 4.3.2 Server shutting down\r\n"};
  // The sessions' commands (recipient checks read the store): never on an
  // I/O thread.
  asio::thread_pool pool{2};
  std::atomic<std::uint64_t> next_session{1};
  // Keys are read at start-up: a bad one stops it with the file's name.
  std::unique_ptr<delivery::DkimSigner> dkim =
      config.outbound.dkim.empty() ? nullptr
                                   : std::make_unique<delivery::DkimSigner>(config.outbound.dkim);
  // SPF, DKIM and DMARC of what the MX port receives: their DNS lookups
  // block, so they run here, at most this many messages at once.
  std::unique_ptr<delivery::Authenticator> authenticator = make_authenticator(config);
  asio::thread_pool checks{4};

  static std::unique_ptr<delivery::Authenticator> make_authenticator(const config::Config& c) {
    if (!c.smtp.check_spf && !c.smtp.check_dkim && !c.smtp.check_dmarc) return nullptr;
    delivery::Authenticator::Options o;
    o.hostname = c.server.hostname;
    o.resolvers = c.outbound.resolvers;
    o.dns_timeout = std::chrono::seconds(c.smtp.check_dns_timeout_s);
    // A message's lookups together: a few queries' worth, whatever its
    // records ask for (well within the client's wait for the reply).
    o.check_budget = 4 * o.dns_timeout;
    o.spf = c.smtp.check_spf;
    o.dkim = c.smtp.check_dkim;
    o.dmarc = c.smtp.check_dmarc;
    o.dmarc_reject = c.smtp.dmarc_reject;
    o.dmarc_quarantine = c.smtp.dmarc_quarantine;
    return std::make_unique<delivery::Authenticator>(std::move(o));
  }
};

namespace {

// The SMTP session behind the driver: its commands run on the server's
// pool (recipient checks read the store); a large message goes to the log
// in chunks while it comes in (ADR 0006), and an accepted one is delivered
// through the store, answered once durable.
class SmtpHandler : public net::Handler {
 public:
  SmtpHandler(Server::State& st, Session& session, DeliveryContext ctx, bool checked)
      : st_(st), session_(session), ctx_(std::move(ctx)), checked_(checked) {}

  std::string greeting() override { return session_.greeting(); }

  awaitable<std::string> feed(std::string bytes) override {
    co_await run_session([&] { session_.receive(bytes); });
    if (stream_ && session_.transaction() != stream_transaction_) {
      // Its message was refused or reset: abandoned (the projector drops
      // the chunks), never carried into the next message.
      stream_.reset();
      signing_.reset();
      carry_ = std::string();
    }
    if (check_ && session_.transaction() != check_transaction_) check_.reset();
    if (session_.in_message() && session_.buffered_data() >= StagedStream::kChunkBytes) {
      if (session_.data_refused()) {
        session_.take_data();  // refused at its end anyway: hold nothing
      } else {
        const bool first = !stream_;
        if (!stream_) start_stream();
        std::string taken = session_.take_data();
        if (signing_) signing_->feed(taken);
        check(taken);
        // The message's start, before any of it goes to the log: forged
        // results go now (when its header ends within this piece).
        if (first && checking() && taken.find("\r\n\r\n") != std::string::npos)
          taken = delivery::without_our_results(taken, st_.config.server.hostname);
        carry_ += taken;
        while (carry_.size() >= StagedStream::kChunkBytes) {
          co_await stream_chunk(st_.store, *stream_, chunk_to_,
                                carry_.substr(0, StagedStream::kChunkBytes), ctx_);
          carry_.erase(0, StagedStream::kChunkBytes);
        }
      }
    }
    co_return session_.take_output();
  }

  std::optional<net::AuthRequest> take_auth() override { return session_.take_auth(); }
  awaitable<std::string> auth_done(net::LoginResult result) override {
    co_await net::run_on(st_.pool.get_executor(), [&] {
      if (result.unavailable) {
        session_.auth_unavailable();
      } else {
        session_.auth_result(result.account.has_value(), result.account.value_or(""));
      }
    });
    ctx_.auth_user = session_.authenticated_user();
    co_return session_.take_output();
  }

  awaitable<std::optional<std::string>> more() override {
    auto message = session_.take_message();
    if (!message) co_return std::nullopt;
    ctx_.tls = tls_description_();
    check(message->data);
    // RFC 8601 5: fields that claim our results are removed; the whole
    // message is in hand (none of it went to the log).
    if (!stream_ && checking())
      message->data = delivery::without_our_results(message->data, st_.config.server.hostname);
    // Staged when it already is, or when one copy per recipient account
    // would hold too much.
    const std::size_t copies = std::max<std::size_t>(1, message->envelope.accounts.size());
    if (!stream_ && message->data.size() * copies > StagedStream::kChunkBytes) start_stream();
    if (stream_ && signing_) {
      signing_->feed(message->data);
      ctx_.staged_signature = signing_->finish();
    }
    signing_.reset();
    if (stream_) {
      std::string rest = std::exchange(carry_, std::string()) + message->data;
      message->data = std::string();
      for (std::size_t pos = 0; pos < rest.size(); pos += StagedStream::kChunkBytes) {
        co_await stream_chunk(st_.store, *stream_, chunk_to_,
                              rest.substr(pos, StagedStream::kChunkBytes), ctx_);
      }
    }
    if (check_) {
      const auto results = co_await authenticate(*message);
      if (results.disposition == delivery::Disposition::reject) {
        stream_.reset();  // its chunks are dropped by the projector
        ctx_.staged_signature.reset();
        logging::log(spdlog::level::info, {"smtp", ctx_.session_id, ctx_.remote_ip, ""},
                     "refused a message ({}; {})", results.reject_reason,
                     results.header(st_.config.server.hostname).substr(0, 300));
        co_await run_session(
            [&] { session_.refused(fmt::format("550 5.7.1 {}", results.reject_reason), "dmarc"); });
        co_return session_.take_output();
      }
      ctx_.authentication_results = results.header(st_.config.server.hostname);
      ctx_.authentication = results.summary();
      ctx_.quarantine = results.disposition == delivery::Disposition::quarantine;
    }
    // "Delivered" reports: to senders who are who they say.
    ctx_.success_reports_allowed =
        !checked_ || !session_.authenticated_user().empty() ||
        (ctx_.authentication && ctx_.authentication->spf == "pass" && !ctx_.quarantine);
    co_await find_sender_inbox(message->envelope);
    ctx_.now_ms = now_ms();
    const auto refused = co_await deliver(st_.store, *message, ctx_, stream_ ? &*stream_ : nullptr);
    ctx_.sender_inbox.reset();
    stream_.reset();
    ctx_.staged_signature.reset();
    ctx_.authentication_results.clear();
    ctx_.authentication.reset();
    ctx_.quarantine = false;
    if (refused) {
      logging::log(spdlog::level::warn,
                   {"smtp", ctx_.session_id, ctx_.remote_ip, session_.authenticated_user()},
                   "a message was not delivered ({}); answered {}",
                   projections::to_string(*refused), reply_for(*refused, Stage::data).code);
    }
    auto answer = [&] {
      if (refused) {
        session_.not_delivered(*refused);
      } else {
        session_.delivered(true);
      }
    };
    // The pipelined commands behind the message, if any, go on.
    co_await run_session(answer);
    co_return session_.take_output();
  }

  bool starttls_requested() const override { return session_.starttls_requested(); }
  void tls_established() override { session_.tls_established(); }
  bool closed() const override { return session_.closed(); }
  Offenses offenses() const override {
    return {session_.protocol_errors(), session_.unknown_recipients()};
  }
  bool between_commands() const override { return session_.between_commands(); }
  bool partial_line() const override { return session_.partial_line(); }
  std::uint64_t lines_received() const override { return session_.lines_received(); }
  // Waiting for message data (DATA's lines, BDAT's octets) or for a command.
  std::chrono::seconds read_timeout() const override {
    return std::chrono::seconds(session_.receiving_data() ? st_.config.smtp.data_timeout_s
                                                          : st_.config.smtp.command_timeout_s);
  }

  std::function<std::string()> tls_description_;

 private:
  // Runs session work here, on the I/O thread, with reads that answer from
  // memory only; a command whose lookup would have waited for the disk is
  // kept and run again on the pool, where waiting is allowed.
  template <typename F>
  awaitable<void> run_session(F&& work) {
    {
      projections::Store::MemoryOnlyReads memory_only;
      work();
    }
    if (session_.retry_elsewhere()) {
      co_await net::run_on(st_.pool.get_executor(), [&] { session_.receive(std::string()); });
    }
  }

  // Whether the message coming in is checked: the MX port, a client that is
  // neither trusted nor authenticated, and checks configured.
  bool checking() const {
    return checked_ && st_.authenticator && session_.authenticated_user().empty();
  }

  // Feeds the SPF/DKIM/DMARC check of the message coming in, started with
  // its first bytes.
  void check(std::string_view bytes) {
    if (!checking()) return;
    if (!check_) {
      check_ = st_.authenticator->start();
      check_transaction_ = session_.transaction();
    }
    check_->feed(bytes);
  }

  // The check's DNS lookups block: on the checks pool, then back here.
  awaitable<delivery::AuthenticationResults> authenticate(const Message& message) {
    const auto& env = message.envelope;
    const delivery::Identity who{
        ctx_.remote_ip, env.helo,
        env.mail_from && !env.mail_from->null ? env.mail_from->mailbox.str() : std::string()};
    delivery::AuthenticationResults results;
    auto* check = check_.get();
    co_await net::run_on(st_.checks.get_executor(), [&] { results = check->finish(who); });
    check_.reset();
    co_return results;
  }

  // For "delivered" reports (NOTIFY=SUCCESS): whether the sender is one of
  // our accounts (its report goes to its INBOX), read where reads may wait.
  awaitable<void> find_sender_inbox(const Envelope& env) {
    ctx_.sender_inbox.reset();
    if (env.success_reports.empty() || !env.mail_from || env.mail_from->null) co_return;
    const auto& from = env.mail_from->mailbox;
    const std::string address = ascii::lower(from.local) + "@" + from.domain;
    std::optional<Recipient> inbox;
    co_await net::run_on(st_.pool.get_executor(), [&] {
      const auto account = st_.store.account_for_address(address);
      const auto mailbox = account ? st_.store.mailbox(*account, "INBOX") : std::nullopt;
      if (mailbox) inbox = Recipient{*account, mailbox->id, {}, 0};
    });
    ctx_.sender_inbox = std::move(inbox);
  }

  void start_stream() {
    stream_.emplace();
    stream_transaction_ = session_.transaction();
    // A staged message for other domains is signed as it streams in.
    signing_.reset();
    if (ctx_.dkim && !session_.envelope().outbound.empty())
      signing_ = ctx_.dkim->start(signing_domain(session_.envelope()));
    auto keys = session_.envelope().accounts;
    if (!session_.envelope().outbound.empty()) keys.push_back(outbound_account(ctx_));
    chunk_to_ =
        chunk_keys(keys, [this](std::string_view key) { return st_.store.partition_for(key); });
  }

  Server::State& st_;
  Session& session_;
  DeliveryContext ctx_;
  std::optional<StagedStream> stream_;
  std::unique_ptr<delivery::DkimSigner::Signing> signing_;
  std::uint64_t stream_transaction_ = 0;  // the session's transaction it belongs to
  std::vector<std::string> chunk_to_;
  std::string carry_;   // taken from the session, less than a chunk
  const bool checked_;  // the MX port, and a client outside the trusted networks
  std::unique_ptr<delivery::Authenticator::Check> check_;
  std::uint64_t check_transaction_ = 0;
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
  const std::string session_id = fmt::format("{:x}", st->next_session.fetch_add(1));
  auto live = std::make_shared<net::Connection>(std::move(socket), strand);
  if (!st->listeners.track(live)) co_return;
  StorePolicy policy(st->store, cfg.server.local_domains, cfg.outbound.enabled);
  Limits limits;
  limits.max_message_size = static_cast<std::size_t>(cfg.smtp.max_message_size);
  limits.max_recipients = static_cast<std::size_t>(cfg.smtp.max_recipients);
  limits.max_text_line = static_cast<std::size_t>(cfg.smtp.max_line_length);
  limits.max_errors = cfg.smtp.max_errors;
  limits.reject_bare_lf = cfg.smtp.reject_bare_lf;
  limits.enable_vrfy = cfg.smtp.enable_vrfy;
  limits.allow_request = st->guard.requests_of(address);
  if (st->guard.limits_messages()) {
    limits.allow_message = [&guard = st->guard, address](const std::string& user) {
      return guard.may_send(address, user);
    };
    limits.message_accepted = [&guard = st->guard, address](const std::string& user) {
      guard.sent(address, user);
    };
  }
  const auto access = st->guard.access();
  if (access->has_domains()) {
    limits.refuses_sender = [access](std::string_view domain) {
      return access->refuses_sender(domain);
    };
  }
  const bool implicit = listener.tls == config::TlsMode::implicit;
  SessionInfo info{cfg.server.hostname,
                   remote_ip,
                   tls != nullptr,
                   implicit,
                   listener.protocol != "smtp",
                   cfg.smtp.allow_plaintext_auth};
  for (const auto& n : cfg.outbound.trusted_networks) {
    if (auto net = Network::parse(n); net && net->contains(remote_ip)) info.trusted_relay = true;
  }
  // The access lists' countries: the session greets with 554 and takes
  // only QUIT (RFC 5321 3.1), so the sender learns why and does not retry.
  if (auto why = access->refuses_country(address)) {
    logging::log(spdlog::level::debug, {"smtp", session_id, remote_ip, ""}, "{}", *why);
    metrics::connection_refused("smtp", "country");
    info.refused = std::move(*why);
  }
  Session session(info, limits, policy);
  const auto protocol =
      listener.protocol == "smtp" ? schemas::Protocol::smtp : schemas::Protocol::submission;
  DeliveryContext ctx{cfg.server.hostname, remote_ip, session_id, "", "", protocol, 0};
  ctx.queue_lifetime_ms = std::int64_t{cfg.outbound.max_queue_lifetime_s} * 1000;
  ctx.dkim = st->dkim.get();
  SmtpHandler handler(*st, session, std::move(ctx),
                      protocol == schemas::Protocol::smtp && !info.trusted_relay);
  handler.tls_description_ = [live] { return live->conn.tls_description(); };
  const std::size_t buffer = net::read_buffer_size(cfg, 16384);
  net::DriverOptions options{tls.get(),
                             implicit,
                             buffer,
                             protocol,
                             remote_ip,
                             session_id,
                             &st->store,
                             &st->throttle,
                             nullptr,
                             &st->guard,
                             "421 4.7.0 " + cfg.server.hostname + " "};
  co_await net::drive(live, handler, std::move(options));
}

}  // namespace

Server::Server(asio::io_context& io, const config::Config& config, projections::Store& store,
               net::TlsContexts* tls, net::AuthThrottle& throttle, net::Guard& guard)
    : state_(std::make_shared<State>(io, config, store, tls, throttle, guard)) {}

Server::~Server() {
  stop();
  state_->pool.join();
  state_->checks.join();
}

// Closes the listeners and every connection, each on its own executor, so
// that all coroutines end and the io_context runs out of work: I/O objects
// must not outlive their io_context's run.
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

}  // namespace a3::smtp
