// a3ctl log dump/end against a log written here, run as a separate process
// as an operator would.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "eventlog/local/local_log.h"
#include "schemas/codec.h"
#include "tests/test_util.h"

namespace a3 {
namespace {

struct Output {
  int status;
  std::string out;
};

Output run(const std::string& args) {
  const std::string cmd = std::string(A3_TEST_A3CTL) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  Output o{-1, {}};
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    o.out.append(buf, n);
  const int status = pclose(p);
  o.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

class A3ctlLog : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.path() / "a3.toml";
    std::ofstream(config_) << "[server]\ndata_dir = \"data\"\n";
    eventlog::local::Options o;
    o.path = dir_.path() / "data" / "log";
    log_ = eventlog::local::LocalLog::open(o);
  }
  std::string cfg() const { return "--config " + config_.string(); }

  test::TempDir dir_;
  std::filesystem::path config_;
  std::unique_ptr<eventlog::local::LocalLog> log_;
};

TEST_F(A3ctlLog, DumpPrintsEventsWhileTheWriterRuns) {
  auto e1 = schemas::make_event(
      "alice@example.test", {schemas::Protocol::admin, "root", "", "cli"},
      schemas::AccountCreated{"alice@example.test", "$argon2id$secret", {"alice@example.test"}, 0});
  auto e2 = schemas::make_event("alice@example.test",
                                {schemas::Protocol::imap, "alice@example.test", "192.0.2.1", "s"},
                                schemas::AuthFailed{"PLAIN", "alice", "bad password"});
  ASSERT_TRUE(log_->append(e1.account, schemas::encode(e1)));
  ASSERT_TRUE(log_->append(e2.account, schemas::encode(e2)));

  auto text = run(cfg() + " log dump");
  EXPECT_EQ(text.status, 0) << text.out;
  EXPECT_NE(text.out.find("0:0"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("AccountCreated"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("AuthFailed"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("from 192.0.2.1"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("secret"), std::string::npos) << "hashes are not printed";

  auto json = run(cfg() + " log dump --from 0:1 --json");
  EXPECT_EQ(json.status, 0) << json.out;
  EXPECT_EQ(json.out.find("AccountCreated"), std::string::npos) << "--from skips offset 0";
  EXPECT_NE(json.out.find("\"offset\":1,"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"kind\":\"AuthFailed\""), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"id\":\"" + e2.id.str() + "\""), std::string::npos) << json.out;

  auto end = run(cfg() + " log end");
  EXPECT_EQ(end.status, 0);
  EXPECT_EQ(end.out, "0:2\n");
}

TEST_F(A3ctlLog, CorruptEventIsReportedWithItsPosition) {
  auto good = schemas::make_event("a@example.test", {}, schemas::AccountDeleted{"x"});
  ASSERT_TRUE(log_->append("a@example.test", schemas::encode(good)));
  std::string bad = schemas::encode(good);
  bad.resize(bad.size() / 2);
  ASSERT_TRUE(log_->append("a@example.test", bad));
  ASSERT_TRUE(log_->append("a@example.test", schemas::encode(good)));
  auto out = run(cfg() + " log dump");
  EXPECT_EQ(out.status, 1) << "a corrupt event makes the dump fail";
  EXPECT_NE(out.out.find("event at 0:1 is corrupt"), std::string::npos) << out.out;
  EXPECT_NE(out.out.find("0:2 "), std::string::npos) << "the dump goes on after it: " << out.out;
}

TEST_F(A3ctlLog, BadArgumentsAreUsageErrors) {
  EXPECT_EQ(run(cfg() + " log dump --from zero").status, 2);
  EXPECT_EQ(run(cfg() + " log dump --from 5:0").status, 2);
  EXPECT_EQ(run(cfg() + " log frobnicate").status, 2);
  auto missing = run("--config /nonexistent.toml log dump");
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.out.find("/nonexistent.toml: cannot open"), std::string::npos);
}

}  // namespace
}  // namespace a3
