// The server configuration: one TOML file, sections as in DESIGN.md.
//
// Loading is strict: an unknown key, a value of the wrong type or out of
// range stops start-up with a ConfigError naming the file, the key (and its
// line) and the reason. Relative paths are relative to the configuration
// file's directory. A string value of the exact form "${NAME}" is read from
// the environment variable NAME, so secrets need not be in the file.
//
// The deployment guide's config.toml loads as it stands: its key names are
// read beside ours (docs/configuration.md has both), and a key of it that
// cannot apply to this design is accepted with a warning saying why
// (Config::warnings). Its environment variables (STALWART_DB_PASSWORD, ...,
// and the A3_* equivalents) override the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace a3::config {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class TlsMode { none, starttls, implicit };

struct Listener {
  std::string protocol;  // smtp, submission, submissions, imap, imaps, pop3, pop3s, http
  std::string bind;      // host:port, e.g. "127.0.0.1:2525" or "[::1]:2525"
  TlsMode tls = TlsMode::none;
  // Every connection starts with a PROXY protocol header (v1 or v2) from
  // one of [security] trusted_proxies, naming the client (docs/security.md).
  bool proxy_protocol = false;
};

struct Server {
  std::string hostname = "localhost";
  std::vector<std::string> local_domains;
  std::filesystem::path data_dir;  // default: "data" beside the config file
  int threads = 0;                 // I/O threads; 0 = one per core
  std::vector<Listener> listeners;
};

struct Tls {
  std::filesystem::path certificate;
  std::filesystem::path private_key;  // the guide's `private-key` too
  std::string min_version = "TLSv1.2";
  std::string max_version = "TLSv1.3";
  // OpenSSL cipher lists: `ciphers` for TLS 1.2, `ciphersuites` for 1.3;
  // empty: OpenSSL's defaults.
  std::string ciphers;
  std::string ciphersuites;
};

struct Kafka {
  std::string brokers;  // bootstrap servers, "host:port,host:port"
  std::string topic = "a3.events";
  std::string compression = "lz4";  // none, gzip, snappy, lz4, zstd
  int delivery_timeout_ms = 30000;  // how long an append may wait for acks=all
  int linger_ms = 2;
  std::map<std::string, std::string> properties;  // extra librdkafka settings
};

struct EventLog {
  std::string backend = "local";  // local | kafka
  std::filesystem::path path;     // local log directory (default: <data_dir>/log)
  int partitions = 1;
  int group_commit_max_records = 4096;
  std::int64_t group_commit_max_bytes = 64ll << 20;
  Kafka kafka;
};

struct Store {
  std::filesystem::path path;  // RocksDB mailbox view (default: <data_dir>/view)
};

// The audit trail's PostgreSQL: a libpq URL, or the guide's parts of one.
struct Database {
  bool enabled = true;
  std::string url;  // libpq connection string or URI
  std::string host;
  int port = 0;  // 0: libpq's default
  std::string name;
  std::string username;
  std::string password;       // $STALWART_DB_PASSWORD / $A3_DB_PASSWORD override it
  int connect_timeout_s = 0;  // 0: libpq's default (none)

  // What libpq is given: `url`, or a connection string built from the parts.
  std::string conninfo() const;
  // A database is named (a url, a host or a database name): a password
  // alone (say from the environment) turns nothing on.
  bool configured() const { return !url.empty() || !host.empty() || !name.empty(); }
};

struct Smtp {
  std::int64_t max_message_size = 50'000'000;
  int max_recipients = 100;
  int max_line_length = 1000;  // RFC 5321 4.5.3.1.6 text line
  int max_errors = 20;
  bool allow_plaintext_auth = false;
  bool reject_bare_lf = true;
  bool enable_vrfy = false;
  int command_timeout_s = 300;  // RFC 5321 4.5.3.2
  int data_timeout_s = 600;
  // The deployment guide's smarthost: everything outbound goes there.
  std::string relay_host;  // empty: straight to each domain's MX hosts
  int relay_port = 25;
  bool relay_auth = false;     // AUTH PLAIN to the relay (after STARTTLS)
  std::string relay_username;  // "${VAR}" takes it from the environment
  std::string relay_password;  // default: $A3_RELAY_PASSWORD
  // Who sent what the MX port receives (docs/authentication.md): results in
  // an Authentication-Results header; not for authenticated clients or
  // [outbound] trusted_networks.
  bool check_spf = true;
  bool check_dkim = true;
  bool check_dmarc = true;
  bool dmarc_reject = true;      // p=reject: 550 5.7.1 (false: into Junk)
  bool dmarc_quarantine = true;  // p=quarantine (and reject, unenforced): into Junk
  int check_dns_timeout_s = 5;   // per DNS query of the checks
};

