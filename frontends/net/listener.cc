#include "frontends/net/listener.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/network.h"
#include "frontends/net/driver.h"
#include "frontends/net/guard.h"
#include "frontends/net/proxy.h"

#include <algorithm>
#include <atomic>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace a3::net {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using namespace std::chrono_literals;

void Connection::close() {
  boost::system::error_code ec;
  conn.socket().close(ec);
  timer.cancel();
}

void Connection::set_deadline(std::chrono::steady_clock::time_point at) {
  const bool earlier = at < deadline;
  deadline = at;
  if (earlier) timer.cancel();
}

awaitable<void> watchdog(std::shared_ptr<Connection> c) {
  while (!c->done) {
    c->timer.expires_at(c->deadline);
    boost::system::error_code ec;
    co_await c->timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (!c->done && std::chrono::steady_clock::now() >= c->deadline) {
      c->conn.socket().close(ec);
      co_return;
    }
  }
}

void ConnectionLimits::set(const config::Security& security) {
  max_total_ = security.max_connections;
  max_per_ip_ = security.max_connections_per_ip;
}

struct ConnectionLimits::Slot {
  Slot(std::shared_ptr<Counts> c, asio::ip::address a) : counts(std::move(c)), ip(a) {}
  ~Slot() {
    std::lock_guard lock(counts->mu);
    --counts->total;
    if (auto it = counts->per_ip.find(ip); it != counts->per_ip.end() && --it->second == 0)
      counts->per_ip.erase(it);
  }
  std::shared_ptr<Counts> counts;  // not the limits: a slot may outlive them
  asio::ip::address ip;
};

std::shared_ptr<void> ConnectionLimits::admit(const asio::ip::address& address) {
  // One client, one count: a dual-stack listener sees IPv4 clients as
  // ::ffff:a.b.c.d, an IPv4 one as a.b.c.d.
  const asio::ip::address ip = unmapped(address);
  std::lock_guard lock(counts_->mu);
  auto it = counts_->per_ip.try_emplace(ip, 0).first;
  if (counts_->total >= static_cast<std::size_t>(max_total_.load()) ||
      it->second >= static_cast<std::size_t>(max_per_ip_.load())) {
    if (it->second == 0) counts_->per_ip.erase(it);
    return nullptr;
  }
  auto slot = std::make_shared<Slot>(counts_, ip);  // before counting: it may throw
  ++counts_->total;
  ++it->second;
  return slot;
}

Listeners::Listeners(asio::io_context& io, Guard& guard, std::string name, std::string busy,
                     std::string goodbye, std::string refused)
    : io_(io),
      guard_(guard),
      name_(std::move(name)),
      busy_(std::move(busy)),
      goodbye_(std::move(goodbye)),
      refused_(std::move(refused)) {}

bool Listeners::track(const std::shared_ptr<Connection>& c) {
  std::lock_guard lock(mu_);
  if (stopping_) return false;
  std::erase_if(live_, [](const std::weak_ptr<Connection>& w) { return w.expired(); });
  live_.push_back(c);
  return true;
}

void Listeners::stop() {
  std::vector<std::weak_ptr<Connection>> live;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    live = live_;
  }
  asio::post(io_, [this] {
    for (auto& a : acceptors_) {
      boost::system::error_code ec;
      a->close(ec);
    }
  });
  for (auto& w : live) {
    auto c = w.lock();
    if (!c) continue;
    asio::post(c->strand, [c, goodbye = goodbye_] {
      c->goodbye = goodbye;
      c->stopping = true;
      if (c->done) return;
      if (!c->greeted) return c->close();
      // Waiting for the next command: end the wait, and the driver says
      // goodbye. Inside one, the driver says it once the command is done.
      // (Not while a write is in flight, e.g. IDLE's pusher: a cancel would
      // cut it; the driver says goodbye after the client's next word, or
      // abort() closes the connection after the grace period.)
      boost::system::error_code ec;
      if (!c->busy && !c->writing) c->conn.socket().cancel(ec);
    });
  }
}

