// a3mailer: the daemon. Loads the configuration, opens the event log and runs
// until SIGTERM or SIGINT, then closes everything cleanly; SIGHUP reloads
// what can change without a restart (certificates, TLS policy, limits,
// access lists, logging).
#include <signal.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include <condition_variable>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "common/config.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "delivery/worker.h"
#include "eventlog/local/local_log.h"
#include "eventlog/open.h"
#include "frontends/admin/admin_server.h"
#include "frontends/imap/server.h"
#include "frontends/net/guard.h"
#include "frontends/net/tls.h"
#include "frontends/pop3/server.h"
#include "frontends/smtp/server.h"
#include "monitoring/http_server.h"
#include "monitoring/sampler.h"
#include "projections/audit/audit_projector.h"
#include "projections/backup.h"
#include "projections/projector.h"
#include "projections/store.h"
#include "tools/a3mailer/lifecycle.h"

namespace {

constexpr std::string_view kUsage = R"(usage: a3mailer --config FILE [--check-config]

  --config FILE     the TOML configuration (see README.md)
  --check-config    validate the configuration, print the one in force
                    (defaults included, secrets masked) and exit
  --version         print the version and exit
)";

// How long a SIGTERM waits for sessions to finish their command.
constexpr std::chrono::seconds kStopGrace{10};

int usage_error(std::string_view msg) {
  fmt::print(stderr, "a3mailer: {}\n\n{}", msg, kUsage);
  return 2;
}

// The certificate in force, for the monitoring (its expiry is alertable).
void note_certificate(a3::net::TlsContexts& tls) {
  if (auto ctx = tls.current())
    a3::metrics::gauge("a3_tls_certificate_expiry_timestamp_seconds",
                       "notAfter of the certificate in force, in seconds since the epoch")
        .Set(a3::net::certificate_expiry(*ctx));
}

struct Servers {
  a3::net::Guard* guard;
  a3::smtp::Server* smtp;
  a3::imap::Server* imap;
  a3::pop3::Server* pop3;
};

// SIGHUP: the new file is loaded and everything it needs is built (the TLS
// context, the log's file) before anything changes; a bad file or a broken
// certificate is refused with the reason, and the configuration in force
// stays. What a reload cannot apply is named in the log.
void reload(const std::string& path, const a3::config::Config& running, a3::net::TlsContexts* tls,
            Servers servers) {
  const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  sd_notify(0, fmt::format("RELOADING=1\nMONOTONIC_USEC={}", now).c_str());
  auto& ok = a3::metrics::counter("a3_config_reloads_total", "SIGHUP reloads, by result",
                                  {{"result", "success"}});
  auto& failed = a3::metrics::counter("a3_config_reloads_total", "SIGHUP reloads, by result",
                                      {{"result", "failure"}});
  auto& last = a3::metrics::gauge("a3_config_last_reload_successful",
                                  "1 if the last SIGHUP reload was applied, 0 if it was refused");
  try {
    a3::config::Config fresh = a3::config::load(path);
    std::shared_ptr<const a3::net::AccessRules> access;
    try {
      access = std::make_shared<const a3::net::AccessRules>(fresh.security.access);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("access_control.country_database: {}", e.what()));
    }
    std::shared_ptr<boost::asio::ssl::context> ctx;
    if (tls && !fresh.tls.certificate.empty()) ctx = a3::net::make_tls_context(fresh.tls);
    a3::logging::setup(fresh.logging);  // the last step that may fail
    if (ctx) {
      tls->replace(std::move(ctx));
      note_certificate(*tls);
    }
    servers.guard->reload(fresh.security, std::move(access));
    if (servers.smtp) servers.smtp->reload(fresh);
    if (servers.imap) servers.imap->reload(fresh);
    if (servers.pop3) servers.pop3->reload(fresh);
    for (const auto& w : fresh.warnings)
      spdlog::warn("configuration: {}", w);
    const auto later = a3::daemon::needs_restart(running, fresh);
    if (!later.empty())
      spdlog::warn("reload: these changed and take effect at the next start: {}",
                   fmt::join(later, ", "));
    ok.Increment();
    last.Set(1);
    spdlog::info("reload: {} applied (certificates, TLS, limits, access lists, logging)", path);
  } catch (const std::exception& e) {
    failed.Increment();
    last.Set(0);
    spdlog::error("reload refused; the configuration in force stays: {}", e.what());
  }
  sd_notify(0, "READY=1\nSTATUS=running");
}

