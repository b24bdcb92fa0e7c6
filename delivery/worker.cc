#include "delivery/worker.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "common/ascii.h"
#include "common/clock.h"
#include "common/sha256.h"
#include "delivery/dsn.h"
#include "delivery/resolver.h"
#include "delivery/smtp_client.h"

namespace a3::delivery {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using projections::QueueRecipient;
using projections::QueueRecord;
using projections::Store;

WorkerOptions WorkerOptions::from(const config::Config& c) {
  WorkerOptions o;
  o.hostname = c.server.hostname;
  o.local_domains = c.server.local_domains;
  o.outbound = c.outbound;
  o.relay_host = c.smtp.relay_host;
  o.relay_port = c.smtp.relay_port;
  if (c.smtp.relay_auth) {
    o.relay_user = c.smtp.relay_username;
    o.relay_password = c.smtp.relay_password;
    o.relay_auth_missing = o.relay_user.empty() || o.relay_password.empty();
  }
  return o;
}

std::int64_t backoff_ms(const config::Outbound& o, std::uint32_t attempts) {
  std::int64_t delay = std::int64_t{o.retry_initial_s} * 1000;
  const std::int64_t cap = std::int64_t{o.retry_max_s} * 1000;
  for (std::uint32_t i = 1; i < attempts && delay < cap; ++i)
    delay *= 2;
  return std::min(delay, cap);
}

namespace {

const schemas::Actor kActor{schemas::Protocol::system, "", "", "outbound"};

std::string domain_of(const std::string& address) {
  const auto at = address.rfind('@');
  return at == std::string::npos ? "" : ascii::lower(address.substr(at + 1));
}

bool is_ip(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// A domain literal ("[192.0.2.1]") is its own address (RFC 5321 4.1.3).
std::optional<std::string> literal_address(const std::string& domain) {
  if (domain.size() < 3 || domain.front() != '[' || domain.back() != ']') return std::nullopt;
  std::string inner = domain.substr(1, domain.size() - 2);
  if (ascii::istarts_with(inner, "IPv6:")) inner = inner.substr(5);
  if (!is_ip(inner)) return std::nullopt;
  return inner;
}

// Loopback, private, link-local, unspecified or multicast: not a place a
// domain's mail host should send us to (a loop back to ourselves, or a way
// to reach internal services), unless outbound.allow_private_destinations.
bool internal_address(const std::string& text) {
  boost::system::error_code ec;
  auto a = asio::ip::make_address(text, ec);
  if (ec) return true;
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  if (a.is_unspecified() || a.is_loopback() || a.is_multicast()) return true;
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    return b[0] == 10 || b[0] == 0 || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
           (b[0] == 192 && b[1] == 168) || (b[0] == 169 && b[1] == 254) ||
           (b[0] == 100 && (b[1] & 0xc0) == 64);  // RFC 1918, 3927, 6598
  }
  const auto v6 = a.to_v6();
  const auto b = v6.to_bytes();
  return v6.is_link_local() || (b[0] & 0xfe) == 0xfc;  // RFC 4291, 4193
}

// What happened to one recipient in this attempt.
struct Result {
  enum class Kind { delivered, deferred, bounced } kind = Kind::deferred;
  std::string host;  // the server that answered, "" if none
  std::string reply;
  bool dsn_passed = false;  // the server took the DSN parameters: it reports now
};

// The reply code at the start of a reply ("550 5.1.1 ..."), or `fallback`.
int reply_code(const std::string& reply, int fallback) {
  return reply.size() >= 3 && ascii::is_digit(reply[0]) ? std::atoi(reply.substr(0, 3).c_str())
                                                        : fallback;
}

// "mx.example.net[192.0.2.1]:25" -> "mx.example.net", for Remote-MTA.
std::string host_name(const std::string& label) {
  return label.substr(0, label.find('['));
}

Result from_reply(const Reply& r, const std::string& host, bool dsn) {
  if (r.ok()) return {Result::Kind::delivered, host, r.text, dsn};
  if (r.permanent()) return {Result::Kind::bounced, host, r.text, dsn};
  return {Result::Kind::deferred, host, r.text, dsn};
}

}  // namespace

struct Worker::Impl : std::enable_shared_from_this<Impl> {
  Impl(Store& s, WorkerOptions opts) : store(s), o(std::move(opts)) {
    tls.set_verify_mode(asio::ssl::verify_none);  // opportunistic (RFC 7435)
    SSL_CTX_dane_enable(tls.native_handle());     // per connection, where TLSA records say
  }