void Listeners::abort() {
  std::vector<std::weak_ptr<Connection>> live;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    live = live_;
  }
  for (auto& w : live) {
    if (auto c = w.lock()) asio::post(c->strand, [c] { c->close(); });
  }
}

namespace {

// How long a trusted proxy has to send its header.
constexpr auto kProxyHeaderTimeout = 10s;

// Reads exactly a PROXY header off `socket` (never a byte of the client's
// own: a v1 line a byte at a time, a v2 header by its length); nullopt on
// a malformed or late header, or a closed connection.
awaitable<std::optional<proxy::Header>> read_proxy_header(tcp::socket& socket, std::string& why) {
  std::string head;
  boost::system::error_code ec;
  for (;;) {
    const proxy::Result r = proxy::parse(head);
    if (r.status == proxy::Status::ok) co_return r.header;
    if (r.status == proxy::Status::invalid) {
      why = r.error;
      co_return std::nullopt;
    }
    // v2: the fixed part, then its announced length; v1: one octet more.
    std::size_t want = 1;
    if (head.size() >= 12 && head[0] == '\r') {
      want = head.size() < proxy::kV2Fixed ? proxy::kV2Fixed - head.size()
                                           : proxy::kV2Fixed +
                                                 ((static_cast<unsigned char>(head[14]) << 8) |
                                                  static_cast<unsigned char>(head[15])) -
                                                 head.size();
    }
    const std::size_t at = head.size();
    head.resize(at + want);
    co_await asio::async_read(socket, asio::buffer(head.data() + at, want),
                              asio::redirect_error(use_awaitable, ec));
    if (ec) {
      why = ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor
                ? "no complete header within 10 s"
                : ec.message();
      co_return std::nullopt;
    }
  }
}

}  // namespace

awaitable<void> Listeners::proxied(Listeners* self, tcp::socket accepted, asio::ip::address peer,
                                   Serve serve, std::shared_ptr<void> /*waiting*/) {
  // Shared with the deadline's handler, which may run after this frame is
  // gone (it expired just as the header came): it then finds nothing.
  auto socket = std::make_shared<tcp::socket>(std::move(accepted));
  asio::steady_timer deadline(co_await asio::this_coro::executor, kProxyHeaderTimeout);
  deadline.async_wait([weak = std::weak_ptr<tcp::socket>(socket)](boost::system::error_code ec) {
    if (ec) return;
    if (auto s = weak.lock()) s->close(ec);  // the read below then fails
  });
  std::string why;
  const auto header = co_await read_proxy_header(*socket, why);
  deadline.cancel();
  boost::system::error_code ec;
  if (!header) {
    logging::log(spdlog::level::debug, {self->name_, "", peer.to_string(), ""},
                 "PROXY header refused: {}; closed", why);
    metrics::connection_refused(self->name_, "bad_proxy_header");
    socket->close(ec);
    co_return;
  }
  if (self->is_stopping()) {
    socket->close(ec);
    co_return;
  }
  // LOCAL (a health check) and UNKNOWN keep the proxy's own address.
  const asio::ip::address client = header->source ? unmapped(header->source->address()) : peer;
  self->start(std::move(*socket), client, serve);
}

bool Listeners::is_stopping() {
  std::lock_guard lock(mu_);
  return stopping_;
}