// Every connection is a file descriptor, and RocksDB keeps its files open:
// the soft limit (often 1024 from a shell) goes up to the hard one. If even
// that cannot hold the connection limits, accepts will fail beyond it (each
// failure logged), so say so at start.
void raise_file_limit(const a3::config::Config& config) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  // The connections, and 1024 for the stores, the log and the rest.
  const auto needed = static_cast<std::size_t>(config.security.max_connections) + 1024;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < needed)
    spdlog::warn(
        "open files limited to {} (RLIMIT_NOFILE), below the {} that security.max_connections "
        "may need: raise it (systemd: LimitNOFILE)",
        rl.rlim_cur, needed);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a.starts_with("--config=")) {
      config_path = a.substr(9);
    } else if (a == "--check-config") {
      check_only = true;
    } else if (a == "--version") {
      fmt::print("a3mailer {}\n", A3_VERSION);
      return 0;
    } else if (a == "--help" || a == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    } else {
      return usage_error(fmt::format("unknown argument '{}'", a));
    }
  }
  if (config_path.empty()) return usage_error("--config FILE is required");

  // Signals are taken synchronously by the main thread (sigwait); block them
  // before any other thread exists (the log's flusher is one) so that every
  // thread inherits the mask: a signal taken by another thread would kill
  // the process (SIGHUP's and SIGTERM's default action).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  a3::config::Config config;
  try {
    config = a3::config::load(config_path);
    a3::logging::setup(config.logging);
  } catch (const a3::config::ConfigError& e) {
    fmt::print(stderr, "a3mailer: configuration error: {}\n", e.what());
    return 2;
  }
  // The access lists' country database is opened here, not by the
  // loader: a file that is not one is a configuration error too.
  std::shared_ptr<const a3::net::AccessRules> access;
  try {
    access = std::make_shared<const a3::net::AccessRules>(config.security.access);
  } catch (const std::exception& e) {
    fmt::print(stderr, "a3mailer: configuration error: access_control.country_database: {}\n",
               e.what());
    return 2;
  }
  if (check_only) {
    // What is in force, secrets masked, for operators to compare; what was
    // accepted but cannot apply, on standard error.
    for (const auto& w : config.warnings)
      fmt::print(stderr, "a3mailer: warning: {}\n", w);
    fmt::print("# {}: OK; the configuration in force:\n{}", config_path,
               a3::config::render(config));
    return 0;
  }
  for (const auto& w : config.warnings)
    spdlog::warn("configuration: {}", w);
  raise_file_limit(config);
  a3::metrics::init_defaults();

  // Start-up order: the log (the truth), the view, the projector that keeps
  // the view up to date with the log, then the endpoints that use them.
  std::unique_ptr<a3::eventlog::EventLog> log;
  std::unique_ptr<a3::projections::view::ViewDb> view;
  std::unique_ptr<a3::projections::Projector> projector;
  std::unique_ptr<a3::projections::Store> store;
  std::unique_ptr<a3::admin::AdminServer> admin;
  std::unique_ptr<a3::projections::audit::AuditProjector> audit;
  std::unique_ptr<a3::delivery::Worker> outbound;
  std::unique_ptr<a3::monitoring::Sampler> sampler;
  std::unique_ptr<a3::monitoring::HttpServer> monitoring;
  // The network side: one I/O thread per core (or server.threads).
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::vector<std::thread> io_threads;
  std::unique_ptr<a3::net::TlsContexts> tls;
  std::unique_ptr<a3::smtp::Server> smtp;
  std::unique_ptr<a3::imap::Server> imap;
  std::unique_ptr<a3::pop3::Server> pop3;
  // Failed logins per IP, counted across SMTP, IMAP and POP3.
  a3::net::AuthThrottle throttle(config.security.auth_failures_before_delay,
                                 std::chrono::seconds(config.security.max_auth_delay_s));
  // Blocked networks, bans, and connections in total and per IP, across
  // the protocols.
  if (access->has_countries())
    spdlog::info("access control: countries from {}",
                 config.security.access.country_database.string());
  a3::net::Guard guard(config.security, std::move(access));
  try {
    log = a3::eventlog::open(config, a3::eventlog::Access::read_write);
    view = a3::projections::view::ViewDb::open(
        config.store.path, false, static_cast<std::size_t>(config.performance.cache_size));
    projector = std::make_unique<a3::projections::Projector>(
        *log, *view, static_cast<std::size_t>(config.performance.batch_size));
    projector->start();
    store = std::make_unique<a3::projections::Store>(log.get(), *view, projector.get());
    // Hot backups: the daemon holds the store, so it takes them.
    auto commands = [&](const std::string& text) -> a3::admin::Reply {
      if (text == "digest") {
        // a3ctl verify while the daemon runs: the live view's digest, read
        // through the daemon's own handle.
        const auto d = view->digest_with_positions();
        std::string positions;
        for (const auto& [p, o] : d.positions)
          positions += fmt::format("{}{}:{}", positions.empty() ? "" : " ", p, o);
        return {true, positions + "\n" + d.digest};
      }
      if (text == "health")
        return a3::daemon::health(*log, *projector, audit.get(),
                                  config.monitoring.max_projector_lag);
      if (!text.starts_with("backup ")) return {false, "unknown command: " + text};
      try {
        auto* local = dynamic_cast<a3::eventlog::local::LocalLog*>(log.get());
        const auto m = a3::projections::backup::create(text.substr(7), *view, local);
        std::string positions;
        for (const auto& [p, o] : m.view_positions)
          positions += fmt::format(" {}:{}", p, o);
        std::string ends;
        for (const auto& [p, o] : m.log_ends)
          ends += fmt::format(" {}:{}", p, o);
        return {true, fmt::format("backup {} in {}: view at{}, log {}", m.id, text.substr(7),
                                  positions.empty() ? " (empty)" : positions,
                                  local ? "ends" + (ends.empty() ? std::string(" (empty)") : ends)
                                        : std::string("not included (Kafka keeps it)"))};
      } catch (const std::exception& e) {
        return {false, e.what()};
      }
    };
    admin = std::make_unique<a3::admin::AdminServer>(config.server.data_dir / "admin.sock", *store,
                                                     commands);
    // The audit trail follows the log on its own: the mail service never
    // waits for PostgreSQL, which may be down; it catches up when back.
    if (!config.tls.certificate.empty()) {
      tls = std::make_unique<a3::net::TlsContexts>(a3::net::make_tls_context(config.tls));
      note_certificate(*tls);
    }
    // The bans of the view, then every change to them (events of any node).
    guard.follow(*store, io.get_executor());
    smtp = std::make_unique<a3::smtp::Server>(io, config, *store, tls.get(), throttle, guard);
    for (const auto& l : config.server.listeners) {
      if (l.protocol == "smtp" || l.protocol == "submission" || l.protocol == "submissions") {
        smtp->listen(l);
      }
    }
    imap = std::make_unique<a3::imap::Server>(io, config, *store, tls.get(), throttle, guard);
    for (const auto& l : config.server.listeners) {
      if (l.protocol == "imap" || l.protocol == "imaps") imap->listen(l);
    }
    pop3 = std::make_unique<a3::pop3::Server>(io, config, *store, tls.get(), throttle, guard);
    for (const auto& l : config.server.listeners) {
      if (l.protocol == "pop3" || l.protocol == "pop3s") pop3->listen(l);
    }
    const unsigned threads = config.server.threads > 0
                                 ? static_cast<unsigned>(config.server.threads)
                                 : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < threads; ++i)
      io_threads.emplace_back([&io] { io.run(); });
    if (config.outbound.enabled) {
      outbound =
          std::make_unique<a3::delivery::Worker>(*store, a3::delivery::WorkerOptions::from(config));
      outbound->start();
    }
    const std::string conninfo = config.database.conninfo();
    if (config.audit_trail()) {
      audit = std::make_unique<a3::projections::audit::AuditProjector>(
          *log,
          a3::projections::audit::Options{.url = conninfo,
                                          .retention_days = config.security.audit_retention_days,
                                          .data_dir = config.server.data_dir});
      audit->start();
    }
    if (config.monitoring.enabled) {
      sampler = std::make_unique<a3::monitoring::Sampler>(
          a3::monitoring::Sources{*log, *projector, *view, *store, audit.get(), conninfo,
                                  config.server.data_dir},
          config.monitoring);
      sampler->start();
      // Created before the listener, so the I/O threads only ever read it.
      monitoring = std::make_unique<a3::monitoring::HttpServer>(
          io, config, [s = sampler.get()] { return s->verdict(); });
      try {
        monitoring->listen();
      } catch (const std::exception& e) {
        // Mail does not stop for its monitoring.
        spdlog::error("{}: running without /metrics and /healthz", e.what());
        monitoring.reset();
      }
    }
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    sampler.reset();
    outbound.reset();
    work.reset();
    io.stop();
    for (auto& t : io_threads)
      t.join();
    return 1;
  }
  std::string ends;
  for (std::int32_t p = 0; p < log->partitions(); ++p) {
    auto end = log->end_offset(p);
    ends += fmt::format("{}{}:{}", p ? " " : "", p, end ? fmt::to_string(*end) : "?");
  }
  spdlog::info("a3mailer {} started: event log {} ({} partitions, ends {}), data in {}", A3_VERSION,
               config.eventlog.backend, log->partitions(), ends, config.server.data_dir.string());
  sd_notify(0, "READY=1\nSTATUS=running");

  a3::daemon::Watchdog watchdog(io);
  int sig = 0;
  for (;;) {
    sigwait(&stop_signals, &sig);
    if (sig != SIGHUP) break;
    reload(config_path, config, tls.get(), {&guard, smtp.get(), imap.get(), pop3.get()});
  }
  spdlog::info("received {}, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  sd_notify(0, "STOPPING=1");
  if (sampler) sampler->stopping();
  // Stop accepting and end the sessions before the store goes away: once
  // every coroutine has finished, the I/O threads run out of work.
  if (smtp) smtp->stop();
  if (imap) imap->stop();
  if (pop3) pop3->stop();
  if (monitoring) monitoring->stop();
  guard.stop();
  work.reset();
  {
    // Sessions finish the command in hand; one that is still busy after the
    // grace period is closed (well within systemd's TimeoutStopSec).
    std::mutex mu;
    std::condition_variable cv;
    bool ended = false;
    std::thread deadline([&] {
      std::unique_lock lock(mu);
      if (cv.wait_for(lock, kStopGrace, [&] { return ended; })) return;
      spdlog::warn("sessions still busy {} s after SIGTERM: closing them", kStopGrace.count());
      if (smtp) smtp->abort();
      if (imap) imap->abort();
      if (pop3) pop3->abort();
    });
    for (auto& t : io_threads)
      t.join();
    {
      std::lock_guard lock(mu);
      ended = true;
    }
    cv.notify_all();
    deadline.join();
  }
  smtp.reset();
  imap.reset();
  pop3.reset();
  monitoring.reset();
  if (sampler) sampler->stop();
  sampler.reset();
  if (outbound) outbound->stop();
  outbound.reset();
  admin.reset();
  if (audit) audit->stop();
  audit.reset();
  store.reset();
  projector->stop();
  projector.reset();
  view.reset();
  log->close();
  log.reset();
  spdlog::info("stopped");
  spdlog::shutdown();
  return 0;
}
