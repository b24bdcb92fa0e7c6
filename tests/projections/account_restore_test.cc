// Per-account rollback on the live store: the messages of an emptied INBOX
// and of a deleted mailbox come back byte for byte with their flags; mail that
// arrived later stays; rolling back twice changes nothing the second time.
#include <gtest/gtest.h>

#include <map>

#include "projections/account_restore.h"
#include "tests/projections/projection_fixture.h"
#include "tests/projections/workload.h"

namespace a3::projections {
namespace {

using namespace schemas;
using test::kAlice;
using test::kImap;
using test::raw_message;

class AccountRestore : public test::ProjectionFixture {
 protected:
  // body -> flags of every message of a mailbox.
  std::multimap<std::string, std::vector<std::string>> contents(const std::string& name) {
    std::multimap<std::string, std::vector<std::string>> out;
    auto box = store->mailbox(kAlice, name);
    if (!box) return out;
    for (const auto& m : store->messages(box->id))
      out.emplace(*store->body(m.blob), m.flags);
    return out;
  }
  std::int64_t end() { return *log->end_offset(log->partition_for(kAlice)); }
  RollbackPlan rollback(std::int64_t target) {
    auto plan = plan_account_rollback(*log, *store, kAlice, target,
                                      {Protocol::admin, "root", "", "restore"});
    for (const auto& e : plan.events)
      EXPECT_TRUE(run(e).ok()) << kind_name(e.body);
    return plan;
  }
};

TEST_F(AccountRestore, EmptiedInboxAndDeletedMailboxComeBackByteForByte) {
  ASSERT_TRUE(run(test::create_account(kAlice)).ok());
  const Uuid inbox = store->mailbox(kAlice, "INBOX")->id;
  const Uuid archive = Uuid::v7();
  run(make_event(kAlice, kImap, MailboxCreated{archive, "Archive", ""}));
  run(make_event(kAlice, kImap, MailboxSubscriptionChanged{"Archive", true}));
  run(make_event(kAlice, kImap, MessageAppended{inbox, raw_message(1), 1000, {"\\Seen"}, {}}));
  run(make_event(kAlice, kImap, MessageAppended{inbox, raw_message(2), 2000, {}, {}}));
  run(make_event(kAlice, kImap, MessageAppended{inbox, raw_message(3), 3000, {"\\Flagged"}, {}}));
  run(make_event(kAlice, kImap, MessageAppended{archive, raw_message(4), 4000, {"$Work"}, {}}));
  const auto inbox_then = contents("INBOX");
  const auto archive_then = contents("Archive");
  const std::int64_t target = end();

  // The disaster, then mail that arrives afterwards.
  run(make_event(kAlice, kImap,
                 FlagsChanged{inbox, {2}, FlagOp::add, {"\\Deleted", "\\Seen"}, {}}));
  run(make_event(kAlice, kImap, MessagesExpunged{inbox, {1, 3}}));
  run(make_event(kAlice, kImap, MailboxDeleted{archive}));
  run(make_event(kAlice, kImap, MailboxSubscriptionChanged{"Archive", false}));
  run(make_event(kAlice, kImap, MessageAppended{inbox, raw_message(5), 5000, {}, {}}));

  // A dry run is a plan only.
  auto dry = plan_account_rollback(*log, *store, kAlice, target, {});
  EXPECT_FALSE(dry.steps.empty());
  EXPECT_EQ(contents("INBOX").size(), 2u);

  const auto plan = rollback(target);
  EXPECT_EQ(plan.messages_restored, 3u);  // 1 and 3 in INBOX, 4 in Archive
  EXPECT_EQ(plan.flags_restored, 1u);     // 2's flags
  EXPECT_EQ(plan.mailboxes_restored, 1u);

  auto inbox_now = contents("INBOX");
  EXPECT_EQ(inbox_now.count(raw_message(5)), 1u) << "later mail stays";
  inbox_now.erase(raw_message(5));
  EXPECT_EQ(inbox_now, inbox_then);
  EXPECT_EQ(contents("Archive"), archive_then);
  const auto subs = store->subscriptions(kAlice);
  EXPECT_NE(std::find(subs.begin(), subs.end(), "Archive"), subs.end());
  const auto internal = store->messages(store->mailbox(kAlice, "Archive")->id)[0].internal_date_ms;
  EXPECT_EQ(internal, 4000) << "original internal date";

  // Twice: nothing left to do.
  const auto again = plan_account_rollback(*log, *store, kAlice, target, {});
  EXPECT_TRUE(again.events.empty()) << fmt::format("{}", fmt::join(again.steps, "\n"));
}

TEST_F(AccountRestore, DeletedAccountIsRecreatedWithItsMail) {
  ASSERT_TRUE(run(test::create_account(kAlice, {"al@example.test"})).ok());
  const Uuid inbox = store->mailbox(kAlice, "INBOX")->id;
  run(make_event(kAlice, kImap, MessageAppended{inbox, raw_message(1), 1000, {"\\Answered"}, {}}));
  const auto inbox_then = contents("INBOX");
  const std::int64_t target = end();
  run(make_event(kAlice, test::kAdmin, AccountDeleted{"oops"}));
  EXPECT_FALSE(store->account(kAlice));
  rollback(target);
  ASSERT_TRUE(store->account(kAlice));
  EXPECT_EQ(store->account_for_address("al@example.test"), kAlice);
  EXPECT_EQ(contents("INBOX"), inbox_then);
  EXPECT_EQ(store->mailboxes(kAlice).size(), 5u);
}

TEST_F(AccountRestore, AnAccountThatDidNotExistThenIsAnError) {
  ASSERT_TRUE(run(test::create_account("bob@example.test")).ok());
  const std::int64_t target = *log->end_offset(log->partition_for(kAlice));
  ASSERT_TRUE(run(test::create_account(kAlice)).ok());
  EXPECT_THROW(plan_account_rollback(*log, *store, kAlice, 0, {}), std::runtime_error);
  (void)target;
}

}  // namespace
}  // namespace a3::projections