void Listeners::start(tcp::socket socket, const asio::ip::address& ip, const Serve& serve) {
  boost::system::error_code ec;
  // A blocked or banned network gets nothing, not even a greeting.
  if (const auto why = guard_.refuses(ip)) {
    logging::log(spdlog::level::debug, {name_, "", ip.to_string(), ""}, "{}; closed", *why);
    metrics::connection_refused(name_, *why);
    socket.close(ec);
    return;
  }
  // A connection is a request too (the guide's rate limit).
  const bool over_rate = !guard_.request(ip);
  auto slot = over_rate ? nullptr : guard_.limits().admit(ip);
  if (!slot) {
    metrics::connection_refused(name_, over_rate ? "rate" : "limit");
    asio::write(socket, asio::buffer(busy_), ec);
    socket.close(ec);
    return;
  }
  // The access lists' countries (after the limits: a flood from a refused
  // country is limited like any other).
  if (!refused_.empty()) {
    if (const auto why = guard_.access()->refuses_country(ip)) {
      logging::log(spdlog::level::debug, {name_, "", ip.to_string(), ""}, "{}; closed", *why);
      metrics::connection_refused(name_, "country");
      asio::write(socket, asio::buffer(refused_ + *why + "\r\n"), ec);
      socket.close(ec);
      return;
    }
  }
  metrics::connection_opened(name_);
  auto strand = asio::make_strand(io_);
  asio::co_spawn(
      strand, serve(std::move(socket), strand, ip),
      [slot = std::move(slot), name = name_, ip](std::exception_ptr e) mutable {
        // How a session ended: normal close, timeout or error.
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const boost::system::system_error& se) {
            if (se.code() != asio::error::eof && se.code() != asio::error::operation_aborted) {
              logging::log(spdlog::level::debug, {name, "", ip.to_string(), ""},
                           "session ended: {}", se.what());
            }
          } catch (const std::exception& ex) {
            logging::log(spdlog::level::warn, {name, "", ip.to_string(), ""}, "session failed: {}",
                         ex.what());
            metrics::error("session");
          }
        }
        metrics::connection_closed(name);
        slot.reset();  // counted until now
      });
}

void Listeners::listen(const config::Listener& listener, bool have_tls, Serve serve) {
  if (listener.tls == config::TlsMode::implicit && !have_tls) {
    throw std::runtime_error(fmt::format("{} listener {} needs [tls] certificate and private_key",
                                         listener.protocol, listener.bind));
  }
  auto acceptor = std::make_unique<tcp::acceptor>(io_);
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
  acceptors_.push_back(std::move(acceptor));
  asio::co_spawn(
      io_,
      [this, a, listener, serve]() -> awaitable<void> {
        for (;;) {
          // A failed accept (a reset connection, no file descriptors left)
          // must never stop the listener: only closing it does.
          boost::system::error_code ec;
          tcp::socket socket = co_await a->async_accept(asio::redirect_error(use_awaitable, ec));
          if (ec == asio::error::operation_aborted || !a->is_open()) co_return;
          if (ec) {
            spdlog::warn("{}: accept on {} failed: {}", name_, listener.bind, ec.message());
            asio::steady_timer backoff(io_, 100ms);
            co_await backoff.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
          }
          const auto ip = socket.remote_endpoint(ec).address();
          if (ec) continue;  // already gone
          if (!listener.proxy_protocol) {
            start(std::move(socket), ip, serve);
            continue;
          }
          // Only a trusted proxy may say who the client is.
          if (!guard_.trusted_proxy(ip)) {
            logging::log(spdlog::level::debug, {name_, "", ip.to_string(), ""},
                         "not in trusted_proxies: closed before a PROXY header");
            metrics::connection_refused(name_, "untrusted_proxy");
            socket.close(ec);
            continue;
          }
          // Waiting for headers counts against max_connections: a proxy
          // that opens connections and says nothing cannot take every
          // file descriptor.
          if (waiting_headers_.load() >= guard_.limits().max_total()) {
            metrics::connection_refused(name_, "limit");
            socket.close(ec);
            continue;
          }
          ++waiting_headers_;
          std::shared_ptr<void> waiting(static_cast<void*>(this), [](void* self) {
            --static_cast<Listeners*>(self)->waiting_headers_;
          });
          auto strand = asio::make_strand(io_);
          asio::co_spawn(strand, proxied(this, std::move(socket), ip, serve, std::move(waiting)),
                         log_end(name_ + " PROXY header"));
        }
      },
      [this, listener](std::exception_ptr e) {
        if (e) spdlog::debug("{}: listener {} stopped", name_, listener.bind);
      });
  spdlog::info("{}: listening on {} ({})", name_, listener.bind, listener.protocol);
}

}  // namespace a3::net
