#include "tools/a3mailer/lifecycle.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

namespace a3::daemon {

namespace {

std::string listeners(const config::Config& c) {
  std::string out;
  for (const auto& l : c.server.listeners)
    out += l.protocol + " " + l.bind + " " + std::to_string(static_cast<int>(l.tls)) +
           (l.proxy_protocol ? " proxy;" : ";");
  return out;
}

}  // namespace

std::vector<std::string> needs_restart(const config::Config& a, const config::Config& b) {
  std::vector<std::string> out;
  auto differs = [&](std::string name, bool changed) {
    if (changed) out.push_back(std::move(name));
  };
  differs("server.listener / server.bind", listeners(a) != listeners(b));
  differs("server.hostname", a.server.hostname != b.server.hostname);
  differs("server.data_dir", a.server.data_dir != b.server.data_dir);
  differs("server.threads", a.server.threads != b.server.threads);
  differs("eventlog", a.eventlog.backend != b.eventlog.backend ||
                          a.eventlog.path != b.eventlog.path ||
                          a.eventlog.partitions != b.eventlog.partitions ||
                          a.eventlog.kafka.brokers != b.eventlog.kafka.brokers ||
                          a.eventlog.kafka.topic != b.eventlog.kafka.topic);
  differs("store.path", a.store.path != b.store.path);
  differs("database", a.database.enabled != b.database.enabled ||
                          a.database.conninfo() != b.database.conninfo() ||
                          a.security.enable_audit_logging != b.security.enable_audit_logging ||
                          a.security.audit_retention_days != b.security.audit_retention_days);
  differs("monitoring",
          a.monitoring.enabled != b.monitoring.enabled || a.monitoring.bind != b.monitoring.bind ||
              a.monitoring.health_check_interval_s != b.monitoring.health_check_interval_s ||
              a.monitoring.max_projector_lag != b.monitoring.max_projector_lag);
  differs("outbound / smtp.relay_*", a.outbound.enabled != b.outbound.enabled ||
                                         a.outbound.resolvers != b.outbound.resolvers ||
                                         a.outbound.dkim.size() != b.outbound.dkim.size() ||
                                         a.smtp.relay_host != b.smtp.relay_host ||
                                         a.smtp.relay_port != b.smtp.relay_port ||
                                         a.smtp.relay_username != b.smtp.relay_username ||
                                         a.smtp.relay_password != b.smtp.relay_password);
  differs("smtp.check_*", a.smtp.check_spf != b.smtp.check_spf ||
                              a.smtp.check_dkim != b.smtp.check_dkim ||
                              a.smtp.check_dmarc != b.smtp.check_dmarc);
  differs("performance.cache_size / batch_size",
          a.performance.cache_size != b.performance.cache_size ||
              a.performance.batch_size != b.performance.batch_size);
  differs("imap.max_connections_per_user / pop3.max_connections_per_user",
          a.imap.max_connections_per_user != b.imap.max_connections_per_user ||
              a.pop3.max_connections_per_user != b.pop3.max_connections_per_user);
  differs("tls (on or off)", a.tls.certificate.empty() != b.tls.certificate.empty());
  differs("imap.autologout_s / idle_timeout_s, smtp.*_timeout_s",
          a.imap.autologout_s != b.imap.autologout_s ||
              a.imap.idle_timeout_s != b.imap.idle_timeout_s ||
              a.smtp.command_timeout_s != b.smtp.command_timeout_s ||
              a.smtp.data_timeout_s != b.smtp.data_timeout_s);
  differs("security.auth_failures_before_delay / max_auth_delay_s",
          a.security.auth_failures_before_delay != b.security.auth_failures_before_delay ||
              a.security.max_auth_delay_s != b.security.max_auth_delay_s);
  differs("security.enable_security_headers / enable_csp / csp_policy",
          a.security.enable_security_headers != b.security.enable_security_headers ||
              a.security.enable_csp != b.security.enable_csp ||
              a.security.csp_policy != b.security.csp_policy);
  differs("smtp.dmarc_* / check_dns_timeout_s",
          a.smtp.dmarc_reject != b.smtp.dmarc_reject ||
              a.smtp.dmarc_quarantine != b.smtp.dmarc_quarantine ||
              a.smtp.check_dns_timeout_s != b.smtp.check_dns_timeout_s);
  auto keys = [](const config::Config& c) {
    std::string text;
    for (const auto& k : c.outbound.dkim)
      text += k.domain + " " + k.selector + " " + k.private_key.string() + " " + k.algorithm + ";";
    return text;
  };
  differs("outbound.dkim", keys(a) != keys(b));
  return out;
}

admin::Reply health(eventlog::EventLog& log, const projections::Projector& projector,
                    const projections::audit::AuditProjector* audit, std::int64_t max_lag) {
  bool ok = true;
  std::string text;
  auto line = [&](std::string_view name, bool good, const std::string& detail) {
    ok = ok && good;
    text +=
        fmt::format("{}{}: {}: {}", text.empty() ? "" : "\n", name, good ? "ok" : "error", detail);
  };
  const std::string failure = log.failure();
  line("log", failure.empty(), failure.empty() ? "takes appends" : failure);
  auto lag = [&](const std::map<std::int32_t, std::int64_t>& at) {
    std::int64_t behind = 0;
    for (std::int32_t p = 0; p < log.partitions(); ++p) {
      const auto end = log.end_offset(p);
      const auto it = at.find(p);
      if (end) behind += std::max<std::int64_t>(0, *end - (it == at.end() ? 0 : it->second));
    }
    return behind;
  };
  auto follows = [&](std::string_view name, const std::string& status, std::int64_t behind) {
    line(name, status == "ok" && behind <= max_lag,
         fmt::format("{} events behind the log, at most {} ({})", behind, max_lag, status));
  };
  follows("view", projector.status(), lag(projector.positions()));
  if (audit) follows("audit", audit->status(), lag(audit->positions()));
  return {ok, text};
}

Watchdog::Watchdog(boost::asio::io_context& io) : io_(io) {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
  const auto half = std::chrono::microseconds(usec / 2);
  spdlog::info("systemd watchdog: a heartbeat every {} ms", half.count() / 1000);
  thread_ = std::thread([this, half] {
    auto answered = std::make_shared<std::atomic<bool>>(true);
    while (!stop_) {
      if (answered->exchange(false)) {
        sd_notify(0, "WATCHDOG=1");
        boost::asio::post(io_, [answered] { *answered = true; });
      }
      // Short sleeps, so that the destructor does not wait long.
      for (auto slept = std::chrono::microseconds(0); slept < half && !stop_;
           slept += std::chrono::milliseconds(50))
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
}

Watchdog::~Watchdog() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

}  // namespace a3::daemon