  Store& store;
  WorkerOptions o;
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::thread thread;
  std::unique_ptr<Resolver> resolver;
  asio::ssl::context tls{asio::ssl::context::tls_client};
  asio::steady_timer wake{io};
  // Connections kept for the next message to the same server.
  ConnectionCache cache;
  Store::Subscription subscription;
  // The entries being delivered. Shared with the deliveries' frames: after
  // stop() gave up waiting, frames destroyed with the io_context only see
  // `closed` and touch nothing else.
  struct Flight {
    std::set<schemas::Uuid> ids;
    bool closed = false;
  };
  std::shared_ptr<Flight> flight = std::make_shared<Flight>();
  std::map<std::string, int> active;  // connections per destination
  bool stopping = false;
  std::mutex ran_mu;
  std::condition_variable ran_cv;
  bool ran_out = false;  // io.run() returned

  bool relay() const { return !o.relay_host.empty(); }

  bool require_tls(const std::string& domain) const {
    for (const auto& d : o.outbound.require_tls)
      if (ascii::iequals(d, domain)) return true;
    return false;
  }

  awaitable<void> sleep(std::chrono::milliseconds d) {
    asio::steady_timer t(io, d);
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
  }

  // The servers to try for `domain`, in order, or a result for everyone.
  awaitable<std::variant<std::vector<Server>, Result>> route(const std::string& domain) {
    std::vector<Server> servers;
    if (relay()) {
      if (is_ip(o.relay_host)) {
        servers.push_back({o.relay_host, o.relay_host, static_cast<std::uint16_t>(o.relay_port)});
        co_return servers;
      }
      const auto a = co_await resolver->addresses(o.relay_host);
      if (a.status != DnsStatus::ok) {
        // Our own relay not resolving is never the recipient's fault.
        co_return Result{Result::Kind::deferred, "",
                         fmt::format("451 4.4.3 Relay host {}: {}", o.relay_host, a.detail)};
      }
      for (const auto& addr : a.addresses)
        servers.push_back({o.relay_host, addr, static_cast<std::uint16_t>(o.relay_port)});
      co_return servers;
    }
    const auto port = static_cast<std::uint16_t>(o.outbound.mx_port);
    const bool allow_internal = o.outbound.allow_private_destinations;
    if (auto lit = literal_address(domain)) {
      if (!allow_internal && internal_address(*lit))
        co_return Result{Result::Kind::bounced, "",
                         fmt::format("550 5.4.4 {} is not a public address", domain)};
      servers.push_back({domain, *lit, port});
      co_return servers;
    }
    const MxAnswer mx = co_await resolver->mx(domain);
    // RFC 7672 2.2.1: DANE only below a DNSSEC-validated MX answer (or a
    // validated absence of MX records: the domain is its own host).
    const bool mx_secure = resolver->validating() && mx.secure;
    if (mx.status == DnsStatus::nxdomain)
      co_return Result{Result::Kind::bounced, "",
                       fmt::format("550 5.1.2 Domain {} does not exist", domain)};
    if (mx.status == DnsStatus::temporary)
      co_return Result{Result::Kind::deferred, "",
                       fmt::format("451 4.4.3 MX lookup for {}: {}", domain, mx.detail)};
    if (mx.null_mx)
      co_return Result{Result::Kind::bounced, "",
                       fmt::format("556 5.1.10 Domain {} accepts no mail (null MX)", domain)};
    std::vector<std::string> hosts;
    if (mx.status == DnsStatus::nodata) {
      hosts.push_back(domain);  // RFC 5321 5.1: the implicit MX
    } else {
      for (const auto& h : mx.hosts)
        hosts.push_back(h.host);
    }
    bool temporary = false;
    std::string why;
    for (const auto& h : hosts) {
      const auto a = co_await resolver->addresses(h);
      if (a.status == DnsStatus::temporary) temporary = true;
      if (a.status != DnsStatus::ok) {
        why = fmt::format("{}: {}", h, a.detail);
        continue;
      }
      // RFC 7672 2.2.2: TLSA records of a host whose addresses validated.
      bool dane = false;
      std::vector<Tlsa> usable;
      // Below a secure MX, a failed or bogus address lookup is no reason to
      // send with less protection (it may be an attacker's doing): the host
      // is skipped for now (RFC 7672 2.1.1).
      if (mx_secure && a.incomplete) {
        temporary = true;
        why = fmt::format("{}: {}", h, a.detail);
        continue;
      }
      if (mx_secure && a.secure) {
        const TlsaAnswer t = co_await resolver->tlsa(h, port);
        if (t.status == DnsStatus::temporary) {
          // Bogus or failed: this host cannot be used safely now.
          temporary = true;
          why = fmt::format("{}: TLSA lookup: {}", h, t.detail);
          continue;
        }
        if (t.status == DnsStatus::ok && t.secure) {
          dane = true;
          // RFC 7672 3.1.3: PKIX-TA and PKIX-EE are not used for SMTP.
          for (const auto& r : t.records)
            if (r.usage == 2 || r.usage == 3) usable.push_back(r);
        }
      }
      for (const auto& addr : a.addresses) {
        if (!allow_internal && internal_address(addr)) {
          why = fmt::format("{} is {}, not a public address", h, addr);
          continue;
        }
        servers.push_back({h, addr, port, dane, usable});
      }
    }
    if (servers.empty()) {
      if (mx.status == DnsStatus::nodata && !temporary)
        co_return Result{Result::Kind::bounced, "",
                         fmt::format("550 5.1.2 Domain {} has no mail server: {}", domain, why)};
      co_return Result{Result::Kind::deferred, "",
                       fmt::format("451 4.4.4 No reachable address for {}: {}", domain, why)};
    }
    co_return servers;
  }