// A DKIM signing key (RFC 6376): mail from `domain` is signed with it.
struct DkimKey {
  std::string domain;
  std::string selector;
  std::filesystem::path private_key;     // PEM
  std::string algorithm = "rsa-sha256";  // or "ed25519-sha256" (RFC 8463)
};

// Outbound delivery (docs/outbound.md).
struct Outbound {
  bool enabled = true;  // queue mail for other domains from authenticated clients
  std::vector<std::string> trusted_networks;  // CIDR: may relay without AUTH
  std::vector<std::string> resolvers;         // "IP" or "IP@port"; empty: /etc/resolv.conf
  int mx_port = 25;                           // the port of MX hosts (tests use others)
  int retry_initial_s = 300;                  // first retry after a 4xx; doubles
  int retry_max_s = 3600;                     // up to this
  int max_queue_lifetime_s = 5 * 86400;       // then it bounces (Expired)
  int delay_warning_s = 4 * 3600;             // then the sender is told, once; 0: never
  int connect_timeout_s = 30;
  int command_timeout_s = 300;  // RFC 5321 4.5.3.2
  int data_timeout_s = 600;     // the reply to the end of data (4.5.3.2.6)
  int max_connections_per_destination = 10;
  int concurrency = 50;                  // deliveries in flight at once
  std::vector<std::string> require_tls;  // domains delivered to only over TLS
  std::vector<DkimKey> dkim;             // [[outbound.dkim]]
  // MX hosts (and domain literals) on loopback, private or link-local
  // addresses are skipped unless this is set (a loop back to us, or a way
  // into internal networks); the relay host is always allowed.
  bool allow_private_destinations = false;
  // DNSSEC trust anchors (files of DS or DNSKEY records, e.g. Debian's
  // /usr/share/dns/root.key): the delivery resolver validates, and DANE
  // (RFC 7672) applies where TLSA records validate. None: neither.
  std::vector<std::filesystem::path> dnssec_trust_anchors;
};

struct Imap {
  int max_connections_per_user = 0;  // authenticated sessions of one account; 0: no limit
  int search_timeout_s = 0;          // SEARCH gives up with NO [LIMIT] after this; 0: never
  int max_line_before_auth = 8 * 1024;
  int max_line_after_auth = 64 * 1024;
  std::int64_t append_limit = 50'000'000;
  bool allow_plaintext_auth = false;
  int autologout_s = 1800;  // RFC 9051 5.4: at least 30 minutes
  int idle_timeout_s = 1800;
};

struct Pop3 {
  int max_connections_per_user = 0;  // 0: no limit (the maildrop lock allows one session anyway)
  bool allow_plaintext_auth = false;
  int timeout_s = 600;  // RFC 1939 3: at least 10 minutes
};

// The guide's access-control file: which sender domains the MX takes (at
// MAIL FROM) and which countries clients may connect from. Its
// [access_control] table is in the file [security] access_control_file
// names, or in this one (docs/security.md).
struct AccessControl {
  // Domains, lowercase without a trailing dot; each also covers its
  // subdomains, and the longest entry that covers a sender decides.
  std::vector<std::string> allow_domains, block_domains;
  // ISO 3166-1 alpha-2 codes, upper case.
  std::vector<std::string> allow_countries, block_countries;
  // libloc's database (Debian's libloc-database), read when a country
  // list is set.
  std::filesystem::path country_database = "/usr/share/libloc-location/location.db";

  bool has_domains() const { return !allow_domains.empty() || !block_domains.empty(); }
  bool has_countries() const { return !allow_countries.empty() || !block_countries.empty(); }
};

