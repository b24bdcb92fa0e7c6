#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/config.h"

namespace a3::config {
namespace {

std::string error_of(std::string_view text) {
  try {
    parse(text, "/etc/a3/test.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsFromAnEmptyFile) {
  const Config c = parse("", "/etc/a3/a3mailer.toml");
  EXPECT_EQ(c.eventlog.backend, "local");
  EXPECT_EQ(c.eventlog.partitions, 1);
  EXPECT_EQ(c.server.data_dir, "/etc/a3/data");
  EXPECT_EQ(c.eventlog.path, "/etc/a3/data/log");
  EXPECT_EQ(c.store.path, "/etc/a3/data/view");
  EXPECT_EQ(c.smtp.max_message_size, 50'000'000);
  EXPECT_EQ(c.smtp.max_recipients, 100);
}

TEST(Config, ReadsEverySectionAndResolvesRelativePaths) {
  const Config c = parse(R"(
[server]
hostname = "mx.example.test"
local_domains = ["example.test"]
data_dir = "state"
[[server.listener]]
protocol = "smtp"
bind = "127.0.0.1:2525"
[[server.listener]]
protocol = "imaps"
bind = "[::1]:1993"
[tls]
certificate = "tls/cert.pem"
private_key = "/abs/key.pem"
[eventlog]
backend = "kafka"
partitions = 8
[eventlog.kafka]
brokers = "127.0.0.1:9092"
topic = "mail"
properties = { "security.protocol" = "plaintext" }
[smtp]
check_spf = false
dmarc_reject = false
check_dns_timeout_s = 2
[outbound]
dnssec_trust_anchors = ["keys/root.key", "/usr/share/dns/root.key"]
[logging]
format = "json"
)",
                         "/srv/a3/a3.toml");
  EXPECT_EQ(c.server.hostname, "mx.example.test");
  EXPECT_EQ(c.server.data_dir, "/srv/a3/state");
  EXPECT_EQ(c.eventlog.path, "/srv/a3/state/log");
  EXPECT_EQ(c.tls.certificate, "/srv/a3/tls/cert.pem");
  EXPECT_EQ(c.tls.private_key, "/abs/key.pem");
  ASSERT_EQ(c.server.listeners.size(), 2u);
  EXPECT_EQ(c.server.listeners[0].tls, TlsMode::starttls);
  EXPECT_EQ(c.server.listeners[1].tls, TlsMode::implicit);
  EXPECT_EQ(c.listener("imaps")->bind, "[::1]:1993");
  EXPECT_EQ(c.eventlog.backend, "kafka");
  EXPECT_EQ(c.eventlog.partitions, 8);
  EXPECT_EQ(c.eventlog.kafka.topic, "mail");
  EXPECT_EQ(c.eventlog.kafka.properties.at("security.protocol"), "plaintext");
  EXPECT_EQ(c.logging.format, "json");
  EXPECT_FALSE(c.smtp.check_spf);
  EXPECT_TRUE(c.smtp.check_dkim);
  EXPECT_FALSE(c.smtp.dmarc_reject);
  EXPECT_EQ(c.smtp.check_dns_timeout_s, 2);
  ASSERT_EQ(c.outbound.dnssec_trust_anchors.size(), 2u);
  EXPECT_EQ(c.outbound.dnssec_trust_anchors[0], "/srv/a3/keys/root.key");
  EXPECT_EQ(c.outbound.dnssec_trust_anchors[1], "/usr/share/dns/root.key");
}

// Every bad input names the file, the line, the key and the reason.
TEST(Config, ErrorsNameFileLineKeyAndReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"[server]\nhostnme = \"x\"\n", "/etc/a3/test.toml:2:11: server.hostnme: unknown key"},
      {"[sever]\n", "/etc/a3/test.toml:1:1: sever: unknown key"},
      {"[eventlog]\npartitions = 0\n",
       "/etc/a3/test.toml:2:14: eventlog.partitions: must be between 1 and 1024 (got 0)"},
      {"[eventlog]\nbackend = \"zookeeper\"\n",
       "eventlog.backend: \"zookeeper\" is not one of: local, kafka"},
      {"[smtp]\nmax_recipients = \"ten\"\n", "smtp.max_recipients: expected an integer"},
      {"[smtp]\nmax_line_length = 500\n", "smtp.max_line_length: must be between 1000"},
      {"[imap]\nautologout_s = 60\n", "imap.autologout_s: must be between 1800"},
      {"[smtp]\ncheck_dns_timeout_s = 0\n", "smtp.check_dns_timeout_s: must be between 1 and 60"},
      {"[smtp]\ncheck_dmarc = \"yes\"\n", "smtp.check_dmarc: expected true or false"},
      {"[[server.listener]]\nprotocol = \"gopher\"\nbind = \"x:1\"\n",
       "server.listener[0].protocol: \"gopher\" is not one of"},
      {"[[server.listener]]\nprotocol = \"smtp\"\nbind = \"nocolon\"\n",
       "server.listener[0].bind: expected host:port"},
      {"[[server.listener]]\nprotocol = \"smtp\"\nbind = \"127.0.0.1:25\"\nport = 25\n",
       "server.listener[0].port: unknown key"},
      {"[eventlog]\nbackend = \"kafka\"\n", "eventlog.kafka.brokers: is required"},
      {"[logging]\nlevel = \"loud\"\n", "logging.level: \"loud\" is not one of"},
      {"[database]\nurl = \"${A3_TEST_SURELY_UNSET}\"\n",
       "database.url: environment variable A3_TEST_SURELY_UNSET is not set"},
      {"[server\n", "/etc/a3/test.toml:1:"},
      {"[tls]\ncertificate = 5\n", "tls.certificate: expected a string"},
      {"[eventlog.kafka]\nproperties = { acks = \"1\" }\n",
       "eventlog.kafka.properties.acks: is fixed by a3mailer"},
      {"[[server.listener]]\nprotocol = \"smtp\"\nbind = \"127.0.0.1:25\"\nproxy_protocol = true\n",
       "server.listener.proxy_protocol: needs [security] trusted_proxies"},
      {"[[server.listener]]\nprotocol = \"http\"\nbind = \"127.0.0.1:9\"\nproxy_protocol = true\n"
       "[security]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
       "server.listener[0].proxy_protocol: the monitoring listener takes no PROXY header"},
      {"[security]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
       "security.trusted_proxies: \"10.0.0.0/33\" is not an address or CIDR network"},
      {"[security]\nexempt_networks = [\"loopback\"]\n",
       "security.exempt_networks: \"loopback\" is not an address or CIDR network"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string err = error_of(text);
    EXPECT_NE(err.find(expected), std::string::npos)
        << "input:\n"
        << text << "\nerror: " << err << "\nexpected: " << expected;
    EXPECT_TRUE(err.starts_with("/etc/a3/test.toml")) << err;
  }
}

// Every error of a file at once, one per line.
TEST(Config, EveryErrorOfAFileIsReportedAtOnce) {
  const std::string err = error_of(
      "[eventlog]\npartitions = 0\n[smtp]\nmax_recipients = \"ten\"\nbogus = 1\n"
      "[[server.listener]]\nprotocol = \"gopher\"\nbind = \"nocolon\"\n");
  std::vector<std::string> lines;
  for (std::size_t pos = 0; pos <= err.size();) {
    const auto nl = std::min(err.find('\n', pos), err.size());
    lines.push_back(err.substr(pos, nl - pos));
    pos = nl + 1;
  }
  ASSERT_EQ(lines.size(), 5u) << err;
  for (const auto& l : lines)
    EXPECT_TRUE(l.starts_with("/etc/a3/test.toml:")) << l;
  EXPECT_NE(err.find("server.listener[0].protocol: \"gopher\" is not one of"), std::string::npos);
  EXPECT_NE(err.find("server.listener[0].bind: expected host:port"), std::string::npos);
  EXPECT_NE(err.find("eventlog.partitions: must be between 1 and 1024"), std::string::npos);
  EXPECT_NE(err.find("smtp.max_recipients: expected an integer"), std::string::npos);
  EXPECT_NE(err.find("smtp.bogus: unknown key"), std::string::npos);
}

// --check-config's rendering: every key in force, loadable again as it is,
// secrets masked.
TEST(Config, TheConfigurationInForceRendersLoadablyWithSecretsMasked) {
  const Config c = parse(R"(
[server]
hostname = "mx.example.test"
local_domains = ["example.test"]
[[server.listener]]
protocol = "submissions"
bind = "127.0.0.1:4465"
[database]
url = "postgresql://a3:hunter2@db.example/a3"
[smtp]
relay_host = "smart.example"
relay_auth = true
relay_username = "u"
relay_password = "s3cret"
[outbound]
trusted_networks = ["192.0.2.0/24"]
[[outbound.dkim]]
domain = "example.test"
selector = "s1"
private_key = "keys/s1.pem"
[eventlog.kafka]
properties = { "sasl.password" = "kpass", "client.id" = "a3" }
)",
                         "/srv/a3/a3.toml");
  const std::string text = render(c);
  for (const char* secret : {"hunter2", "s3cret", "kpass"})
    EXPECT_EQ(text.find(secret), std::string::npos) << secret << " in\n" << text;
  EXPECT_NE(text.find("postgresql://a3:********@db.example/a3"), std::string::npos) << text;
  EXPECT_NE(text.find("relay_password = \"********\""), std::string::npos) << text;
  EXPECT_NE(text.find("max_recipients = 100"), std::string::npos) << "defaults are shown";
  EXPECT_NE(text.find("/srv/a3/keys/s1.pem"), std::string::npos) << "paths are resolved";
  // Loaded again, it is the same configuration (secrets aside).
  const Config again = parse(text, "/srv/a3/a3.toml");
  EXPECT_EQ(render(again), text);
  EXPECT_EQ(again.server.listeners.size(), 1u);
  EXPECT_EQ(again.outbound.dkim.size(), 1u);
  EXPECT_EQ(again.outbound.trusted_networks, c.outbound.trusted_networks);
}

TEST(Config, SecretsComeFromTheEnvironment) {
  setenv("A3_TEST_DB_URL", "host=/run/pg dbname=a3", 1);
  const Config c = parse("[database]\nurl = \"${A3_TEST_DB_URL}\"\n", "/x/a.toml");
  EXPECT_EQ(c.database.url, "host=/run/pg dbname=a3");
}

TEST(Config, TheDevelopmentConfigurationIsValid) {
  const Config c = load(std::string(A3_TEST_SOURCE_DIR) + "/../tools/dev-config.toml.in");
  EXPECT_EQ(c.listener("smtp")->bind, "127.0.0.1:2525");
  EXPECT_EQ(c.listener("submission")->bind, "127.0.0.1:5587");
  EXPECT_EQ(c.listener("submissions")->bind, "127.0.0.1:4465");
  EXPECT_EQ(c.listener("imap")->bind, "127.0.0.1:1143");
  EXPECT_EQ(c.listener("imaps")->bind, "127.0.0.1:1993");
  EXPECT_EQ(c.listener("pop3")->bind, "127.0.0.1:1110");
  EXPECT_EQ(c.listener("pop3s")->bind, "127.0.0.1:1995");
  EXPECT_EQ(c.listener("http")->bind, "127.0.0.1:9090");
  EXPECT_EQ(c.server.local_domains, (std::vector<std::string>{"localhost", "example.test"}));
}

// The deployment guide's own file loads as it stands, every key doing what
// it says, and the keys that cannot apply each warned about once.
TEST(Config, TheGuidesFileLoadsAsItStands) {
  const Config c = load(std::string(A3_TEST_SOURCE_DIR) + "/guide/config.toml");
  EXPECT_EQ(c.server.hostname, "mail.example.com");
  // bind entries map to protocols by port.
  ASSERT_EQ(c.server.listeners.size(), 4u);
  EXPECT_EQ(c.listener("smtp")->bind, "0.0.0.0:25");
  EXPECT_EQ(c.listener("submission")->bind, "0.0.0.0:587");
  EXPECT_EQ(c.listener("imaps")->bind, "0.0.0.0:993");
  EXPECT_EQ(c.listener("imaps")->tls, TlsMode::implicit);
  EXPECT_EQ(c.listener("pop3s")->bind, "0.0.0.0:995");
  EXPECT_EQ(c.listener("submission")->tls, TlsMode::starttls);
  EXPECT_EQ(c.security.max_connections, 10000);
  EXPECT_EQ(c.smtp.command_timeout_s, 300);
  EXPECT_EQ(c.pop3.timeout_s, 600);
  EXPECT_EQ(c.tls.private_key, "/etc/stalwart/certs/privkey.pem");
  EXPECT_EQ(c.tls.min_version, "TLSv1.2");
  EXPECT_EQ(c.tls.max_version, "TLSv1.3");
  EXPECT_EQ(c.tls.ciphers, "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS");
  EXPECT_EQ(c.database.conninfo(),
            "host=localhost port=5432 dbname=stalwart user=stalwart "
            "password=your_secure_password connect_timeout=30");
  EXPECT_EQ(c.smtp.relay_host, "smtp.example.com");
  EXPECT_EQ(c.smtp.relay_port, 587);
  EXPECT_EQ(c.imap.max_connections_per_user, 10);
  EXPECT_EQ(c.imap.idle_timeout_s, 1800);
  EXPECT_EQ(c.imap.search_timeout_s, 30);
  EXPECT_EQ(c.pop3.max_connections_per_user, 5);
  EXPECT_TRUE(c.security.enable_rate_limiting);
  EXPECT_EQ(c.security.rate_limit_window_s, 60);
  EXPECT_EQ(c.security.max_requests_per_window, 1000);
  EXPECT_EQ(c.security.trusted_proxies.size(), 3u);
  EXPECT_TRUE(c.monitoring.enabled);
  EXPECT_EQ(c.monitoring.bind, "127.0.0.1:9090");
  EXPECT_EQ(c.monitoring.health_check_interval_s, 30);
  EXPECT_EQ(c.logging.format, "json");
  EXPECT_EQ(c.logging.file, "/var/log/stalwart/stalwart.log");
  EXPECT_EQ(c.logging.max_size, 100ll << 20);
  EXPECT_EQ(c.logging.max_files, 10);
  const std::string all = fmt::format("{}", fmt::join(c.warnings, "\n"));
  for (const char* named : {"cache (type, host, port, database, pool_size, timeout): ignored",
                            "database.pool_size: ignored", "monitoring.metrics_retention: ignored",
                            "smtp.relay_auth: no relay_username",
                            "security.trusted_proxies: not used: no [[server.listener]]"})
    EXPECT_NE(all.find(named), std::string::npos) << named << " not in\n" << all;
  EXPECT_EQ(c.warnings.size(), 5u) << all;
  // Each warning says where.
  for (const auto& w : c.warnings)
    EXPECT_NE(w.find("guide/config.toml:"), std::string::npos) << w;
}

TEST(Config, TheGuidesHardenedSecurityAndPerformanceSectionsLoad) {
  const Config c = load(std::string(A3_TEST_SOURCE_DIR) + "/guide/hardened.toml");
  EXPECT_EQ(c.security.max_connections_per_ip, 100);
  EXPECT_EQ(c.security.blocked_networks, (std::vector<std::string>{"192.0.2.0/24"}));
  EXPECT_TRUE(c.security.enable_csp);
  EXPECT_EQ(c.security.csp_policy, "default-src 'self'; script-src 'self' 'unsafe-inline'");
  EXPECT_EQ(c.security.audit_retention_days, 90);
  EXPECT_EQ(c.server.threads, 8);
  EXPECT_EQ(c.performance.cache_size, 1ll << 30);
  EXPECT_EQ(c.performance.io_buffer_size, 65536);
  EXPECT_EQ(c.performance.batch_size, 1000);
  const std::string all = fmt::format("{}", fmt::join(c.warnings, "\n"));
  for (const char* named :
       {"security.hsts_max_age: ignored", "security.audit_log_level: ignored",
        "performance.connection_pool_size: ignored", "performance.cache_ttl: ignored",
        "performance.max_concurrent_requests: ignored", "performance.request_timeout: ignored"})
    EXPECT_NE(all.find(named), std::string::npos) << named << " not in\n" << all;
}

TEST(Config, GuideKeysAreCheckedLikeOurs) {
  EXPECT_NE(error_of("[server]\nbind = [\"0.0.0.0:2526\"]\n").find("port 2526"), std::string::npos);
  EXPECT_NE(error_of("[server]\nbind = [\"nowhere\"]\n").find("is not host:port"),
            std::string::npos);
  EXPECT_NE(error_of("[server]\ntimeout = 60\n").find("server.timeout: must be between 300"),
            std::string::npos);
  EXPECT_NE(error_of("[tls]\nprotocols = [\"TLSv1.1\"]\n").find("RFC 8996"), std::string::npos);
  EXPECT_NE(error_of("[tls]\nciphers = \"NOTHING-AT-ALL\"\n").find("tls.ciphers"),
            std::string::npos);
  EXPECT_NE(error_of("[tls]\nprivate_key = \"a\"\nprivate-key = \"b\"\n").find("set only one"),
            std::string::npos);
  EXPECT_NE(error_of("[database]\ntype = \"mysql\"\n").find("database.type"), std::string::npos);
  EXPECT_NE(error_of("[database]\nurl = \"host=x\"\nhost = \"y\"\n").find("database.host"),
            std::string::npos);
  EXPECT_NE(error_of("[logging]\nmax_size = \"lots\"\n").find("logging.max_size"),
            std::string::npos);
  EXPECT_NE(error_of("[logging]\nmax_size = \"1MB\"\n").find("needs a file"), std::string::npos);
  EXPECT_NE(error_of("[security]\nblocked_ips = [\"10.0.0.0/33\"]\n").find("security.blocked_ips"),
            std::string::npos);
  EXPECT_NE(error_of("[monitoring]\nprometheus_port = 70000\n").find("prometheus_port"),
            std::string::npos);
  EXPECT_NE(error_of("[server]\nmax_connections = 5\n[security]\nmax_connections = 6\n")
                .find("security.max_connections: is set in [server] too"),
            std::string::npos);
  // A listener says otherwise: its protocol wins for its address.
  const Config c = parse(
      "[server]\nbind = [\"127.0.0.1:25\", \"127.0.0.1:587\"]\n"
      "[[server.listener]]\nprotocol = \"smtp\"\nbind = \"127.0.0.1:587\"\n",
      "/x/a.toml");
  ASSERT_EQ(c.server.listeners.size(), 2u);
  EXPECT_EQ(c.server.listeners[0].protocol, "smtp");
  EXPECT_EQ(c.server.listeners[0].bind, "127.0.0.1:587");
  EXPECT_EQ(c.server.listeners[1].bind, "127.0.0.1:25");
}

TEST(Config, TheGuidesEnvironmentVariablesOverrideTheFile) {
  setenv("STALWART_DB_PASSWORD", "from env", 1);
  setenv("STALWART_TLS_CERT", "/run/cert.pem", 1);
  setenv("A3_TLS_KEY", "/run/key.pem", 1);
  setenv("STALWART_METRICS_PORT", "9100", 1);
  setenv("STALWART_AUDIT_ENABLED", "false", 1);
  const Config c = load(std::string(A3_TEST_SOURCE_DIR) + "/guide/config.toml");
  EXPECT_EQ(c.database.password, "from env");
  EXPECT_NE(c.database.conninfo().find("password='from env'"), std::string::npos);
  EXPECT_EQ(c.tls.certificate, "/run/cert.pem");
  EXPECT_EQ(c.tls.private_key, "/run/key.pem");
  EXPECT_EQ(c.monitoring.bind, "127.0.0.1:9100");
  EXPECT_FALSE(c.security.enable_audit_logging);
  setenv("STALWART_METRICS_PORT", "ninety", 1);
  EXPECT_NE(error_of("").find("STALWART_METRICS_PORT"), std::string::npos);
  for (const char* v : {"STALWART_DB_PASSWORD", "STALWART_TLS_CERT", "A3_TLS_KEY",
                        "STALWART_METRICS_PORT", "STALWART_AUDIT_ENABLED"})
    unsetenv(v);
}

TEST(Config, TimeoutsBelowTheRfcsAreWarnedAbout) {
  const Config c = parse(
      "[smtp]\ncommand_timeout_s = 10\ndata_timeout_s = 20\n[security]\nlogin_timeout_s = 30\n",
      "/x/a.toml");
  EXPECT_EQ(c.smtp.command_timeout_s, 10);
  EXPECT_EQ(c.smtp.data_timeout_s, 20);
  EXPECT_EQ(c.security.login_timeout_s, 30);
  const std::string all = fmt::format("{}", fmt::join(c.warnings, "\n"));
  EXPECT_NE(all.find("smtp.command_timeout_s: below RFC 5321"), std::string::npos) << all;
  EXPECT_NE(all.find("smtp.data_timeout_s: below RFC 5321"), std::string::npos) << all;
  EXPECT_TRUE(parse("", "/x/a.toml").warnings.empty());
  EXPECT_NE(error_of("[smtp]\ncommand_timeout_s = 0\n").find("smtp.command_timeout_s"),
            std::string::npos);
  EXPECT_NE(error_of("[security]\nlogin_timeout_s = 0\n").find("security.login_timeout_s"),
            std::string::npos);
}

TEST(Config, SizesTakeUnits) {
  const Config c = parse(
      "[performance]\ncache_size = \"512MiB\"\n[logging]\noutput = \"a.log\"\n"
      "max_size = \"10 kb\"\n",
      "/x/a.toml");
  EXPECT_EQ(c.performance.cache_size, 512ll << 20);
  EXPECT_EQ(c.logging.max_size, 10240);
  EXPECT_EQ(c.logging.file, "/x/a.log");
}

TEST(Config, MissingFileIsAClearError) {
  try {
    load("/nonexistent/a3mailer.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/a3mailer.toml: cannot open"),
              std::string::npos);
  }
}