  // One destination's recipients: the first server that takes the
  // transaction decides; servers that fail are skipped.
  awaitable<std::vector<Result>> deliver_group(const QueueRecord& q, const std::string& domain,
                                               const std::vector<const QueueRecipient*>& group,
                                               const std::string& body) {
    std::vector<std::string> rcpts;
    for (const auto* r : group)
      rcpts.push_back(r->address);
    if (relay() && o.relay_auth_missing) {
      // Never to the relay without the AUTH the operator asked for.
      co_return std::vector<Result>(
          rcpts.size(),
          Result{Result::Kind::deferred, "",
                 "451 4.3.5 smtp.relay_auth is on but relay_username/relay_password are not set"});
    }
    auto route_or_result = co_await route(domain);
    if (auto* r = std::get_if<Result>(&route_or_result))
      co_return std::vector<Result>(rcpts.size(), *r);
    const auto& servers = std::get<std::vector<Server>>(route_or_result);
    ClientOptions opts;
    opts.helo = o.hostname;
    opts.connect_timeout_s = o.outbound.connect_timeout_s;
    opts.command_timeout_s = o.outbound.command_timeout_s;
    opts.data_timeout_s = o.outbound.data_timeout_s;
    opts.require_tls = require_tls(domain);
    if (relay()) {
      // Through a relay, TLS is required when any recipient's domain asks.
      for (const auto& r : rcpts)
        opts.require_tls = opts.require_tls || require_tls(domain_of(r));
    }
    opts.auth_user = relay() ? o.relay_user : "";
    opts.auth_password = relay() ? o.relay_password : "";
    Outgoing m{q.mail_from, rcpts, &body, q.eightbit, q.smtputf8};
    for (const auto* r : group) {
      m.notify.push_back(r->notify);
      m.orcpt.push_back(r->orcpt);
    }
    m.envid = q.envid;
    m.ret_headers = q.ret_headers;
    const std::string dest = relay() ? o.relay_host : domain;
    Reply last{0, "no server tried"};
    std::string last_host;
    for (const auto& s : servers) {
      while (active[dest] >= o.outbound.max_connections_per_destination && !stopping)
        co_await sleep(std::chrono::milliseconds(20));
      if (stopping) break;
      ++active[dest];
      const TransactionResult t = co_await cache.send(s, opts, tls, m);
      --active[dest];
      if (!t.session_failed) {
        std::vector<Result> out;
        for (const auto& r : t.recipients)
          out.push_back(from_reply(r, s.label(), t.dsn));
        co_return out;
      }
      last = t.session;
      last_host = s.label();
      if (!t.try_next) break;
    }
    Result r = from_reply(last, last_host, false);
    if (last.code == 0)
      r = Result{Result::Kind::deferred, last_host, "451 4.4.1 " + last.text};  // nobody answered
    co_return std::vector<Result>(rcpts.size(), r);
  }

