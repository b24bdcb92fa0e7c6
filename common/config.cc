#include "common/config.h"
#include "common/config_section.h"
#include "common/network.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <toml++/toml.h>

namespace a3::config {

namespace {

namespace fs = std::filesystem;
using detail::read_access;
using detail::read_access_file;
using detail::Section;
using detail::where;

// The protocol a bare `bind` address serves, by its well-known port.
std::string_view protocol_of_port(int port) {
  switch (port) {
    case 25:
      return "smtp";
    case 465:
      return "submissions";
    case 587:
      return "submission";
    case 143:
      return "imap";
    case 993:
      return "imaps";
    case 110:
      return "pop3";
    case 995:
      return "pop3s";
    default:
      return {};
  }
}

TlsMode default_tls(std::string_view protocol) {
  if (protocol == "submissions" || protocol == "imaps" || protocol == "pop3s")
    return TlsMode::implicit;
  return protocol == "http" ? TlsMode::none : TlsMode::starttls;
}

// host:port with a port number; the port, or -1.
int port_of(const std::string& bind) {
  const auto colon = bind.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == bind.size()) return -1;
  int port = 0;
  for (std::size_t i = colon + 1; i < bind.size(); ++i) {
    if (bind[i] < '0' || bind[i] > '9') return -1;
    port = port * 10 + (bind[i] - '0');
    if (port > 65535) return -1;
  }
  return port;
}

constexpr std::string_view kNoCache =
    "A3Mailer has no cache server: the mailbox views are RocksDB inside the daemon "
    "([performance] cache_size sizes its block cache)";
constexpr std::string_view kNoPool =
    "the audit trail is written by one projector over one PostgreSQL connection, in log order; "
    "there is no connection pool to size";

// Why OpenSSL refuses a cipher list, or nothing (an empty list: defaults).
std::optional<std::string> tls_cipher_error(const std::string& list, bool tls13) {
  if (list.empty()) return std::nullopt;
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()),
                                                        &SSL_CTX_free);
  if (!ctx) return "OpenSSL cannot create a context";
  const int ok = tls13 ? SSL_CTX_set_ciphersuites(ctx.get(), list.c_str())
                       : SSL_CTX_set_cipher_list(ctx.get(), list.c_str());
  ERR_clear_error();
  if (ok != 1)
    return fmt::format("\"{}\": OpenSSL knows none of these {}", list,
                       tls13 ? "TLS 1.3 cipher suites" : "ciphers");
  return std::nullopt;
}

// The deployment guide's environment variables, and ours, override the file.
void apply_environment(Config& c, std::vector<std::string>& errors) {
  auto get = [](std::string_view guide, std::string_view ours) -> std::optional<std::string> {
    // Ours wins over the guide's when both are set.
    for (auto name : {ours, guide}) {
      if (const char* v = std::getenv(std::string(name).c_str())) return std::string(v);
    }
    return std::nullopt;
  };
  auto boolean = [&](std::string_view guide, std::string_view ours, auto&& apply) {
    if (auto v = get(guide, ours)) {
      if (*v == "true" || *v == "1" || *v == "yes") {
        apply(true);
      } else if (*v == "false" || *v == "0" || *v == "no") {
        apply(false);
      } else {
        errors.push_back(
            fmt::format("environment {}/{}: \"{}\" is not true or false", guide, ours, *v));
      }
    }
  };
  if (auto v = get("STALWART_DB_PASSWORD", "A3_DB_PASSWORD")) c.database.password = *v;
  if (auto v = get("STALWART_TLS_CERT", "A3_TLS_CERT")) c.tls.certificate = *v;
  if (auto v = get("STALWART_TLS_KEY", "A3_TLS_KEY")) c.tls.private_key = *v;
  boolean("STALWART_PROMETHEUS_ENABLED", "A3_PROMETHEUS_ENABLED",
          [&](bool on) { c.monitoring.enabled = on; });
  if (auto v = get("STALWART_METRICS_PORT", "A3_METRICS_PORT")) {
    const int port = port_of("x:" + *v);
    if (port < 0) {
      errors.push_back(fmt::format(
          "environment STALWART_METRICS_PORT/A3_METRICS_PORT: \"{}\" is not a port", *v));
    } else {
      c.monitoring.bind = c.monitoring.bind.substr(0, c.monitoring.bind.rfind(':') + 1) + *v;
    }
  }
  boolean("STALWART_AUDIT_ENABLED", "A3_AUDIT_ENABLED",
          [&](bool on) { c.security.enable_audit_logging = on; });
  if (get("STALWART_REDIS_PASSWORD", "A3_REDIS_PASSWORD"))
    c.warnings.push_back(fmt::format("environment STALWART_REDIS_PASSWORD: ignored: {}", kNoCache));
  boolean("STALWART_SECURITY_ENABLED", "A3_SECURITY_ENABLED", [&](bool on) {
    if (!on)
      c.warnings.push_back(
          "environment STALWART_SECURITY_ENABLED=false: ignored: the security controls are "
          "configured one by one in [security]; they cannot all be switched off");
  });
}

}  // namespace

