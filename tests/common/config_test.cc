#include <gtest/gtest.h>

#include <cstdlib>

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
  EXPECT_NE(text.find("relay_password = '********'"), std::string::npos) << text;
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

TEST(Config, MissingFileIsAClearError) {
  try {
    load("/nonexistent/a3mailer.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/a3mailer.toml: cannot open"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace a3::config