  // The DSN for `failed` recipients (RFC 3461 4.1: unless NOTIFY says
  // otherwise) and for `relayed` ones (NOTIFY=SUCCESS, delivered to a
  // server that does not report: RFC 3461 5.2.2), never to the null
  // sender, as events that deliver it.
  std::vector<schemas::Event> reports(
      const QueueRecord& q, const std::string& body,
      const std::vector<std::pair<const QueueRecipient*, Result>>& failed,
      const std::vector<std::pair<const QueueRecipient*, Result>>& relayed,
      const std::vector<std::pair<const QueueRecipient*, Result>>& delayed) {
    std::vector<schemas::Event> out;
    if (q.mail_from.empty()) return out;
    Dsn d;
    d.reporting_mta = o.hostname;
    d.to = q.mail_from;
    d.envid = q.envid;
    d.arrival_ms = q.queued_ms;
    d.now_ms = now_ms();
    d.original = &body;
    for (const auto& [r, res] : failed) {
      if (r->notify & schemas::notify_never) continue;
      if (r->notify != 0 && !(r->notify & schemas::notify_failure)) continue;
      const int code = reply_code(res.reply, 500);
      // An expired recipient's last reply was temporary: RFC 3463 5.4.7.
      const bool expired = res.kind == Result::Kind::deferred;
      d.recipients.push_back({r->address, r->orcpt, "failed",
                              expired ? "5.4.7" : status_of(std::max(code, 500), res.reply),
                              host_name(res.host),
                              expired ? "delivery time expired; last: " + res.reply : res.reply});
    }
    for (const auto& [r, res] : relayed) {
      d.recipients.push_back(
          {r->address, r->orcpt, "relayed", "2.0.0", host_name(res.host), res.reply});
    }
    for (const auto& [r, res] : delayed) {
      // RFC 3464 2.3.4: a delay's status is of class 4, whatever the reply says.
      std::string status = status_of(std::clamp(reply_code(res.reply, 400), 400, 499), res.reply);
      if (!status.empty()) status[0] = '4';
      d.recipients.push_back(
          {r->address, r->orcpt, "delayed", status, host_name(res.host), res.reply, q.expires_ms});
    }
    if (d.recipients.empty()) return out;
    // RFC 3461 4.3: the whole message only in a report of failure.
    d.headers_only =
        q.ret_headers || std::none_of(d.recipients.begin(), d.recipients.end(),
                                      [](const DsnRecipient& r) { return r.action == "failed"; });
    const std::string dsn = make_dsn(d);
    // A local sender gets it in the INBOX; others through the queue, from <>.
    if (auto account = store.account_for_address(ascii::lower(q.mail_from))) {
      if (auto inbox = store.mailbox(*account, "INBOX")) {
        schemas::Event e = schemas::make_event(
            *account, kActor,
            schemas::MessageAppended{inbox->id, dsn, d.now_ms, {}, std::nullopt, std::nullopt});
        e.id = schemas::Uuid::derived(fmt::format("dsn-local\n{}\n{}", q.id.str(), q.attempts + 1));
        out.push_back(std::move(e));
        return out;
      }
    }
    schemas::OutboundQueued n;
    // Derived from the entry and the attempt: a retried write queues it once.
    n.queue_id = schemas::Uuid::derived(fmt::format("dsn\n{}\n{}", q.id.str(), q.attempts + 1));
    n.mail_from = "";
    n.recipients.push_back({q.mail_from, schemas::notify_never, ""});
    n.raw = dsn;
    // It carries the original: 8-bit or UTF-8 if that was.
    n.eightbit = q.eightbit;
    n.smtputf8 = q.smtputf8;
    n.expires_ms = d.now_ms + std::int64_t{o.outbound.max_queue_lifetime_s} * 1000;
    schemas::Event e = schemas::make_event(q.account, kActor, std::move(n));
    e.id = std::get<schemas::OutboundQueued>(e.body).queue_id;
    out.push_back(std::move(e));
    return out;
  }