const Listener* Config::listener(std::string_view protocol) const {
  for (const auto& l : server.listeners) {
    if (l.protocol == protocol) return &l;
  }
  return nullptr;
}

Config parse(std::string_view text, const fs::path& file) {
  toml::table root;
  try {
    root = toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}: {}", where(file, e.source()), e.description()));
  }

  Config c;
  c.source = file;
  std::vector<std::string> errors;
  Section top(file, "", &root, errors, c.warnings);
  // The guide's [server] timeout, applied once every protocol's own key is known.
  int server_timeout = 0;
  bool smtp_timeout = false, imap_timeout = false, pop3_timeout = false;
  bool server_max_connections = false;

  {
    Section s = top.sub("server");
    s.string("hostname", c.server.hostname);
    s.strings("local_domains", c.server.local_domains);
    s.path("data_dir", c.server.data_dir);
    s.integer("threads", c.server.threads, 0, 256);
    s.tables("listener", [&](Section& l) {
      Listener out;
      l.one_of("protocol", out.protocol,
               {"smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http"});
      l.string("bind", out.bind);
      const auto colon = out.bind.rfind(':');
      if (out.bind.empty()) {
        l.fail("bind", nullptr, "is required (host:port)");
      } else if (colon == std::string::npos || colon + 1 == out.bind.size()) {
        l.fail_key("bind", "expected host:port");
      }
      const TlsMode mode = default_tls(out.protocol);
      std::string tls = mode == TlsMode::implicit ? "implicit"
                        : mode == TlsMode::none   ? "none"
                                                  : "starttls";
      l.one_of("tls", tls, {"none", "starttls", "implicit"});
      if (out.protocol == "http" && tls != "none")
        l.fail_key("tls", "the monitoring listener (http) is plain HTTP on a trusted network");
      l.boolean("proxy_protocol", out.proxy_protocol);
      if (out.protocol == "http" && out.proxy_protocol)
        l.fail_key("proxy_protocol", "the monitoring listener takes no PROXY header");
      out.tls = tls == "implicit"   ? TlsMode::implicit
                : tls == "starttls" ? TlsMode::starttls
                                    : TlsMode::none;
      c.server.listeners.push_back(std::move(out));
    });
    // The guide's `bind` list: each address serves the protocol of its
    // well-known port, unless a [[server.listener]] names that address.
    std::vector<std::string> binds;
    s.string_or_strings("bind", binds);
    for (const auto& b : binds) {
      const int port = port_of(b);
      if (port < 0) {
        s.fail_key("bind", fmt::format("\"{}\" is not host:port", b));
        continue;
      }
      const std::string_view protocol = protocol_of_port(port);
      if (protocol.empty()) {
        s.fail_key("bind", fmt::format("port {} of \"{}\" is not a mail port (25, 465, 587, 143, "
                                       "993, 110, 995): give it a [[server.listener]] with a "
                                       "protocol",
                                       port, b));
        continue;
      }
      bool named = false;
      for (const auto& l : c.server.listeners)
        named = named || l.bind == b;
      if (!named) c.server.listeners.push_back({std::string(protocol), b, default_tls(protocol)});
    }
    server_max_connections = s.has("max_connections");
    s.integer("max_connections", c.security.max_connections, 1, 1'000'000);
    // RFC 5321 4.5.3.2: an SMTP server waits at least 5 minutes for a command.
    s.integer("timeout", server_timeout, 300, 86400);
    s.finish();
  }
  {
    Section s = top.sub("tls");
    s.path("certificate", c.tls.certificate);
    s.path(s.either("private_key", "private-key"), c.tls.private_key);
    s.one_of("min_version", c.tls.min_version, {"TLSv1.2", "TLSv1.3"});
    s.one_of("max_version", c.tls.max_version, {"TLSv1.2", "TLSv1.3"});
    // The guide's `protocols`: the versions offered, from the lowest to the
    // highest listed. TLS 1.0 and 1.1 are deprecated (RFC 8996).
    std::vector<std::string> protocols;
    s.strings("protocols", protocols);
    if (!protocols.empty()) {
      bool ok = true;
      for (const auto& p : protocols) {
        if (p != "TLSv1.2" && p != "TLSv1.3") {
          s.fail_key("protocols",
                     p == "TLSv1" || p == "TLSv1.0" || p == "TLSv1.1" || p == "SSLv3"
                         ? fmt::format("\"{}\" is not offered: deprecated by RFC 8996", p)
                         : fmt::format("\"{}\" is not one of: TLSv1.2, TLSv1.3", p));
          ok = false;
        }
      }
      if (ok) {
        const bool has12 =
            std::find(protocols.begin(), protocols.end(), "TLSv1.2") != protocols.end();
        c.tls.min_version = has12 ? "TLSv1.2" : "TLSv1.3";
        const bool has13 =
            std::find(protocols.begin(), protocols.end(), "TLSv1.3") != protocols.end();
        c.tls.max_version = has13 ? "TLSv1.3" : "TLSv1.2";
      }
    }
    if (c.tls.min_version == "TLSv1.3" && c.tls.max_version == "TLSv1.2")
      s.fail_key("max_version", "is below min_version");
    s.string("ciphers", c.tls.ciphers);
    s.string("ciphersuites", c.tls.ciphersuites);
    if (const auto reason = tls_cipher_error(c.tls.ciphers, false)) s.fail_key("ciphers", *reason);
    if (const auto reason = tls_cipher_error(c.tls.ciphersuites, true))
      s.fail_key("ciphersuites", *reason);
    s.finish();
  }
  {
    Section s = top.sub("eventlog");
    s.one_of("backend", c.eventlog.backend, {"local", "kafka"});
    s.path("path", c.eventlog.path);
    s.integer("partitions", c.eventlog.partitions, 1, 1024);
    s.integer("group_commit_max_records", c.eventlog.group_commit_max_records, 1, 1'000'000);
    s.integer("group_commit_max_bytes", c.eventlog.group_commit_max_bytes, 1 << 16, 1ll << 32);
    Section k = s.sub("kafka");
    k.string("brokers", c.eventlog.kafka.brokers);
    k.string("topic", c.eventlog.kafka.topic);
    k.one_of("compression", c.eventlog.kafka.compression,
             {"none", "gzip", "snappy", "lz4", "zstd"});
    k.integer("delivery_timeout_ms", c.eventlog.kafka.delivery_timeout_ms, 1000, 3'600'000);
    k.integer("linger_ms", c.eventlog.kafka.linger_ms, 0, 1000);
    Section props = k.sub("properties");
    if (const toml::table* t = props.table()) {
      for (const auto& [key, value] : *t) {
        // These are what makes an acknowledged append durable: not negotiable.
        for (std::string_view fixed : {"acks", "enable.idempotence", "message.timeout.ms",
                                       "delivery.timeout.ms", "request.required.acks"}) {
          if (key.str() == fixed) {
            props.fail(key.str(), &value,
                       "is fixed by a3mailer (acks=all, idempotence on; use "
                       "eventlog.kafka.delivery_timeout_ms for the timeout)");
          }
        }
        std::string v;
        props.string(key.str(), v);
        c.eventlog.kafka.properties[std::string(key.str())] = v;
      }
    }
    k.finish();
    s.finish();
    if (c.eventlog.backend == "kafka" && c.eventlog.kafka.brokers.empty())
      k.fail("brokers", nullptr, "is required when backend = \"kafka\"");
  }
  {
    Section s = top.sub("store");
    s.path("path", c.store.path);
    s.finish();
  }
  {
    Section s = top.sub("database");
    s.boolean("enabled", c.database.enabled);
    s.string("url", c.database.url);
    std::string type = "postgresql";
    s.one_of("type", type, {"postgresql", "postgres"});
    s.string("host", c.database.host);
    s.integer("port", c.database.port, 1, 65535);
    s.string("database", c.database.name);
    s.string(s.either("username", "user"), c.database.username);
    s.string("password", c.database.password);
    s.integer(s.either("connect_timeout_s", "timeout"), c.database.connect_timeout_s, 1, 3600);
    if (!c.database.url.empty()) {
      for (std::string_view part : {"host", "port", "database", "username"})
        if (s.has(part)) s.fail_key(part, "set either url or host/port/database/username");
    }
    s.ignored("pool_size", kNoPool);
    s.finish();
  }
  top.sub("cache").ignore_all(kNoCache);
  {
    Section s = top.sub("smtp");
    s.integer("max_message_size", c.smtp.max_message_size, 1024, 1ll << 31);
    s.integer("max_recipients", c.smtp.max_recipients, 1, 100'000);
    // RFC 5321 4.5.3.1.6: at least 1000 octets including CRLF.
    s.integer("max_line_length", c.smtp.max_line_length, 1000, 1 << 20);
    s.integer("max_errors", c.smtp.max_errors, 1, 1000);
    s.boolean("allow_plaintext_auth", c.smtp.allow_plaintext_auth);
    s.boolean("reject_bare_lf", c.smtp.reject_bare_lf);
    s.boolean("enable_vrfy", c.smtp.enable_vrfy);
    // RFC 5321 4.5.3.2: at least 5 minutes for commands, 10 for data blocks.
    // Lower is allowed, with a warning: what an operator under a slow-loris
    // attack does (Postfix's stress mode waits 10 s).
    smtp_timeout = s.has("command_timeout_s");
    s.integer("command_timeout_s", c.smtp.command_timeout_s, 1, 86400);
    if (c.smtp.command_timeout_s < 300) {
      s.warn("command_timeout_s",
             "below RFC 5321 4.5.3.2's 5 minutes: slow clients may be cut off");
    }
    s.integer("data_timeout_s", c.smtp.data_timeout_s, 1, 86400);
    if (c.smtp.data_timeout_s < 600) {
      s.warn("data_timeout_s", "below RFC 5321 4.5.3.2's 10 minutes: slow clients may be cut off");
    }
    s.string("relay_host", c.smtp.relay_host);
    s.integer("relay_port", c.smtp.relay_port, 1, 65535);
    s.boolean("relay_auth", c.smtp.relay_auth);
    s.string("relay_username", c.smtp.relay_username);
    s.string("relay_password", c.smtp.relay_password);
    if (c.smtp.relay_auth && c.smtp.relay_password.empty()) {
      if (const char* p = std::getenv("A3_RELAY_PASSWORD")) c.smtp.relay_password = p;
    }
    if (c.smtp.relay_auth && c.smtp.relay_host.empty())
      s.fail_key("relay_auth", "needs relay_host");
    if (c.smtp.relay_auth && (c.smtp.relay_username.empty() || c.smtp.relay_password.empty())) {
      // The guide's own file says relay_auth = true and nothing more: it
      // loads, and nothing goes to the relay until the credentials exist.
      s.warn("relay_auth",
             "no relay_username and relay_password (or $A3_RELAY_PASSWORD): mail to the relay "
             "is deferred until they are set");
    }
    s.boolean("check_spf", c.smtp.check_spf);
    s.boolean("check_dkim", c.smtp.check_dkim);
    s.boolean("check_dmarc", c.smtp.check_dmarc);
    s.boolean("dmarc_reject", c.smtp.dmarc_reject);
    s.boolean("dmarc_quarantine", c.smtp.dmarc_quarantine);
    s.integer("check_dns_timeout_s", c.smtp.check_dns_timeout_s, 1, 60);
    s.finish();
  }
  {
    Section s = top.sub("outbound");
    s.boolean("enabled", c.outbound.enabled);
    s.strings("trusted_networks", c.outbound.trusted_networks);
    for (const auto& n : c.outbound.trusted_networks) {
      if (!Network::parse(n))
        s.fail_key("trusted_networks", fmt::format("\"{}\" is not an address or CIDR network", n));
    }
    s.strings("resolvers", c.outbound.resolvers);
    s.integer("mx_port", c.outbound.mx_port, 1, 65535);
    s.integer("retry_initial_s", c.outbound.retry_initial_s, 1, 86400);
    s.integer("retry_max_s", c.outbound.retry_max_s, 1, 7 * 86400);
    s.integer("max_queue_lifetime_s", c.outbound.max_queue_lifetime_s, 1, 30 * 86400);
    s.integer("delay_warning_s", c.outbound.delay_warning_s, 0, 30 * 86400);
    s.integer("connect_timeout_s", c.outbound.connect_timeout_s, 1, 600);
    s.integer("command_timeout_s", c.outbound.command_timeout_s, 1, 3600);
    s.integer("data_timeout_s", c.outbound.data_timeout_s, 1, 3600);
    s.integer("max_connections_per_destination", c.outbound.max_connections_per_destination, 1,
              1000);
    s.integer("concurrency", c.outbound.concurrency, 1, 10000);
    s.strings("require_tls", c.outbound.require_tls);
    s.boolean("allow_private_destinations", c.outbound.allow_private_destinations);
    std::vector<std::string> anchors;
    s.strings("dnssec_trust_anchors", anchors);
    for (const auto& a : anchors)
      c.outbound.dnssec_trust_anchors.emplace_back(a);
    s.tables("dkim", [&](Section& d) {
      DkimKey k;
      d.string("domain", k.domain);
      d.string("selector", k.selector);
      d.path("private_key", k.private_key);
      d.one_of("algorithm", k.algorithm, {"rsa-sha256", "ed25519-sha256"});
      if (k.domain.empty()) d.fail_key("domain", "is required");
      if (k.selector.empty()) d.fail_key("selector", "is required");
      if (k.private_key.empty()) d.fail_key("private_key", "is required (a PEM file)");
      c.outbound.dkim.push_back(std::move(k));
    });
    s.finish();
  }
  {
    Section s = top.sub("imap");
    s.integer("max_connections_per_user", c.imap.max_connections_per_user, 0, 100'000);
    s.integer(s.either("search_timeout_s", "search_timeout"), c.imap.search_timeout_s, 0, 86400);
    s.integer("max_line_before_auth", c.imap.max_line_before_auth, 1024, 1 << 24);
    s.integer("max_line_after_auth", c.imap.max_line_after_auth, 8192, 1 << 24);
    s.integer("append_limit", c.imap.append_limit, 1024, 1ll << 31);
    s.boolean("allow_plaintext_auth", c.imap.allow_plaintext_auth);
    imap_timeout = s.has("autologout_s");
    s.integer("autologout_s", c.imap.autologout_s, 1800, 86400);  // RFC 9051 5.4
    // RFC 2177: clients re-issue IDLE every 29 minutes.
    s.integer(s.either("idle_timeout_s", "idle_timeout"), c.imap.idle_timeout_s, 1740, 86400);
    s.finish();
  }
  {
    Section s = top.sub("pop3");
    s.integer("max_connections_per_user", c.pop3.max_connections_per_user, 0, 100'000);
    s.boolean("allow_plaintext_auth", c.pop3.allow_plaintext_auth);
    const std::string_view timeout = s.either("timeout_s", "timeout");
    pop3_timeout = s.has(timeout);
    s.integer(timeout, c.pop3.timeout_s, 600, 86400);  // RFC 1939 3
    s.finish();
  }
  fs::path access_file;  // [security] access_control_file
  {
    Section s = top.sub("security");
    if (server_max_connections && s.has("max_connections")) {
      s.take("max_connections");
      s.fail_key("max_connections", "is set in [server] too; set one of them");
    }
    s.integer("max_connections", c.security.max_connections, 1, 1'000'000);
    s.integer("max_connections_per_ip", c.security.max_connections_per_ip, 1, 1'000'000);
    s.integer("login_timeout_s", c.security.login_timeout_s, 1, 86400);
    s.integer("auth_failures_before_delay", c.security.auth_failures_before_delay, 0, 1000);
    s.integer("max_auth_delay_s", c.security.max_auth_delay_s, 0, 3600);
    const std::string_view blocked = s.either("blocked_networks", "blocked_ips");
    s.strings(blocked, c.security.blocked_networks);
    s.strings("trusted_proxies", c.security.trusted_proxies);
    s.integer("ban_after_auth_failures", c.security.ban_after_auth_failures, 0, 1'000'000);
    s.integer("ban_after_protocol_errors", c.security.ban_after_protocol_errors, 0, 1'000'000);
    s.integer("ban_after_unknown_recipients", c.security.ban_after_unknown_recipients, 0,
              1'000'000);
    s.integer("ban_window_s", c.security.ban_window_s, 1, 7 * 86400);
    s.integer("ban_duration_s", c.security.ban_duration_s, 1, 365 * 86400);
    s.strings("exempt_networks", c.security.exempt_networks);
    s.integer("max_messages_per_hour_per_account", c.security.max_messages_per_hour_per_account, 0,
              100'000'000);
    s.integer("max_messages_per_hour_per_ip", c.security.max_messages_per_hour_per_ip, 0,
              100'000'000);
    for (auto [key, list] :
         {std::pair{blocked, &c.security.blocked_networks},
          std::pair{std::string_view("trusted_proxies"), &c.security.trusted_proxies},
          std::pair{std::string_view("exempt_networks"), &c.security.exempt_networks}}) {
      for (const auto& n : *list) {
        if (!Network::parse(n))
          s.fail_key(key, fmt::format("\"{}\" is not an address or CIDR network", n));
      }
    }
    s.boolean("enable_rate_limiting", c.security.enable_rate_limiting);
    s.integer("rate_limit_window", c.security.rate_limit_window_s, 1, 86400);
    s.integer("max_requests_per_window", c.security.max_requests_per_window, 1, 100'000'000);
    // The guide's per-minute form: the same limit over a 60 s window.
    if (s.has("max_requests_per_minute")) {
      if (s.has("max_requests_per_window") || s.has("rate_limit_window")) {
        s.take("max_requests_per_minute");
        s.fail_key("max_requests_per_minute",
                   "set either max_requests_per_minute or rate_limit_window with "
                   "max_requests_per_window");
      } else {
        c.security.rate_limit_window_s = 60;
        s.integer("max_requests_per_minute", c.security.max_requests_per_window, 1, 100'000'000);
      }
    }
    s.boolean("enable_security_headers", c.security.enable_security_headers);
    s.boolean("enable_csp", c.security.enable_csp);
    s.string("csp_policy", c.security.csp_policy);
    s.ignored("hsts_max_age",
              "the only HTTP listener (monitoring) is plain HTTP, where RFC 6797 7.2 forbids "
              "Strict-Transport-Security");
    s.boolean("enable_audit_logging", c.security.enable_audit_logging);
    s.integer("audit_retention_days", c.security.audit_retention_days, 0, 100'000);
    s.path("access_control_file", access_file);
    s.ignored("audit_log_level",
              "the audit trail records every event of the log; it has no level (the process "
              "log's is [logging] level)");
    // Input validation cannot be switched off: say so when asked to.
    for (std::string_view key : {"enable_input_validation", "strict_validation"}) {
      bool on = true;
      s.boolean(key, on);
      if (!on) s.warn(key, "ignored: every input is validated; this cannot be turned off");
    }
    std::int64_t max_request = 0;
    s.size("max_request_size", max_request, 1024, 1ll << 31);
    if (max_request > 0) {
      // No single request (a message, an APPENDed literal) may be larger.
      c.smtp.max_message_size = std::min(c.smtp.max_message_size, max_request);
      c.imap.append_limit = std::min(c.imap.append_limit, max_request);
    }
    s.finish();
  }
  {
    // The guide's access-control file, or the same table in this one.
    const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
    const bool here = top.has("access_control");
    Section s = top.sub("access_control");
    if (access_file.empty()) {
      read_access(s, dir, c.security.access);
    } else if (here) {
      top.fail_key("access_control",
                   "is in this file and in security.access_control_file; keep one of them");
    } else {
      read_access_file(access_file.is_relative() ? dir / access_file : access_file,
                       c.security.access, errors, c.warnings);
    }
  }
  {
    Section s = top.sub("monitoring");
    s.boolean(s.either("enabled", "metrics"), c.monitoring.enabled);
    // A [[server.listener]] with protocol "http" is this listener too.
    if (const Listener* http = c.listener("http")) {
      c.monitoring.bind = http->bind;
      for (std::string_view key : {"bind", "prometheus_port"})
        if (s.has(key)) s.fail_key(key, "the [[server.listener]] of protocol \"http\" sets it too");
    }
    s.string("bind", c.monitoring.bind);
    if (port_of(c.monitoring.bind) < 0) s.fail_key("bind", "expected host:port");
    int port = 0;
    s.integer("prometheus_port", port, 0, 65535);
    if (s.has("prometheus_port")) {
      c.monitoring.bind =
          c.monitoring.bind.substr(0, c.monitoring.bind.rfind(':') + 1) + std::to_string(port);
    }
    s.integer("health_check_interval", c.monitoring.health_check_interval_s, 1, 3600);
    s.integer("max_projector_lag", c.monitoring.max_projector_lag, 1, 1ll << 40);
    s.ignored("metrics_retention",
              "the daemon exports current values; history is Prometheus's "
              "(--storage.tsdb.retention.time)");
    s.finish();
  }
  {
    Section s = top.sub("logging");
    s.one_of("level", c.logging.level,
             {"trace", "debug", "info", "warn", "error", "critical", "off"});
    s.one_of("format", c.logging.format, {"text", "json"});
    std::string output;
    s.string(s.either("file", "output"), output);
    if (output == "stdout") {
      c.logging.to_stdout = true;
    } else if (output != "stderr") {
      c.logging.file = output;
    }
    s.size("max_size", c.logging.max_size, 0, 1ll << 40);
    if (c.logging.max_size > 0 && c.logging.max_size < 4096)
      s.fail_key("max_size", "must be 0 (no rotation) or at least 4096 bytes");
    s.integer("max_files", c.logging.max_files, 1, 10000);
    if (c.logging.max_size > 0 && c.logging.file.empty())
      s.fail_key("max_size", "rotation needs a file (output)");
    s.finish();
  }
  {
    Section s = top.sub("performance");
    int workers = 0;
    s.integer("worker_threads", workers, 1, 256);
    if (workers) {
      if (c.server.threads && c.server.threads != workers) {
        s.fail_key("worker_threads", "differs from server.threads; set one of them");
      }
      c.server.threads = workers;
    }
    s.size("cache_size", c.performance.cache_size, 1 << 20, 1ll << 40);
    s.integer("io_buffer_size", c.performance.io_buffer_size, 0, 1 << 20);
    if (c.performance.io_buffer_size > 0 && c.performance.io_buffer_size < 512)
      s.fail_key("io_buffer_size", "must be 0 (the protocol's default) or at least 512");
    s.integer("batch_size", c.performance.batch_size, 1, 1'000'000);
    for (std::string_view key :
         {"connection_pool_size", "connection_pool_timeout", "connection_pool_max_idle"})
      s.ignored(key, kNoPool);
    s.ignored("cache_ttl",
              "the view's block cache keeps what is read most (LRU); entries do not expire, "
              "the view is always current");
    s.ignored("cache_compression",
              "the view's files are LZ4-compressed on disk; its cache holds uncompressed "
              "blocks, as RocksDB does");
    s.ignored("max_concurrent_requests",
              "each connection runs one command at a time, so concurrency is bounded by "
              "server.max_connections");
    s.ignored("request_timeout",
              "each protocol has its own RFC timeouts (server.timeout, smtp.data_timeout_s, "
              "imap.search_timeout)");
    bool async = true;
    s.boolean("async_io", async);
    if (!async) s.warn("async_io", "ignored: all network I/O is asynchronous (Boost.Asio)");
    s.finish();
  }
  top.finish();
  if (server_timeout > 0) {
    // The guide's one timeout, raised to each protocol's RFC minimum.
    if (!smtp_timeout) c.smtp.command_timeout_s = server_timeout;
    if (!pop3_timeout) c.pop3.timeout_s = std::max(server_timeout, 600);
    if (!imap_timeout) c.imap.autologout_s = std::max(server_timeout, 1800);
  }
  apply_environment(c, errors);
  // The PROXY protocol needs both halves: listeners that expect it, and
  // the proxies allowed to send it.
  const bool proxied = std::any_of(c.server.listeners.begin(), c.server.listeners.end(),
                                   [](const Listener& l) { return l.proxy_protocol; });
  if (proxied && c.security.trusted_proxies.empty()) {
    errors.push_back(
        fmt::format("{}: server.listener.proxy_protocol: needs [security] "
                    "trusted_proxies (the proxies allowed to send the header)",
                    file.string()));
  } else if (!proxied && !c.security.trusted_proxies.empty()) {
    c.warnings.push_back(fmt::format(
        "{}: security.trusted_proxies: not used: no [[server.listener]] has proxy_protocol = "
        "true, so every client is seen with its own address",
        file.string()));
  }
  // Every error of the file at once, one per line.
  if (!errors.empty()) throw ConfigError(fmt::format("{}", fmt::join(errors, "\n")));

  // Relative paths are relative to the configuration file's directory.
  const fs::path base = file.has_parent_path() ? file.parent_path() : fs::path(".");
  // A fallback is built from paths already resolved.
  auto resolve = [&](fs::path& p, const fs::path& fallback) {
    if (p.empty()) {
      p = fallback;
    } else if (p.is_relative()) {
      p = base / p;
    }
  };
  resolve(c.server.data_dir, base / "data");
  resolve(c.eventlog.path, c.server.data_dir / "log");
  resolve(c.store.path, c.server.data_dir / "view");
  resolve(c.tls.certificate, {});
  resolve(c.tls.private_key, {});
  for (auto& k : c.outbound.dkim)
    resolve(k.private_key, {});
  for (auto& a : c.outbound.dnssec_trust_anchors)
    resolve(a, {});
  if (!c.logging.file.empty()) resolve(c.logging.file, {});
  return c;
}

Config load(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw ConfigError(fmt::format("{}: cannot open: {}", file.string(), std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), file);
}

}  // namespace a3::config