struct Security {
  int max_connections = 2000;
  int max_connections_per_ip = 50;
  // An IMAP or POP3 client must have logged in this long after it
  // connected, or it is closed (Dovecot's 3 minutes).
  int login_timeout_s = 180;
  int auth_failures_before_delay = 3;
  int max_auth_delay_s = 30;
  std::vector<std::string> blocked_networks;  // CIDR; the guide's `blocked_ips` too
  // Automatic bans (net::Guard): this many offenses of one kind from one
  // IP within ban_window_s ban it for ban_duration_s (0: never).
  int ban_after_auth_failures = 10;
  int ban_after_protocol_errors = 50;
  int ban_after_unknown_recipients = 20;
  int ban_window_s = 600;
  int ban_duration_s = 3600;
  // Never banned automatically (a webmail or proxy on the same host
  // speaks for many users); a3ctl ban still can.
  std::vector<std::string> exempt_networks = {"127.0.0.0/8", "::1/128"};
  std::vector<std::string> trusted_proxies;  // CIDR (issue 14: PROXY protocol)
  // Messages a client may send per hour (0: no limit): a logged-in one by
  // its account (submission), any other by its IP (the MX).
  int max_messages_per_hour_per_account = 0;
  int max_messages_per_hour_per_ip = 0;
  // The guide's rate limit: requests (commands) per client IP per window.
  bool enable_rate_limiting = false;
  int rate_limit_window_s = 60;
  int max_requests_per_window = 1000;
  // The monitoring listener's HTTP answers carry X-Content-Type-Options,
  // X-Frame-Options, Cache-Control: no-store and, with enable_csp, the CSP.
  bool enable_security_headers = true;
  bool enable_csp = false;
  std::string csp_policy = "default-src 'none'";
  // The audit trail in PostgreSQL; rows older than audit_retention_days are
  // deleted (0: kept for ever).
  bool enable_audit_logging = true;
  int audit_retention_days = 0;
  AccessControl access;
};

// The monitoring HTTP listener: /metrics, /healthz/live, /healthz/ready.
struct Monitoring {
  // Off unless asked for (the guide's file does): its default port is also
  // Prometheus's own, which may run on the same host.
  bool enabled = false;                    // the guide's `enabled`; our older `metrics`
  std::string bind = "127.0.0.1:9090";     // the guide's `prometheus_port` sets the port
  int health_check_interval_s = 30;        // how often readiness is evaluated
  std::int64_t max_projector_lag = 10000;  // events behind the log; above: not ready
};

struct Logging {
  std::string level = "info";   // trace, debug, info, warn, error, critical, off
  std::string format = "text";  // text | json
  std::filesystem::path file;   // the guide's `output`; empty: standard error
  bool to_stdout = false;       // output = "stdout"
  std::int64_t max_size = 0;    // rotate at this size (bytes); 0: never (logrotate + SIGHUP)
  int max_files = 10;           // rotated files kept
};

// The guide's [performance] section, where it maps onto this design.
struct Performance {
  std::int64_t cache_size = 64ll << 20;  // the mailbox view's RocksDB block cache
  int io_buffer_size = 0;  // bytes read from a connection at a time; 0: SMTP 16 KiB, others 4 KiB
  int batch_size = 2048;   // events the projector applies per view write
};

struct Config {
  std::filesystem::path source;  // the file it was loaded from
  Server server;
  Tls tls;
  EventLog eventlog;
  Store store;
  Database database;
  Smtp smtp;
  Outbound outbound;
  Imap imap;
  Pop3 pop3;
  Security security;
  Monitoring monitoring;
  Logging logging;
  Performance performance;
  // Keys accepted that cannot apply here, each with why ("FILE:LINE:COL:
  // key: ..."): a3mailer logs them at start and --check-config prints them.
  std::vector<std::string> warnings;

  const Listener* listener(std::string_view protocol) const;
  // The PostgreSQL audit trail is on: enabled, not switched off by the
  // guide's enable_audit_logging, and a database named.
  bool audit_trail() const {
    return database.enabled && security.enable_audit_logging && database.configured();
  }
};

// Parses and validates a configuration file. Throws ConfigError.
Config load(const std::filesystem::path& file);

// Parses configuration text; `file` is used for messages and relative paths.
Config parse(std::string_view text, const std::filesystem::path& file);

// The configuration in force as TOML (every key, defaults included, paths
// resolved), with secrets (relay password, the database URL's password,
// Kafka properties named like credentials) masked: `--check-config`.
std::string render(const Config& config);

}  // namespace a3::config
