// IMAP QUOTA (RFC 9208) and the command table: quotas reported and
// enforced for APPEND and COPY, SETQUOTA refused, and every command's
// state checked once by the dispatcher.
#include <gtest/gtest.h>

#include "frontends/imap/session.h"
#include "tests/frontends/imap/converse.h"
#include "tests/projections/projection_fixture.h"
#include "tests/projections/workload.h"

namespace a3::imap {
namespace {

using namespace schemas;

class ImapQuota : public test::ProjectionFixture {
 protected:
  void SetUp() override {
    ProjectionFixture::SetUp();
    ASSERT_TRUE(run(test::create_account(test::kAlice)).ok());
  }

  std::unique_ptr<Session> open() {
    SessionInfo info{"imap.example.test", "192.0.2.9", "t1", true, true, false};
    return std::make_unique<Session>(info, Limits{}, *store, shared);
  }

  std::string say(Session& s, std::string_view bytes) {
    return test::converse(s, *store, bytes, [&](const net::AuthRequest& auth) {
      return store->account_for_address(auth.user);
    });
  }

  std::unique_ptr<Session> logged_in() {
    auto s = open();
    say(*s, "l LOGIN alice@example.test pw\r\n");
    EXPECT_TRUE(s->authenticated());
    return s;
  }

  void set_quota(std::uint64_t bytes) {
    ASSERT_TRUE(run(make_event(test::kAlice, test::kAdmin, AccountQuotaChanged{bytes})).ok());
  }

  static std::string append(std::size_t body_bytes, const std::string& tag = "a") {
    const std::string msg = "Subject: q\r\n\r\n" + std::string(body_bytes, 'x') + "\r\n";
    return tag + " APPEND INBOX {" + std::to_string(msg.size()) + "+}\r\n" + msg + "\r\n";
  }

  static bool has(const std::string& out, const std::string& text) {
    return out.find(text) != std::string::npos;
  }

