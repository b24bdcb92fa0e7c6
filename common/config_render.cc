// The effective configuration as TOML (a3mailer --check-config): every
// section and key with the value in force, defaults included, relative
// paths resolved, secrets masked.
#include <sstream>

#include <toml++/toml.h>

#include "common/config.h"

namespace a3::config {

namespace {

constexpr const char* kMasked = "********";

toml::array strings(const std::vector<std::string>& v) {
  toml::array a;
  for (const auto& s : v)
    a.push_back(s);
  return a;
}

toml::array paths(const std::vector<std::filesystem::path>& v) {
  toml::array a;
  for (const auto& p : v)
    a.push_back(p.string());
  return a;
}

std::string secret(const std::string& s) {
  return s.empty() ? s : kMasked;
}

// A libpq connection string or URI without its password.
std::string without_password(const std::string& url) {
  std::string out = url;
  if (const auto scheme = out.find("://"); scheme != std::string::npos) {
    const auto at = out.find('@', scheme + 3);
    const auto colon = out.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at)
      out.replace(colon + 1, at - colon - 1, kMasked);
  }
  for (std::size_t pos = out.find("password="); pos != std::string::npos;
       pos = out.find("password=", pos + 1)) {
    const std::size_t start = pos + 9;
    const std::size_t end = out.find(' ', start);
    out.replace(start, (end == std::string::npos ? out.size() : end) - start, kMasked);
  }
  return out;
}

bool secret_key(const std::string& key) {
  for (const char* word : {"password", "secret", "jaas", "token", "key"})
    if (key.find(word) != std::string::npos) return true;
  return false;
}

}  // namespace

