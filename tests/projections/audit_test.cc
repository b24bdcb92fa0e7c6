// The audit projection against a real PostgreSQL server started for the
// test (tools/pg.sh), including a restart of PostgreSQL mid-stream.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "eventlog/local/local_log.h"
#include "projections/audit/audit_projector.h"
#include "projections/audit/pg.h"
#include "schemas/codec.h"
#include "tests/projections/workload.h"
#include "tests/test_util.h"

namespace a3::projections::audit {
namespace {

using namespace std::chrono_literals;

std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[512];
  while (p && fgets(buf, sizeof buf, p))
    out += buf;
  const int rc = p ? pclose(p) : -1;
  if (rc != 0) throw std::runtime_error("command failed: " + cmd + "\n" + out);
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

class Audit : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/a3-pg-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    pg_dir_ = tmpl;
    port_ = 20000 + static_cast<int>(getpid() % 20000);
    url_ = start_pg();
    eventlog::local::Options o;
    o.path = dir_.path() / "log";
    o.partitions = 2;
    log_ = eventlog::local::LocalLog::open(o);
  }
  void TearDown() override {
    log_.reset();
    sh(std::string(A3_TEST_PG_SH) + " stop " + pg_dir_);
    std::filesystem::remove_all(pg_dir_);
  }
  std::string start_pg() {
    return sh(std::string(A3_TEST_PG_SH) + " start " + pg_dir_ + " " + std::to_string(port_));
  }
  void stop_pg() { sh(std::string(A3_TEST_PG_SH) + " stop " + pg_dir_); }

  std::string scalar(const std::string& sql) {
    Connection db(url_);
    EXPECT_TRUE(db.ok()) << db.error();
    std::string err;
    auto r = db.query(sql, {}, &err);
    EXPECT_TRUE(r) << err;
    return r && PQntuples(r.get()) ? PQgetvalue(r.get(), 0, 0) : "";
  }
  std::int64_t total_end() {
    std::int64_t n = 0;
    for (std::int32_t p = 0; p < log_->partitions(); ++p)
      n += *log_->end_offset(p);
    return n;
  }
  void append(const schemas::Event& e) { ASSERT_TRUE(log_->append(e.account, schemas::encode(e))); }

  test::TempDir dir_;
  std::string pg_dir_, url_;
  int port_ = 0;
  std::unique_ptr<eventlog::local::LocalLog> log_;
};

TEST_F(Audit, OneRowPerEventWithTheFieldsAuditorsQuery) {
  const auto alice = test::create_account(test::kAlice);
  append(alice);
  const auto inbox = default_mailbox_id(alice.id, "INBOX");
  schemas::SmtpEnvelope env{
      "bob@example.net", {"alice@example.test"}, "mx.example.net", "198.51.100.7", "TLSv1.3", ""};
  append(schemas::make_event(test::kAlice, {schemas::Protocol::smtp, "", "198.51.100.7", "s9"},
                             schemas::MessageAppended{inbox,
                                                      "Message-ID:\r\n <abc@example.net>\r\n"
                                                      "Subject: \xff bad utf-8\r\n\r\nhi\r\n",
                                                      0,
                                                      {},
                                                      env}));
  append(schemas::make_event(test::kAlice, test::kImap, schemas::MessagesExpunged{inbox, {1}}));
  append(schemas::make_event(test::kAlice, {schemas::Protocol::imap, "alice", "not an ip", "s2"},
                             schemas::AuthFailed{"PLAIN", "alice\tx\n", "bad password"}));
  // A NUL anywhere (jsonb refuses \u0000) must not stop the trail.
  append(schemas::make_event(test::kAlice, {schemas::Protocol::pop3, "", "192.0.2.9", "s3"},
                             schemas::AuthFailed{"USER", std::string("ev\0il", 5), "bad"}));

  AuditProjector audit(*log_, Options{url_});
  ASSERT_TRUE(audit.catch_up());
  EXPECT_EQ(scalar("SELECT count(*) FROM audit_events"), "5");
  EXPECT_EQ(scalar("SELECT message_id || ' ' || envelope_from || ' ' || host(remote_ip) || ' ' || "
                   "array_to_string(envelope_to, ',') FROM audit_events WHERE kind = "
                   "'MessageAppended'"),
            "<abc@example.net> bob@example.net 198.51.100.7 alice@example.test");
  EXPECT_EQ(scalar("SELECT m.name || ' ' || array_to_string(e.uids, ',') FROM audit_events e "
                   "JOIN audit_mailboxes m USING (mailbox_id) WHERE kind = 'MessagesExpunged'"),
            "INBOX 1");
  EXPECT_EQ(scalar("SELECT coalesce(host(remote_ip), 'null') FROM audit_events WHERE kind = "
                   "'AuthFailed' AND protocol = 'imap'"),
            "null");
  EXPECT_EQ(scalar("SELECT details->'body'->>'reason' FROM audit_events WHERE kind = "
                   "'AuthFailed' AND protocol = 'imap'"),
            "bad password");
  EXPECT_EQ(scalar("SELECT count(*) FROM audit_events WHERE details::text LIKE '%argon2%'"), "0");
  // Running again projects nothing twice.
  AuditProjector again(*log_, Options{url_});
  ASSERT_TRUE(again.catch_up());
  EXPECT_EQ(scalar("SELECT count(*) FROM audit_events"), "5");
}

TEST_F(Audit, PostgresRestartedMidStreamLeavesExactlyOneRowPerEvent) {
  AuditProjector audit(*log_, Options{url_, 50, 1000ms});
  audit.start();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (const auto& e : test::workload(3000, 9)) {
      if (stop) break;
      ASSERT_TRUE(log_->append(e.account, schemas::encode(e)));
      std::this_thread::sleep_for(200us);
    }
  });
  std::this_thread::sleep_for(300ms);
  stop_pg();  // the mail service keeps going: appends do not wait for PostgreSQL
  std::this_thread::sleep_for(700ms);
  EXPECT_NE(audit.status(), "ok");
  start_pg();
  writer.join();
  const std::int64_t total = total_end();
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  std::int64_t projected = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    projected = 0;
    for (const auto& [p, next] : audit.positions())
      projected += next;
    if (projected == total) break;
    std::this_thread::sleep_for(100ms);
  }
  audit.stop();
  ASSERT_EQ(projected, total);
  EXPECT_EQ(scalar("SELECT count(*) FROM audit_events"), std::to_string(total));
  for (std::int32_t p = 0; p < log_->partitions(); ++p) {
    // Dense: offsets 0..end-1, each once (the primary key forbids twice).
    EXPECT_EQ(scalar(fmt::format("SELECT count(DISTINCT log_offset) || ':' || "
                                 "coalesce(max(log_offset) + 1, 0) FROM audit_events WHERE "
                                 "partition = {}",
                                 p)),
              fmt::format("{}:{}", *log_->end_offset(p), *log_->end_offset(p)));
  }
}

}  // namespace
}  // namespace a3::projections::audit