  Shared shared;
};

TEST_F(ImapQuota, AdvertisedAndReportedInKibibytes) {
  auto s = logged_in();
  EXPECT_TRUE(has(say(*s, "c CAPABILITY\r\n"), " QUOTA QUOTA=RES-STORAGE"));
  // No limit: no quota root (RFC 9208 4.1.2).
  auto out = say(*s, "r GETQUOTAROOT INBOX\r\n");
  EXPECT_TRUE(has(out, "* QUOTAROOT \"INBOX\"\r\n")) << out;
  EXPECT_FALSE(has(out, "* QUOTA ")) << out;
  EXPECT_TRUE(has(say(*s, "g GETQUOTA \"\"\r\n"), "g NO [NONEXISTENT]"));

  set_quota(100 * 1024);
  EXPECT_TRUE(has(say(*s, append(3000)), "a OK [APPENDUID"));
  out = say(*s, "r GETQUOTAROOT INBOX\r\n");
  EXPECT_TRUE(has(out, "* QUOTAROOT \"INBOX\" \"\"\r\n")) << out;
  // 3016 bytes: 2 KiB used, rounded down, of 100.
  EXPECT_TRUE(has(out, "* QUOTA \"\" (STORAGE 2 100)\r\n")) << out;
  EXPECT_TRUE(has(say(*s, "g GETQUOTA \"\"\r\n"), "* QUOTA \"\" (STORAGE 2 100)"));
  EXPECT_TRUE(has(say(*s, "r2 GETQUOTAROOT Nope\r\n"), "r2 NO [NONEXISTENT]"));
  EXPECT_TRUE(has(say(*s, "g2 GETQUOTA other\r\n"), "g2 NO [NONEXISTENT]"));
}

TEST_F(ImapQuota, AppendAndCopyOverQuotaAreRefusedAndChangeNothing) {
  set_quota(10 * 1024);
  auto s = logged_in();
  EXPECT_TRUE(has(say(*s, append(6000, "a1")), "a1 OK [APPENDUID"));
  // 6 KB more would take 12 KB: over the 10 KiB limit.
  auto out = say(*s, append(6000, "a2"));
  EXPECT_TRUE(has(out, "a2 NO [OVERQUOTA]")) << out;
  // Larger than the whole quota.
  EXPECT_TRUE(has(say(*s, append(20000, "a3")), "a3 NO [OVERQUOTA]"));
  const auto inbox = store->mailbox(test::kAlice, "INBOX");
  EXPECT_EQ(inbox->messages, 1u);

  say(*s, "s SELECT INBOX\r\n");
  out = say(*s, "c COPY 1 Trash\r\n");
  EXPECT_TRUE(has(out, "c NO [OVERQUOTA]")) << out;
  EXPECT_EQ(store->mailbox(test::kAlice, "Trash")->messages, 0u);
  // A move stays within the account: its usage does not change.
  EXPECT_TRUE(has(say(*s, "m MOVE 1 Trash\r\n"), "m OK"));

  // An operator's restore is not the client's mail: it is not refused.
  set_quota(1);
  EXPECT_TRUE(run(make_event(test::kAlice, test::kAdmin,
                             MessageAppended{inbox->id, "Subject: r\r\n\r\nx\r\n", 0, {}, {}}))
                  .ok());
}

TEST_F(ImapQuota, SetquotaIsTheOperatorsAndStatusShowsDeletedStorage) {
  set_quota(1 << 20);
  auto s = logged_in();
  auto out = say(*s, "q SETQUOTA \"\" (STORAGE 512)\r\n");
  EXPECT_TRUE(has(out, "q NO [NOPERM]")) << out;
  EXPECT_TRUE(has(say(*s, "q2 SETQUOTA \"\" (STORAGE)\r\n"), "q2 BAD"));
  say(*s, append(1000, "a1"));
  say(*s, append(2000, "a2"));
  say(*s, "s SELECT INBOX\r\n");
  say(*s, "f STORE 2 +FLAGS (\\Deleted)\r\n");
  out = say(*s, "st STATUS INBOX (DELETED DELETED-STORAGE MESSAGES)\r\n");
  EXPECT_TRUE(has(out, "(DELETED 1 DELETED-STORAGE 2016 MESSAGES 2)")) << out;
}

TEST_F(ImapQuota, TheDispatcherChecksEveryCommandsState) {
  auto s = open();
  // Known commands of the authenticated and selected states, before login.
  for (const char* cmd : {"CREATE x", "DELETE x", "RENAME a b", "SUBSCRIBE x", "LSUB \"\" *",
                          "GETQUOTAROOT INBOX", "FETCH 1 FLAGS", "UID FETCH 1 FLAGS", "IDLE"}) {
    const auto out = say(*s, std::string("t ") + cmd + "\r\n");
    EXPECT_EQ(out, "t BAD Log in first\r\n") << cmd;
  }
  EXPECT_EQ(say(*s, "t FROB\r\n"), "t BAD Unknown command\r\n");
  EXPECT_EQ(say(*s, "t UID FROB 1\r\n"), "t BAD Unknown UID command\r\n");
  say(*s, "l LOGIN alice@example.test pw\r\n");
  EXPECT_EQ(say(*s, "t LOGIN a b\r\n"), "t BAD Already authenticated\r\n");
  EXPECT_EQ(say(*s, "t STARTTLS\r\n"), "t BAD Already authenticated\r\n");
  for (const char* cmd : {"CLOSE", "EXPUNGE", "FETCH 1 FLAGS", "UID STORE 1 FLAGS ()", "MOVE 1 x"})
    EXPECT_EQ(say(*s, std::string("t ") + cmd + "\r\n"), "t BAD No mailbox selected\r\n") << cmd;
  // Every command of the table answers in some state: none is dead.
  for (const auto name : Session::command_names()) {
    if (name == "IDLE" || name == "LOGOUT") continue;  // they end the loop's session
    EXPECT_FALSE(has(say(*s, "z " + std::string(name) + "\r\n"), "Unknown")) << name;
  }
}

}  // namespace
}  // namespace a3::imap