std::string render(const Config& c) {
  // The monitoring address is the http listener's when there is one: said
  // once, so that the rendering loads again.
  toml::table monitoring{{"enabled", c.monitoring.enabled},
                         {"health_check_interval", c.monitoring.health_check_interval_s},
                         {"max_projector_lag", c.monitoring.max_projector_lag}};
  if (!c.listener("http")) monitoring.insert("bind", c.monitoring.bind);
  toml::array listeners;
  for (const auto& l : c.server.listeners) {
    listeners.push_back(toml::table{{"protocol", l.protocol},
                                    {"bind", l.bind},
                                    {"tls", l.tls == TlsMode::implicit   ? "implicit"
                                            : l.tls == TlsMode::starttls ? "starttls"
                                                                         : "none"},
                                    {"proxy_protocol", l.proxy_protocol}});
  }
  toml::table kafka_properties;
  for (const auto& [k, v] : c.eventlog.kafka.properties)
    kafka_properties.insert_or_assign(k, secret_key(k) ? secret(v) : v);
  toml::array dkim;
  for (const auto& k : c.outbound.dkim) {
    dkim.push_back(toml::table{{"domain", k.domain},
                               {"selector", k.selector},
                               {"private_key", k.private_key.string()},
                               {"algorithm", k.algorithm}});
  }
  // A URL, or the parts of one (not both: the loader refuses that).
  toml::table database{{"enabled", c.database.enabled}};
  if (!c.database.url.empty()) {
    database.insert("url", without_password(c.database.url));
  } else {
    database.insert("host", c.database.host);
    if (c.database.port) database.insert("port", c.database.port);
    database.insert("database", c.database.name);
    database.insert("username", c.database.username);
  }
  database.insert("password", secret(c.database.password));
  if (c.database.connect_timeout_s)
    database.insert("connect_timeout_s", c.database.connect_timeout_s);
  toml::table t{
      {"server", toml::table{{"hostname", c.server.hostname},
                             {"local_domains", strings(c.server.local_domains)},
                             {"data_dir", c.server.data_dir.string()},
                             {"threads", c.server.threads},
                             {"listener", listeners}}},
      {"tls", toml::table{{"certificate", c.tls.certificate.string()},
                          {"private_key", c.tls.private_key.string()},
                          {"min_version", c.tls.min_version},
                          {"max_version", c.tls.max_version},
                          {"ciphers", c.tls.ciphers},
                          {"ciphersuites", c.tls.ciphersuites}}},
      {"eventlog", toml::table{{"backend", c.eventlog.backend},
                               {"path", c.eventlog.path.string()},
                               {"partitions", c.eventlog.partitions},
                               {"group_commit_max_records", c.eventlog.group_commit_max_records},
                               {"group_commit_max_bytes", c.eventlog.group_commit_max_bytes},
                               {"kafka", toml::table{{"brokers", c.eventlog.kafka.brokers},
                                                     {"topic", c.eventlog.kafka.topic},
                                                     {"compression", c.eventlog.kafka.compression},
                                                     {"delivery_timeout_ms",
                                                      c.eventlog.kafka.delivery_timeout_ms},
                                                     {"linger_ms", c.eventlog.kafka.linger_ms},
                                                     {"properties", kafka_properties}}}}},
      {"store", toml::table{{"path", c.store.path.string()}}},
      {"database", database},
      {"smtp", toml::table{{"max_message_size", c.smtp.max_message_size},
                           {"max_recipients", c.smtp.max_recipients},
                           {"max_line_length", c.smtp.max_line_length},
                           {"max_errors", c.smtp.max_errors},
                           {"allow_plaintext_auth", c.smtp.allow_plaintext_auth},
                           {"reject_bare_lf", c.smtp.reject_bare_lf},
                           {"enable_vrfy", c.smtp.enable_vrfy},
                           {"command_timeout_s", c.smtp.command_timeout_s},
                           {"data_timeout_s", c.smtp.data_timeout_s},
                           {"relay_host", c.smtp.relay_host},
                           {"relay_port", c.smtp.relay_port},
                           {"relay_auth", c.smtp.relay_auth},
                           {"relay_username", c.smtp.relay_username},
                           {"relay_password", secret(c.smtp.relay_password)},
                           {"check_spf", c.smtp.check_spf},
                           {"check_dkim", c.smtp.check_dkim},
                           {"check_dmarc", c.smtp.check_dmarc},
                           {"dmarc_reject", c.smtp.dmarc_reject},
                           {"dmarc_quarantine", c.smtp.dmarc_quarantine},
                           {"check_dns_timeout_s", c.smtp.check_dns_timeout_s}}},
      {"outbound",
       toml::table{{"enabled", c.outbound.enabled},
                   {"trusted_networks", strings(c.outbound.trusted_networks)},
                   {"resolvers", strings(c.outbound.resolvers)},
                   {"mx_port", c.outbound.mx_port},
                   {"retry_initial_s", c.outbound.retry_initial_s},
                   {"retry_max_s", c.outbound.retry_max_s},
                   {"max_queue_lifetime_s", c.outbound.max_queue_lifetime_s},
                   {"delay_warning_s", c.outbound.delay_warning_s},
                   {"connect_timeout_s", c.outbound.connect_timeout_s},
                   {"command_timeout_s", c.outbound.command_timeout_s},
                   {"data_timeout_s", c.outbound.data_timeout_s},
                   {"max_connections_per_destination", c.outbound.max_connections_per_destination},
                   {"concurrency", c.outbound.concurrency},
                   {"require_tls", strings(c.outbound.require_tls)},
                   {"allow_private_destinations", c.outbound.allow_private_destinations},
                   {"dnssec_trust_anchors", paths(c.outbound.dnssec_trust_anchors)},
                   {"dkim", dkim}}},
      {"imap", toml::table{{"max_connections_per_user", c.imap.max_connections_per_user},
                           {"search_timeout_s", c.imap.search_timeout_s},
                           {"max_line_before_auth", c.imap.max_line_before_auth},
                           {"max_line_after_auth", c.imap.max_line_after_auth},
                           {"append_limit", c.imap.append_limit},
                           {"allow_plaintext_auth", c.imap.allow_plaintext_auth},
                           {"autologout_s", c.imap.autologout_s},
                           {"idle_timeout_s", c.imap.idle_timeout_s}}},
      {"pop3", toml::table{{"max_connections_per_user", c.pop3.max_connections_per_user},
                           {"allow_plaintext_auth", c.pop3.allow_plaintext_auth},
                           {"timeout_s", c.pop3.timeout_s}}},
      {"security",
       toml::table{
           {"max_connections", c.security.max_connections},
           {"max_connections_per_ip", c.security.max_connections_per_ip},
           {"login_timeout_s", c.security.login_timeout_s},
           {"auth_failures_before_delay", c.security.auth_failures_before_delay},
           {"max_auth_delay_s", c.security.max_auth_delay_s},
           {"blocked_networks", strings(c.security.blocked_networks)},
           {"trusted_proxies", strings(c.security.trusted_proxies)},
           {"ban_after_auth_failures", c.security.ban_after_auth_failures},
           {"ban_after_protocol_errors", c.security.ban_after_protocol_errors},
           {"ban_after_unknown_recipients", c.security.ban_after_unknown_recipients},
           {"ban_window_s", c.security.ban_window_s},
           {"ban_duration_s", c.security.ban_duration_s},
           {"exempt_networks", strings(c.security.exempt_networks)},
           {"max_messages_per_hour_per_account", c.security.max_messages_per_hour_per_account},
           {"max_messages_per_hour_per_ip", c.security.max_messages_per_hour_per_ip},
           {"enable_rate_limiting", c.security.enable_rate_limiting},
           {"rate_limit_window", c.security.rate_limit_window_s},
           {"max_requests_per_window", c.security.max_requests_per_window},
           {"enable_security_headers", c.security.enable_security_headers},
           {"enable_csp", c.security.enable_csp},
           {"csp_policy", c.security.csp_policy},
           {"enable_audit_logging", c.security.enable_audit_logging},
           {"audit_retention_days", c.security.audit_retention_days}}},
      {"monitoring", monitoring},
      {"logging", toml::table{{"level", c.logging.level},
                              {"format", c.logging.format},
                              {"output", c.logging.to_stdout      ? std::string("stdout")
                                         : c.logging.file.empty() ? std::string("stderr")
                                                                  : c.logging.file.string()},
                              {"max_size", c.logging.max_size},
                              {"max_files", c.logging.max_files}}},
      {"performance", toml::table{{"cache_size", c.performance.cache_size},
                                  {"io_buffer_size", c.performance.io_buffer_size},
                                  {"batch_size", c.performance.batch_size}}},
  };
  // The access lists as a table of this file (the one it came from, if
  // any, is read already); only when set, as most files have none.
  const AccessControl& access = c.security.access;
  if (access.has_domains() || access.has_countries() ||
      access.country_database != AccessControl{}.country_database) {
    t.insert("access_control", toml::table{{"allow_domains", strings(access.allow_domains)},
                                           {"block_domains", strings(access.block_domains)},
                                           {"allow_countries", strings(access.allow_countries)},
                                           {"block_countries", strings(access.block_countries)},
                                           {"country_database", access.country_database.string()}});
  }
  // Basic strings with escapes only: toml++ 3.3 writes a string holding
  // three single quotes as a literal multi-line string it cannot read
  // back (found by tests/fuzz/config.cc).
  constexpr auto flags =
      toml::toml_formatter::default_flags &
      ~(toml::format_flags::allow_literal_strings | toml::format_flags::allow_multi_line_strings);
  std::ostringstream out;
  out << toml::toml_formatter(t, flags) << "\n";
  return out.str();
}

}  // namespace a3::config
