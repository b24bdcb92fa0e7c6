#include "common/config.h"
#include "common/network.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

namespace a3::config {

namespace {

namespace fs = std::filesystem;

std::string where(const fs::path& file, const toml::source_region& src) {
  if (src.begin.line == 0) return file.string();
  return fmt::format("{}:{}:{}", file.string(), src.begin.line, src.begin.column);
}

// Reads one TOML table, remembering the keys it consumed, so that whatever
// remains at the end is an unknown key (a typo must not be silently ignored).
// Errors are collected (every one of a file is reported at once); a key in
// error keeps its default.
class Section {
 public:
  Section(const fs::path& file, std::string name, const toml::table* table,
          std::vector<std::string>& errors)
      : file_(file), name_(std::move(name)), table_(table), errors_(errors) {}

  void fail(std::string_view key, const toml::node* node, std::string_view reason) const {
    const auto src = node ? node->source() : (table_ ? table_->source() : toml::source_region{});
    errors_.push_back(fmt::format("{}: {}: {}", where(file_, src), qualified(key), reason));
  }

  void fail_key(std::string_view key, std::string_view reason) const {
    fail(key, table_ ? table_->get(key) : nullptr, reason);
  }

  std::string qualified(std::string_view key) const {
    return name_.empty() ? std::string(key) : fmt::format("{}.{}", name_, key);
  }

  const toml::node* take(std::string_view key) {
    if (!table_) return nullptr;
    seen_.insert(std::string(key));
    return table_->get(key);
  }

  void string(std::string_view key, std::string& out) {
    const toml::node* n = take(key);
    if (!n) return;
    const auto* s = n->as_string();
    if (!s) return fail(key, n, "expected a string");
    out = expand_env(key, n, s->get());
  }

  void one_of(std::string_view key, std::string& out, std::initializer_list<std::string_view> ok) {
    const std::string before = out;
    const std::size_t errors = errors_.size();
    string(key, out);
    if (errors_.size() != errors) return;
    for (auto v : ok) {
      if (out == v) return;
    }
    fail(key, table_ ? table_->get(key) : nullptr,
         fmt::format("\"{}\" is not one of: {}", out, fmt::join(ok, ", ")));
    out = before;
  }

  void path(std::string_view key, fs::path& out) {
    std::string s;
    string(key, s);
    if (!s.empty()) out = s;
  }

  template <typename Int>
  void integer(std::string_view key, Int& out, std::int64_t min, std::int64_t max) {
    const toml::node* n = take(key);
    if (!n) return;
    const auto* v = n->as_integer();
    if (!v) return fail(key, n, "expected an integer");
    const std::int64_t x = v->get();
    if (x < min || x > max)
      return fail(key, n, fmt::format("must be between {} and {} (got {})", min, max, x));
    out = static_cast<Int>(x);
  }

  void boolean(std::string_view key, bool& out) {
    const toml::node* n = take(key);
    if (!n) return;
    const auto* v = n->as_boolean();
    if (!v) return fail(key, n, "expected true or false");
    out = v->get();
  }

  void strings(std::string_view key, std::vector<std::string>& out) {
    const toml::node* n = take(key);
    if (!n) return;
    const auto* arr = n->as_array();
    if (!arr) return fail(key, n, "expected an array of strings");
    out.clear();
    for (const auto& e : *arr) {
      const auto* s = e.as_string();
      if (!s) {
        fail(key, &e, "expected an array of strings");
        continue;
      }
      out.push_back(expand_env(key, &e, s->get()));
    }
  }

  // An array of tables ([[section.key]]): `each` reads one as a Section
  // named section.key[i], and every key of it must have been taken.
  template <typename F>
  void tables(std::string_view key, F&& each) {
    const toml::node* n = take(key);
    if (!n) return;
    const auto* arr = n->as_array();
    if (!arr)
      return fail(key, n, fmt::format("expected an array of tables ([[{}]])", qualified(key)));
    int i = 0;
    for (const auto& e : *arr) {
      if (!e.is_table()) {
        fail(key, &e, "expected a table");
        continue;
      }
      Section t(file_, fmt::format("{}[{}]", qualified(key), i++), e.as_table(), errors_);
      each(t);
      t.finish();
    }
  }

  // A sub-table; absent is an empty section.
  Section sub(std::string_view key) {
    const toml::node* n = take(key);
    if (n && !n->is_table()) fail(key, n, "expected a table");
    return Section(file_, qualified(key), n ? n->as_table() : nullptr, errors_);
  }

