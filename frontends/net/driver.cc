#include "frontends/net/driver.h"

#include <array>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>

#include "common/logging.h"

namespace a3::net {

namespace asio = boost::asio;
using asio::awaitable;
using namespace std::chrono_literals;

namespace {

// The greeting and a TLS handshake get 30 s (RFC 3207, RFC 9051 6.2.1).
constexpr auto kHandshake = 30s;

using Clock = std::chrono::steady_clock;

// The client's time is timed: its next line, and taking what we write (a
// client that does not read is closed within `timeout`). Our own work (a
// delivery, a login's delay) is not: a command answered late must not lose
// its answer, nor a stored message its 250.
awaitable<void> timed_write(std::shared_ptr<Connection> c, std::string data,
                            std::chrono::seconds timeout) {
  c->set_deadline(Clock::now() + timeout);
  co_await write(c, std::move(data));
  c->set_deadline(Clock::time_point::max());
}

// Reports `n` offenses of `kind` to the guard. Once it bans the client,
// the ban is appended (the guard enforces it already), the client reads
// why (unless its session has closed itself) and true says the session
// ends.
awaitable<bool> report(std::shared_ptr<Connection> c, Handler& h, const DriverOptions& o,
                       const asio::ip::address& ip, Offense kind, std::uint64_t n) {
  if (!o.guard || ip.is_unspecified()) co_return false;
  for (std::uint64_t i = 0; i < n; ++i) {
    Guard::Verdict v = o.guard->offense(ip, kind, {o.protocol, "", o.remote_ip, o.session_id});
    if (!v.banned) continue;
    if (v.ban && o.store) {
      std::vector<schemas::Event> events;
      events.push_back(std::move(*v.ban));
      auto appended = o.store->execute(std::move(events), projections::Store::Wait::durable);
      if (!co_await std::move(appended)) {
        logging::log(spdlog::level::warn,
                     {schemas::to_string(o.protocol), o.session_id, o.remote_ip, ""},
                     "the ban could not be logged; it holds on this node until it expires");
      }
    }
    if (!h.closed()) co_await timed_write(c, o.bye + v.reason + "\r\n", h.read_timeout());
    co_return true;
  }
  co_return false;
}

// The offenses the handler counted since `seen`, reported; true once the
// client is banned.
awaitable<bool> report_new(std::shared_ptr<Connection> c, Handler& h, const DriverOptions& o,
                           const asio::ip::address& ip, Handler::Offenses& seen) {
  const Handler::Offenses now = h.offenses();
  const std::uint64_t errors = now.protocol_errors - seen.protocol_errors;
  const std::uint64_t unknown = now.unknown_recipients - seen.unknown_recipients;
  seen = now;
  if (co_await report(c, h, o, ip, Offense::protocol_error, errors)) co_return true;
  co_return co_await report(c, h, o, ip, Offense::unknown_recipient, unknown);
}

}  // namespace

std::function<void(std::exception_ptr)> log_end(std::string what) {
  return [what = std::move(what)](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const boost::system::system_error& se) {
      if (se.code() != asio::error::eof && se.code() != asio::error::operation_aborted &&
          se.code() != asio::error::bad_descriptor) {
        spdlog::debug("{} ended: {}", what, se.what());
      }
    } catch (const std::exception& ex) {
      spdlog::warn("{} failed: {}", what, ex.what());
    }
  };
}

