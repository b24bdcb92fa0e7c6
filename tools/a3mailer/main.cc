// a3mailer: the daemon. Loads the configuration, opens the event log and runs
// until SIGTERM or SIGINT, then closes everything cleanly.
#include <signal.h>
#include <systemd/sd-daemon.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/config.h"
#include "common/logging.h"
#include "delivery/worker.h"
#include "eventlog/local/local_log.h"
#include "eventlog/open.h"
#include "frontends/admin/admin_server.h"
#include "frontends/imap/server.h"
#include "frontends/net/tls.h"
#include "frontends/pop3/server.h"
#include "frontends/smtp/server.h"
#include "projections/audit/audit_projector.h"
#include "projections/backup.h"
#include "projections/projector.h"
#include "projections/store.h"

namespace {

constexpr std::string_view kUsage = R"(usage: a3mailer --config FILE [--check-config]

  --config FILE     the TOML configuration (see README.md)
  --check-config    validate the configuration, print the one in force
                    (defaults included, secrets masked) and exit
  --version         print the version and exit
)";

int usage_error(std::string_view msg) {
  fmt::print(stderr, "a3mailer: {}\n\n{}", msg, kUsage);
  return 2;
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

  a3::config::Config config;
  try {
    config = a3::config::load(config_path);
    a3::logging::setup(config.logging);
  } catch (const a3::config::ConfigError& e) {
    fmt::print(stderr, "a3mailer: configuration error: {}\n", e.what());
    return 2;
  }
  if (check_only) {
    // What is in force, secrets masked, for operators to compare.
    fmt::print("# {}: OK; the configuration in force:\n{}", config_path,
               a3::config::render(config));
    return 0;
  }

  // Signals are taken synchronously by the main thread (sigwait); block them
  // before any other thread exists so that every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Start-up order: the log (the truth), the view, the projector that keeps
  // the view up to date with the log, then the endpoints that use them.
  std::unique_ptr<a3::eventlog::EventLog> log;
  std::unique_ptr<a3::projections::view::ViewDb> view;
  std::unique_ptr<a3::projections::Projector> projector;
  std::unique_ptr<a3::projections::Store> store;
  std::unique_ptr<a3::admin::AdminServer> admin;
  std::unique_ptr<a3::projections::audit::AuditProjector> audit;
  std::unique_ptr<a3::delivery::Worker> outbound;
  // The network side: one I/O thread per core (or server.threads).
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::vector<std::thread> io_threads;
  std::unique_ptr<boost::asio::ssl::context> tls;
  std::unique_ptr<a3::smtp::Server> smtp;
  std::unique_ptr<a3::imap::Server> imap;
  std::unique_ptr<a3::pop3::Server> pop3;
  // Failed logins per IP, counted across SMTP, IMAP and POP3.
  a3::net::AuthThrottle throttle(config.security.auth_failures_before_delay,
                                 std::chrono::seconds(config.security.max_auth_delay_s));
  try {
    log = a3::eventlog::open(config, a3::eventlog::Access::read_write);
    view = a3::projections::view::ViewDb::open(config.store.path);
    projector = std::make_unique<a3::projections::Projector>(*log, *view);
    projector->start();
    store = std::make_unique<a3::projections::Store>(log.get(), *view, projector.get());
    // Hot backups: the daemon holds the store, so it takes them.
    auto commands = [&](const std::string& text) -> a3::admin::Reply {
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
    if (!config.tls.certificate.empty()) tls = a3::net::make_tls_context(config.tls);
    smtp = std::make_unique<a3::smtp::Server>(io, config, *store, tls.get(), throttle);
    for (const auto& l : config.server.listeners) {
      if (l.protocol == "smtp" || l.protocol == "submission" || l.protocol == "submissions") {
        smtp->listen(l);
      }
    }
    imap = std::make_unique<a3::imap::Server>(io, config, *store, tls.get(), throttle);
    for (const auto& l : config.server.listeners) {
      if (l.protocol == "imap" || l.protocol == "imaps") imap->listen(l);
    }
    pop3 = std::make_unique<a3::pop3::Server>(io, config, *store, tls.get(), throttle);
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
    if (config.database.enabled && !config.database.url.empty()) {
      audit = std::make_unique<a3::projections::audit::AuditProjector>(
          *log, a3::projections::audit::Options{config.database.url});
      audit->start();
    }
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
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

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("received {}, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  sd_notify(0, "STOPPING=1");
  // Stop accepting and end the sessions before the store goes away: once
  // every coroutine has finished, the I/O threads run out of work.
  if (smtp) smtp->stop();
  if (imap) imap->stop();
  if (pop3) pop3->stop();
  work.reset();
  for (auto& t : io_threads)
    t.join();
  smtp.reset();
  imap.reset();
  pop3.reset();
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