  const toml::table* table() const { return table_; }
  const std::string& name() const { return name_; }

  // Every key of the table must have been taken.
  void finish() const {
    if (!table_) return;
    for (const auto& [k, v] : *table_) {
      if (!seen_.contains(std::string(k.str()))) fail(k.str(), &v, "unknown key");
    }
  }

 private:
  std::string expand_env(std::string_view key, const toml::node* n, const std::string& v) const {
    if (v.size() > 3 && v.starts_with("${") && v.ends_with("}")) {
      const std::string var = v.substr(2, v.size() - 3);
      const char* value = std::getenv(var.c_str());
      if (!value) {
        fail(key, n, fmt::format("environment variable {} is not set", var));
        return "";
      }
      return value;
    }
    return v;
  }

  const fs::path& file_;
  std::string name_;
  const toml::table* table_;
  std::set<std::string> seen_;
  std::vector<std::string>& errors_;
};

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
  Section top(file, "", &root, errors);

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
      std::string tls =
          out.protocol == "submissions" || out.protocol == "imaps" || out.protocol == "pop3s"
              ? "implicit"
          : out.protocol == "http" ? "none"
                                   : "starttls";
      l.one_of("tls", tls, {"none", "starttls", "implicit"});
      out.tls = tls == "implicit"   ? TlsMode::implicit
                : tls == "starttls" ? TlsMode::starttls
                                    : TlsMode::none;
      c.server.listeners.push_back(std::move(out));
    });
    s.finish();
  }
  {
    Section s = top.sub("tls");
    s.path("certificate", c.tls.certificate);
    s.path("private_key", c.tls.private_key);
    s.one_of("min_version", c.tls.min_version, {"TLSv1.2", "TLSv1.3"});
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
    s.finish();
  }
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
    s.integer("command_timeout_s", c.smtp.command_timeout_s, 300, 86400);
    s.integer("data_timeout_s", c.smtp.data_timeout_s, 600, 86400);
    s.string("relay_host", c.smtp.relay_host);
    s.integer("relay_port", c.smtp.relay_port, 1, 65535);
    s.boolean("relay_auth", c.smtp.relay_auth);
    s.string("relay_username", c.smtp.relay_username);
    s.string("relay_password", c.smtp.relay_password);
    if (c.smtp.relay_auth && c.smtp.relay_password.empty()) {
      if (const char* p = std::getenv("A3_RELAY_PASSWORD")) c.smtp.relay_password = p;
    }
    if (c.smtp.relay_auth && (c.smtp.relay_username.empty() || c.smtp.relay_password.empty()))
      s.fail_key("relay_auth", "needs relay_username and relay_password (or $A3_RELAY_PASSWORD)");
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
    s.integer("max_line_before_auth", c.imap.max_line_before_auth, 1024, 1 << 24);
    s.integer("max_line_after_auth", c.imap.max_line_after_auth, 8192, 1 << 24);
    s.integer("append_limit", c.imap.append_limit, 1024, 1ll << 31);
    s.boolean("allow_plaintext_auth", c.imap.allow_plaintext_auth);
    s.integer("autologout_s", c.imap.autologout_s, 1800, 86400);      // RFC 9051 5.4
    s.integer("idle_timeout_s", c.imap.idle_timeout_s, 1740, 86400);  // RFC 2177: 29 minutes
    s.finish();
  }
  {
    Section s = top.sub("pop3");
    s.boolean("allow_plaintext_auth", c.pop3.allow_plaintext_auth);
    s.integer("timeout_s", c.pop3.timeout_s, 600, 86400);  // RFC 1939 3
    s.finish();
  }
  {
    Section s = top.sub("security");
    s.integer("max_connections", c.security.max_connections, 1, 1'000'000);
    s.integer("max_connections_per_ip", c.security.max_connections_per_ip, 1, 1'000'000);
    s.integer("auth_failures_before_delay", c.security.auth_failures_before_delay, 0, 1000);
    s.integer("max_auth_delay_s", c.security.max_auth_delay_s, 0, 3600);
    s.strings("blocked_networks", c.security.blocked_networks);
    s.finish();
  }
  {
    Section s = top.sub("monitoring");
    s.boolean("metrics", c.monitoring.metrics);
    s.finish();
  }
  {
    Section s = top.sub("logging");
    s.one_of("level", c.logging.level,
             {"trace", "debug", "info", "warn", "error", "critical", "off"});
    s.one_of("format", c.logging.format, {"text", "json"});
    s.path("file", c.logging.file);
    s.finish();
  }
  top.finish();
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