  awaitable<void> deliver(QueueRecord q) {
    struct Done {
      Impl& self;
      std::shared_ptr<Flight> flight;
      schemas::Uuid id;
      ~Done() {
        if (flight->closed) return;  // the worker is gone
        flight->ids.erase(id);
        self.wake.cancel();
      }
    } done{*this, flight, q.id};
    const auto body = store.body(q.blob);
    const std::uint32_t attempt = q.attempts + 1;
    // Recipients by destination (one group through a relay).
    std::map<std::string, std::vector<const QueueRecipient*>> groups;
    for (const auto* r : q.pending())
      groups[relay() ? "" : domain_of(r->address)].push_back(r);
    if (groups.empty()) co_return;
    std::vector<schemas::Event> started;
    for (const auto& [domain, rs] : groups) {
      std::vector<std::string> addrs;
      for (const auto* r : rs)
        addrs.push_back(r->address);
      started.push_back(schemas::make_event(
          q.account, kActor,
          schemas::DeliveryAttempted{q.id, addrs, relay() ? o.relay_host : domain, attempt}));
    }
    if (!(co_await store.execute(std::move(started), Store::Wait::durable, false))) {
      spdlog::warn("outbound: the log does not take attempts; retrying in 5 s");
      co_await sleep(std::chrono::seconds(5));
      co_return;
    }
    std::vector<std::pair<const QueueRecipient*, Result>> results;
    for (const auto& [domain, rs] : groups) {
      std::vector<std::string> addrs;
      for (const auto* r : rs)
        addrs.push_back(r->address);
      std::vector<Result> out;
      if (!body) {
        out.assign(rs.size(), Result{Result::Kind::deferred, "",
                                     "451 4.3.0 The message body is not in the store yet"});
      } else {
        out = co_await deliver_group(q, domain, rs, *body);
      }
      for (std::size_t i = 0; i < rs.size(); ++i)
        results.emplace_back(rs[i], out[i]);
      if (stopping) break;  // the rest is tried again after the restart
    }
    // Stopping: what is known is logged; what was cut short stays due.
    if (stopping) {
      std::erase_if(results, [](const auto& r) { return r.second.kind == Result::Kind::deferred; });
      if (results.empty()) co_return;
    }
    // One event per outcome, host and reply.
    const std::int64_t now = now_ms();
    const std::int64_t next = now + backoff_ms(o.outbound, attempt);
    const bool expire = next > q.expires_ms;
    std::map<std::tuple<int, std::string, std::string, bool>, std::vector<std::string>> grouped;
    std::vector<std::pair<const QueueRecipient*, Result>> failed, relayed, delayed;
    // RFC 3461 4.1: delays are reported once, after outbound.delay_warning_s,
    // unless NOTIFY leaves DELAY out (no NOTIFY: FAILURE,DELAY).
    const std::int64_t warn_ms = std::int64_t{o.outbound.delay_warning_s} * 1000;
    auto warn = [&](const QueueRecipient& r) {
      const bool wants = r.notify == 0 || ((r.notify & schemas::notify_delay) &&
                                           !(r.notify & schemas::notify_never));
      return warn_ms > 0 && wants && body && !q.mail_from.empty() && !r.delay_reported &&
             now - q.queued_ms >= warn_ms;
    };
    for (const auto& [r, res] : results) {
      if (res.kind == Result::Kind::delivered && (r->notify & schemas::notify_success) &&
          !(r->notify & schemas::notify_never) && !res.dsn_passed)
        relayed.emplace_back(r, res);
      int kind = static_cast<int>(res.kind);
      if (res.kind == Result::Kind::deferred && expire) kind = 3;
      const bool warned = kind == 1 && warn(*r);
      if (warned) delayed.emplace_back(r, res);
      grouped[{kind, res.host, res.reply, warned}].push_back(r->address);
      if (res.kind == Result::Kind::bounced || kind == 3) failed.emplace_back(r, res);
    }
    std::vector<schemas::Event> events;
    for (const auto& [key, who] : grouped) {
      const auto& [kind, host, reply, warned] = key;
      schemas::Body b;
      switch (kind) {
        case 0:
          b = schemas::Delivered{q.id, who, host, reply};
          break;
        case 1:
          b = schemas::Deferred{q.id, who, host, reply, next, warned};
          break;
        case 2:
          b = schemas::Bounced{q.id, who, host, reply};
          break;
        default:
          b = schemas::Expired{q.id, who, "queue lifetime exceeded; last: " + reply};
          break;
      }
      events.push_back(schemas::make_event(q.account, kActor, std::move(b)));
    }
    if (body) {
      for (auto& e : reports(q, *body, failed, relayed, delayed))
        events.push_back(std::move(e));
    }
    // Applied before the entry may be taken again (the loop reads the view).
    // If the log does not take them, the same events are tried again (the
    // projection applies an event id once), never a new attempt: the
    // remote servers already answered.
    for (int tries = 0;; ++tries) {
      const auto r = co_await store.execute(events, Store::Wait::applied, false);
      if (r) break;
      if (tries == 0 || tries % 12 == 0)
        spdlog::warn("outbound: the outcome of {} is not logged yet ({}); trying again", q.id.str(),
                     r.error().message());
      if (stopping) co_return;  // durable or not: at most one more delivery
      co_await sleep(std::chrono::seconds(5));
    }
  }

