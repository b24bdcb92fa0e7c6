// The one connection driver every protocol runs on: the read loop, implicit
// TLS and STARTTLS/STLS, a deadline per phase, the login step, pipelined
// commands held back while output is unsent, and serialised writes. A
// protocol brings a Handler: its sans-I/O session behind a few calls, and
// where that session's work runs.
#pragma once

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "frontends/net/auth.h"
#include "frontends/net/guard.h"
#include "frontends/net/listener.h"
#include "frontends/net/login.h"
#include "frontends/net/sasl.h"
#include "projections/store.h"
#include "schemas/event.h"

namespace a3::net {

// What the driver asks of a protocol. Each call is awaited in turn on the
// connection's strand, never two at once: an implementation that moves its
// session's work to a pool returns once that work is done.
class Handler {
 public:
  virtual ~Handler() = default;

  virtual std::string greeting() = 0;
  // Feeds received bytes; feed("") goes on with held-back pipelined
  // commands. Returns what to send.
  virtual boost::asio::awaitable<std::string> feed(std::string bytes) = 0;
  // Commands are buffered, waiting for the output to be sent.
  virtual bool has_buffered_commands() const { return false; }
  // A login waiting for its password check, and its verdict.
  virtual std::optional<AuthRequest> take_auth() = 0;
  virtual boost::asio::awaitable<std::string> auth_done(LoginResult result) = 0;
  // Protocol work that follows its commands (SMTP: deliver an accepted
  // message). Returns what to send, or nullopt when there was none.
  virtual boost::asio::awaitable<std::optional<std::string>> more() { co_return std::nullopt; }
  // Before each read (IMAP: start or stop watching a mailbox during IDLE).
  virtual boost::asio::awaitable<void> before_read() { co_return; }

  // No command in hand (no partial line, literal, message or SASL
  // exchange): a stopping server says goodbye only then.
  virtual bool between_commands() const { return true; }
  // Part of a command line is in hand (or an over-long one is being
  // skipped). More of its bytes do not move the deadline: a line must
  // arrive whole within the timeout that started with its first byte (no
  // slow-loris by trickling).
  virtual bool partial_line() const { return false; }
  // Complete lines taken so far: a partial line after a complete one is a
  // new line, whose deadline starts now.
  virtual std::uint64_t lines_received() const { return 0; }

  virtual bool starttls_requested() const = 0;
  virtual void tls_established() = 0;
  virtual bool closed() const = 0;
  // Offenses so far (counts since the session began): the driver reports
  // each new one to the guard.
  struct Offenses {
    std::uint64_t protocol_errors = 0;     // commands answered as the client's error
    std::uint64_t unknown_recipients = 0;  // SMTP RCPT TO an unknown user
    friend bool operator==(const Offenses&, const Offenses&) = default;
  };
  virtual Offenses offenses() const { return {}; }
  // How long the client may stay silent now (idle, authenticated, ...).
  virtual std::chrono::seconds read_timeout() const = 0;
};

// The guide's [performance] io_buffer_size, or the protocol's own size.
inline std::size_t read_buffer_size(const config::Config& c, std::size_t protocol_default) {
  return c.performance.io_buffer_size > 0 ? static_cast<std::size_t>(c.performance.io_buffer_size)
                                          : protocol_default;
}

// An unauthenticated session's read timeout: `timeout`, but no longer than
// what is left of its [security] login_timeout_s (`login_by`): a client
// that never logs in is closed then, however busy it keeps itself.
inline std::chrono::seconds before_login(std::chrono::steady_clock::time_point login_by,
                                         std::chrono::seconds timeout) {
  const auto left =
      std::chrono::ceil<std::chrono::seconds>(login_by - std::chrono::steady_clock::now());
  return std::clamp(left, std::chrono::seconds(0), timeout);
}

struct DriverOptions {
  boost::asio::ssl::context* tls = nullptr;  // null: no TLS at all
  bool implicit_tls = false;
  std::size_t read_buffer = 4096;
  schemas::Protocol protocol = schemas::Protocol::unknown;
  std::string remote_ip;
  std::string session_id;
  projections::Store* store = nullptr;  // for logins
  AuthThrottle* throttle = nullptr;
  SessionLimit* per_account = nullptr;  // null: no limit on an account's sessions
  // Offenses (failed logins, protocol errors, unknown recipients) go to
  // the guard; a session it bans reads `bye`, the reason and CRLF, and is
  // closed (`bye`: "421 4.7.0 host ", "* BYE ", "-ERR [SYS/TEMP] ").
  Guard* guard = nullptr;
  std::string bye;
};

// Runs one connection to its end (the client's QUIT/LOGOUT, a deadline, a
// closed socket or the server's stop).
boost::asio::awaitable<void> drive(std::shared_ptr<Connection> connection, Handler& handler,
                                   DriverOptions options);

// One write at a time on a connection, whoever writes (the read loop, an
// IMAP IDLE pusher).
boost::asio::awaitable<void> write(std::shared_ptr<Connection> connection, std::string data);

// Runs `work` on `ex` (a pool, or a strand of one: the session's work that
// may read the store or wait for the log, never on an I/O thread) and
// resumes the caller on its own executor.
//
// `work` is taken by reference: it lives in the caller's full expression,
// which lasts until run_on completes. (GCC 12 destroys a closure passed by
// value to a coroutine twice, and mishandles coroutine lambdas' captures.)
template <typename F>
boost::asio::awaitable<void> invoke(F& work) {
  work();
  co_return;
}
template <typename Executor, typename F>
boost::asio::awaitable<void> run_on(Executor ex, F&& work) {
  co_await boost::asio::co_spawn(ex, invoke(work), boost::asio::use_awaitable);
}

// The completion handler of a coroutine spawned for a connection: logs how
// it ended (a client hanging up is not worth more than debug).
std::function<void(std::exception_ptr)> log_end(std::string what);

}  // namespace a3::net