awaitable<void> write(std::shared_ptr<Connection> c, std::string data) {
  while (c->writing) {
    c->write_done.expires_at(std::chrono::steady_clock::time_point::max());
    boost::system::error_code ec;
    co_await c->write_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  c->writing = true;
  struct Release {
    Connection& c;
    ~Release() {
      c.writing = false;
      c.write_done.cancel();
    }
  } release{*c};
  co_await c->conn.write(data);
}

awaitable<void> drive(std::shared_ptr<Connection> c, Handler& h, DriverOptions o) {
  c->deadline = std::chrono::steady_clock::now() + kHandshake;
  asio::co_spawn(c->strand, watchdog(c), log_end("watchdog " + o.session_id));
  struct Done {
    Connection& c;
    ~Done() {
      c.done = true;
      c.timer.cancel();
    }
  } mark_done{*c};

  if (o.implicit_tls) co_await c->conn.start_tls(*o.tls);
  co_await write(c, h.greeting());
  c->greeted = true;
  std::vector<char> buf;
  Clock::time_point line_deadline;
  bool partial = false;                // partial_line() before the last read
  std::uint64_t lines_seen = 0;        // lines_received() then
  std::shared_ptr<void> account_slot;  // held while the session lasts
  boost::system::error_code bad_ip;
  const asio::ip::address ip = asio::ip::make_address(o.remote_ip, bad_ip);
  Handler::Offenses reported;  // the handler's counts already given to the guard
  bool banned = false;
  for (;;) {
    // Busy: inside a command (a message, a literal, a SASL exchange), which
    // a stopping server lets finish. Otherwise the driver alone writes the
    // goodbye, so that it is the last thing the client reads.
    c->busy = !h.between_commands();
    if (c->stopping && !c->busy) {
      co_await timed_write(c, c->goodbye, h.read_timeout());
      break;
    }
    co_await h.before_read();
    // The deadline moves unless the line that was incomplete before the
    // last read still is: a line whose first bytes just came gets the
    // whole timeout from now, and no more however it trickles in.
    const bool same_line = h.partial_line() && partial && h.lines_received() == lines_seen;
    if (!same_line) line_deadline = Clock::now() + h.read_timeout();
    c->set_deadline(line_deadline);
    partial = h.partial_line();
    lines_seen = h.lines_received();
    boost::system::error_code ec;
    if (!c->conn.tls() && h.between_commands()) {
      // A plain connection waits for its next command without a read
      // buffer: 10,000 idle clients hold no 16 KiB each. (TLS has buffers
      // of its own; inside a command, the next bytes are due.)
      std::vector<char>().swap(buf);
      co_await c->conn.socket().async_wait(asio::ip::tcp::socket::wait_read,
                                           asio::redirect_error(asio::use_awaitable, ec));
    }
    std::size_t n = 0;
    if (!ec) {
      buf.resize(o.read_buffer);
      n = co_await c->conn.read_some(asio::buffer(buf),
                                     asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec == asio::error::operation_aborted && c->stopping && !c->busy) {
      // Listeners::stop() cancelled the wait for the next command.
      co_await timed_write(c, c->goodbye, h.read_timeout());
      break;
    }
    if (ec) throw boost::system::system_error(ec);
    // Bytes came: a command is in hand until it is answered, and its answer
    // must not be cut by a cancel, nor by the line's deadline.
    c->busy = true;
    c->set_deadline(Clock::time_point::max());
    std::string out = co_await h.feed(std::string(buf.data(), n));
    for (;;) {
      if (!out.empty())
        co_await timed_write(c, std::exchange(out, std::string()), h.read_timeout());
      // (Compared here first: a pipelined burst writes once per command.)
      if (h.offenses() != reported && co_await report_new(c, h, o, ip, reported)) {
        banned = true;
        break;
      }
      if (h.has_buffered_commands()) {
        // Output was held back: the pipelined commands go on.
        out = co_await h.feed(std::string());
        continue;
      }
      if (auto request = h.take_auth()) {
        // A ban made while this session was open (here or on another
        // node) ends it before its next guess.
        if (auto why = o.guard ? o.guard->banned(ip) : std::nullopt) {
          co_await timed_write(c, o.bye + *why + "\r\n", h.read_timeout());
          banned = true;
          break;
        }
        LoginContext ctx{*o.store,    *o.throttle,  o.protocol,
                         o.remote_ip, o.session_id, o.per_account};
        LoginResult result =
            co_await login(ctx, request->mechanism, request->user, request->password);
        if (result.slot) account_slot = result.slot;
        const bool failed = !result.account && !result.unavailable && !result.over_limit;
        out = co_await h.auth_done(std::move(result));
        if (failed) {
          co_await timed_write(c, std::exchange(out, std::string()), h.read_timeout());
          if (co_await report(c, h, o, ip, Offense::auth_failure, 1)) {
            banned = true;
            break;
          }
        }
        continue;
      }
      if (auto more = co_await h.more()) {
        out = std::move(*more);
        continue;
      }
      break;
    }
    if (banned) break;
    if (h.starttls_requested()) {
      c->set_deadline(Clock::now() + kHandshake);
      co_await c->conn.start_tls(*o.tls);
      h.tls_established();
    }
    if (h.closed()) break;
  }
}

}  // namespace a3::net