  awaitable<void> loop() {
    const auto limit = static_cast<std::size_t>(o.outbound.concurrency);
    while (!stopping) {
      if (flight->ids.size() < limit) {
        for (auto& q : store.due(now_ms(), limit * 2)) {
          if (flight->ids.size() >= limit) break;
          if (!flight->ids.insert(q.id).second) continue;
          asio::co_spawn(io, deliver(std::move(q)), [](std::exception_ptr e) {
            if (!e) return;
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& x) {
              spdlog::error("outbound: a delivery failed: {}", x.what());
            }
          });
        }
      }
      wake.expires_after(std::chrono::seconds(1));
      boost::system::error_code ec;
      co_await wake.async_wait(asio::redirect_error(use_awaitable, ec));
    }
  }
};

Worker::Worker(Store& store, WorkerOptions options)
    : impl_(std::make_shared<Impl>(store, std::move(options))) {}

Worker::~Worker() {
  stop();
}

void Worker::start() {
  auto& i = *impl_;
  std::vector<std::string> anchors;
  for (const auto& a : i.o.outbound.dnssec_trust_anchors)
    anchors.push_back(a.string());
  i.resolver = std::make_unique<Resolver>(i.io, i.o.outbound.resolvers, anchors);
  i.guard.emplace(i.io.get_executor());
  std::weak_ptr<Impl> weak = impl_;
  i.subscription = i.store.subscribe(projections::kOutboundQueue, [weak] {
    if (auto self = weak.lock()) asio::post(self->io, [self] { self->wake.cancel(); });
  });
  asio::co_spawn(i.io, i.loop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      spdlog::error("outbound: the delivery loop stopped: {}", x.what());
    }
  });
  i.thread = std::thread([self = impl_] {
    self->io.run();
    std::lock_guard lock(self->ran_mu);
    self->ran_out = true;
    self->ran_cv.notify_all();
  });
  spdlog::info("outbound: delivering {}",
               i.relay() ? "through " + i.o.relay_host : std::string("to MX hosts"));
}

void Worker::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->subscription.reset();
  asio::post(impl_->io, [self = impl_] {
    self->stopping = true;
    self->cache.close_all();
    self->wake.cancel();
  });
  impl_->guard.reset();
  // Deliveries in flight log what they know and end at their next step; the
  // io_context is stopped if they take longer than a grace period (they are
  // tried again after the restart: the queue is in the log).
  {
    std::unique_lock lock(impl_->ran_mu);
    if (!impl_->ran_cv.wait_for(lock, std::chrono::seconds(5), [&] { return impl_->ran_out; }))
      impl_->io.stop();
  }
  impl_->thread.join();
  impl_->flight->closed = true;
}

}  // namespace a3::delivery