// The guide's access-control file: its own file, or the same table here.
TEST(Config, TheAccessControlFileIsReadAndChecked) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("a3-config-access-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "fake.db") << "a database";
  // A file like the guide's example, with its placeholder country.
  std::ofstream(dir / "access_control.toml")
      << "[access_control]\n"
         "allow_domains = [\"Example.COM.\", \"trusted-partner.com\"]\n"
         "block_domains = [\"spam-domain.com\", \"malicious.org\"]\n"
         "allow_countries = [\"US\", \"ca\", \"GB\", \"DE\", \"FR\", \"JP\", \"CN\"]\n"
         "block_countries = [\"XX\"]\n"
         "country_database = \"fake.db\"\n";
  const Config c =
      parse("[security]\naccess_control_file = \"access_control.toml\"\n", dir / "a3mailer.toml");
  const AccessControl& a = c.security.access;
  EXPECT_EQ(a.allow_domains, (std::vector<std::string>{"example.com", "trusted-partner.com"}));
  EXPECT_EQ(a.block_domains, (std::vector<std::string>{"spam-domain.com", "malicious.org"}));
  EXPECT_EQ(a.allow_countries[1], "CA");
  EXPECT_EQ(a.block_countries, std::vector<std::string>{"XX"});
  EXPECT_EQ(a.country_database, dir / "fake.db");  // relative to the access file
  ASSERT_EQ(c.warnings.size(), 1u) << fmt::format("{}", fmt::join(c.warnings, "\n"));
  EXPECT_NE(c.warnings[0].find("access_control.block_countries: \"XX\" is a user-assigned code"),
            std::string::npos)
      << c.warnings[0];
  // It renders as a table of the one file, which loads again the same.
  const std::string rendered = render(c);
  EXPECT_NE(rendered.find("[access_control]"), std::string::npos) << rendered;
  EXPECT_EQ(render(parse(rendered, dir / "again.toml")), rendered);

  auto error_in = [&](const std::string& access) {
    std::ofstream(dir / "bad.toml") << access;
    try {
      parse("[security]\naccess_control_file = \"bad.toml\"\n", dir / "a3mailer.toml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string bad = (dir / "bad.toml").string();
  const std::pair<std::string, std::string> cases[] = {
      {"[access_control]\nblock_countries = [\"USA\"]\n",
       bad + ":2:20: access_control.block_countries: \"USA\" is not a two-letter country code"},
      {"[access_control]\nallow_countries = [\"D1\"]\n",
       "access_control.allow_countries: \"D1\" is not a two-letter country code"},
      {"[access_control]\nallow_domains = [\"a..b\"]\n",
       "access_control.allow_domains: \"a..b\" is not a domain"},
      {"[access_control]\nblock_domains = [\"user@spam.example\"]\n",
       "access_control.block_domains: \"user@spam.example\" is not a domain"},
      {"[access_control]\nallow_countries = [\"de\"]\nblock_countries = [\"DE\"]\n",
       "access_control.block_countries: \"DE\" is in access_control.allow_countries too"},
      {"[access_control]\nallow_domains = [\"a.example\"]\nblock_domains = [\"A.example\"]\n",
       "access_control.block_domains: \"a.example\" is in access_control.allow_domains too"},
      {"[access_control]\nblock_countries = [\"FR\"]\ncountry_database = \"none.db\"\n",
       "access_control.country_database: cannot read " + (dir / "none.db").string()},
      {"[access_control]\nallow_domains = [\"a.example\",\n  \"b c.example\"]\n",
       bad + ":3:3: access_control.allow_domains: \"b c.example\" is not a domain"},
      {"[access_control]\nallow_domains = [\"b\xc3\xbc"
       "cher.example\"]\n"
       "block_domains = [\"XN--BCHER-KVA.example\"]\n",
       "access_control.block_domains: \"xn--bcher-kva.example\" is in "
       "access_control.allow_domains too"},
      {"[access_control]\nallowed_domains = [\"a.example\"]\n", "access_control.allowed_domains"},
      {"allow_domains = [\"a.example\"]\n",
       "access_control: the file has no [access_control] table"},
      {"[access_control\n", bad + ":1"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string err = error_in(text);
    EXPECT_NE(err.find(expected), std::string::npos) << text << "\nerror: " << err;
    EXPECT_TRUE(err.starts_with(bad)) << err;
  }
  // A missing file, a directory, and the table in both places.
  EXPECT_NE(error_of("[security]\naccess_control_file = \"/nonexistent/access.toml\"\n")
                .find("/nonexistent/access.toml: cannot read the access-control file"),
            std::string::npos);
  EXPECT_NE(error_of("[security]\naccess_control_file = \"/tmp\"\n")
                .find("/tmp: cannot read the access-control file: not a regular file"),
            std::string::npos);
  EXPECT_NE(error_of("[security]\naccess_control_file = \"/tmp/x.toml\"\n"
                     "[access_control]\nblock_domains = [\"spam.example\"]\n")
                .find("access_control: is in this file and in security.access_control_file"),
            std::string::npos);
  // In this file, and with no country list no database is needed.
  const Config here = parse(
      "[access_control]\nblock_domains = [\"spam.example\"]\ncountry_database = \"/nonexistent\"\n",
      "/etc/a3/test.toml");
  EXPECT_EQ(here.security.access.block_domains, std::vector<std::string>{"spam.example"});
  // U-labels become A-labels, in any case.
  EXPECT_EQ(parse("[access_control]\nallow_domains = [\"B\xc3\x9c"
                  "CHER.Example\"]\n",
                  "/etc/a3/test.toml")
                .security.access.allow_domains,
            std::vector<std::string>{"xn--bcher-kva.example"});
  fs::remove_all(dir);
}

}  // namespace
}  // namespace a3::config
