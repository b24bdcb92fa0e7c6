#include <gtest/gtest.h>

#include <atomic>
#include <limits>

#include <random>

#include <fmt/format.h>
#include <rocksdb/db.h>

#include "projections/mailbox_projector.h"
#include "schemas/codec.h"
#include "tests/projections/projection_fixture.h"
#include "tests/projections/workload.h"

namespace a3::projections {
namespace {

using namespace schemas;

using test::create_account;
using test::kAlice;
using test::kImap;
using test::raw_message;

class Projection : public test::ProjectionFixture {
 protected:
  Uuid inbox(const std::string& account = kAlice) {
    auto m = store->mailbox(account, "INBOX");
    EXPECT_TRUE(m);
    return m ? m->id : Uuid{};
  }
  Outcome append(const Uuid& box, const std::string& raw, std::vector<std::string> flags = {}) {
    return run(make_event(kAlice, kImap, MessageAppended{box, raw, 1764000000000, flags, {}}));
  }
};

TEST_F(Projection, AccountCreatedGivesDefaultMailboxesAndAddresses) {
  ASSERT_TRUE(run(create_account(kAlice, {"a@example.test", "ALIAS@Example.Test"})).ok());
  const auto boxes = store->mailboxes(kAlice);
  std::map<std::string, std::string> names;
  for (const auto& m : boxes)
    names[m.name] = m.special_use;
  EXPECT_EQ(names, (std::map<std::string, std::string>{{"INBOX", ""},
                                                       {"Sent", "\\Sent"},
                                                       {"Drafts", "\\Drafts"},
                                                       {"Trash", "\\Trash"},
                                                       {"Junk", "\\Junk"}}));
  EXPECT_EQ(store->subscriptions(kAlice).size(), 5u);
  EXPECT_EQ(store->account_for_address("alias@example.test"), kAlice);
  EXPECT_EQ(store->account_for_address("A@EXAMPLE.TEST"), kAlice);
  EXPECT_FALSE(store->account_for_address("nobody@example.test"));
  EXPECT_EQ(run(create_account(kAlice)).code, OutcomeCode::account_exists);
  EXPECT_TRUE(store->mailbox(kAlice, "inbox")) << "INBOX is case-insensitive";
}

TEST_F(Projection, BansAreKeptByNetworkUntilLiftedAndWakeTheirSubscribers) {
  const Actor admin{Protocol::admin, "root", "", "cli"};
  std::atomic<int> woken{0};
  auto subscription = store->subscribe_bans([&] { ++woken; });
  const std::string key(kBansKey);
  ASSERT_TRUE(run(make_event(key, admin, BanAdded{"192.0.2.9/24", "abuse", 0, "manual"})).ok());
  ASSERT_TRUE(run(make_event(key, {Protocol::system, "", "2001:db8::7", "s-1"},
                             BanAdded{"2001:db8::7/128", "10 failed logins", 1764003600000,
                                      "auth_failures"}))
                  .ok());
  const auto bans = store->bans();
  ASSERT_EQ(bans.size(), 2u);
  const auto v4 = store->ban("192.0.2.0/24");
  ASSERT_TRUE(v4) << "kept under its masked form";
  EXPECT_EQ(v4->reason, "abuse");
  EXPECT_EQ(v4->rule, "manual");
  EXPECT_EQ(v4->expires_ms, 0);
  EXPECT_EQ(v4->by, "admin root");
  const auto v6 = store->ban("2001:db8::7");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->by, "system 2001:db8::7");
  EXPECT_EQ(v6->expires_ms, 1764003600000);
  EXPECT_FALSE(v6->active(1764003600000));
  EXPECT_TRUE(v6->active(1764003599999));
  // Lifting: exactly that network; an unknown one or garbage is a no-op.
  EXPECT_EQ(run(make_event(key, admin, BanLifted{"192.0.2.0/25", ""})).code, OutcomeCode::invalid);
  EXPECT_EQ(run(make_event(key, admin, BanAdded{"not/a/network", "", 0, "manual"})).code,
            OutcomeCode::invalid);
  // A lift written for another ban of the network (an expired one) leaves
  // the newer ban alone.
  EXPECT_EQ(
      run(make_event(key, admin, BanLifted{"2001:db8::7/128", "expired", 1764000000000})).code,
      OutcomeCode::invalid);
  EXPECT_TRUE(store->ban("2001:db8::7/128"));
  ASSERT_TRUE(
      run(make_event(key, admin, BanLifted{"2001:db8::7/128", "expired", 1764003600000})).ok());
  EXPECT_FALSE(store->ban("2001:db8::7/128"));
  ASSERT_TRUE(run(make_event(key, admin, BanLifted{"192.0.2.0/24", "by hand"})).ok());
  EXPECT_FALSE(store->ban("192.0.2.0/24"));
  EXPECT_EQ(store->bans().size(), 0u);
  // Subscribers are called before the writer hears its event was applied
  // (the guard's bans are in force when a3ctl ban returns).
  EXPECT_EQ(woken, 4) << "two bans and two lifts, not the no-ops";
}

TEST_F(Projection, AppendsGetAscendingUidsAndModseqFromOffsets) {
  ASSERT_TRUE(run(create_account(kAlice)).ok());
  const Uuid box = inbox();
  std::uint64_t last_modseq = 0;
  for (int i = 1; i <= 3; ++i) {
    auto o = append(box, raw_message(i),
                    i == 2 ? std::vector<std::string>{"\\seen"} : std::vector<std::string>{});
    ASSERT_TRUE(o.ok()) << o.str();
    EXPECT_EQ(o.uids, std::vector<std::uint32_t>{static_cast<std::uint32_t>(i)});
    EXPECT_GT(o.modseq, last_modseq);
    last_modseq = o.modseq;
  }
  auto m = store->mailbox(box);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->uidnext, 4u);
  EXPECT_EQ(m->messages, 3u);
  EXPECT_EQ(m->unseen, 2u);
  EXPECT_EQ(m->highestmodseq, last_modseq);
  const auto msgs = store->messages(box);
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[1].flags, std::vector<std::string>{"\\Seen"}) << "system flags canonicalised";
  EXPECT_EQ(store->body(msgs[2].blob), raw_message(3)) << "bodies are stored byte for byte";
  EXPECT_EQ(store->messages(box, 2, 2).size(), 1u);
  // MIME was parsed once, at projection time.
  const auto summary = store->mime(msgs[2].blob);
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->subject, "message 3");
  EXPECT_NE(summary->envelope.find("\"<3@example.test>\""), std::string::npos);
}

TEST_F(Projection, FlagsHonourUnchangedSinceAndOnlyRealChangesBumpModseq) {
  ASSERT_TRUE(run(create_account(kAlice)).ok());
  const Uuid box = inbox();
  const auto a1 = append(box, raw_message(1));
  const auto a2 = append(box, raw_message(2));
  auto seen =
      run(make_event(kAlice, kImap, FlagsChanged{box, {1, 2}, FlagOp::add, {"\\Seen"}, {}}));
  EXPECT_EQ(seen.uids, (std::vector<std::uint32_t>{1, 2}));
  EXPECT_EQ(store->mailbox(box)->unseen, 0u);
  // Adding a flag a message already has changes nothing.
  auto again = run(make_event(kAlice, kImap, FlagsChanged{box, {1}, FlagOp::add, {"\\SEEN"}, {}}));
  EXPECT_TRUE(again.uids.empty());
  EXPECT_EQ(store->messages(box, 1, 1)[0].modseq, seen.modseq);
  // UNCHANGEDSINCE older than message 1's MODSEQ: refused for it (RFC 7162).
  auto cond = run(make_event(
      kAlice, kImap, FlagsChanged{box, {1, 2}, FlagOp::replace, {"$Important"}, a2.modseq}));
  EXPECT_EQ(cond.modified, (std::vector<std::uint32_t>{1, 2}));
  auto ok = run(make_event(kAlice, kImap,
                           FlagsChanged{box, {1}, FlagOp::replace, {"$Important"}, seen.modseq}));
  EXPECT_EQ(ok.uids, std::vector<std::uint32_t>{1});
  EXPECT_EQ(store->messages(box, 1, 1)[0].flags, std::vector<std::string>{"$Important"});
  EXPECT_EQ(store->mailbox(box)->unseen, 1u);
  (void)a1;
}

TEST_F(Projection, CopyMoveAndExpungeKeepUidsBodiesAndHistory) {
  ASSERT_TRUE(run(create_account(kAlice)).ok());
  const Uuid box = inbox();
  const Uuid archive = Uuid::v7();
  ASSERT_TRUE(run(make_event(kAlice, kImap, MailboxCreated{archive, "Archive", ""})).ok());
  for (int i = 1; i <= 4; ++i)
    append(box, raw_message(i), {"\\Flagged"});
  auto copied = run(make_event(kAlice, kImap, MessagesCopied{box, {2, 3, 99}, archive}));
  EXPECT_EQ(copied.source_uids, (std::vector<std::uint32_t>{2, 3}));
  EXPECT_EQ(copied.uids, (std::vector<std::uint32_t>{1, 2}));
  EXPECT_EQ(copied.uidvalidity, store->mailbox(archive)->uidvalidity);
  auto moved = run(make_event(kAlice, kImap, MessagesMoved{box, {4}, archive}));
  EXPECT_EQ(moved.uids, std::vector<std::uint32_t>{3});
  EXPECT_EQ(store->mailbox(box)->messages, 3u);
  EXPECT_EQ(store->messages(archive)[2].flags, std::vector<std::string>{"\\Flagged"});
  EXPECT_EQ(store->body(store->messages(archive)[2].blob), raw_message(4));

  auto expunged = run(make_event(kAlice, kImap, MessagesExpunged{box, {1, 2}}));
  EXPECT_EQ(expunged.uids, (std::vector<std::uint32_t>{1, 2}));
  auto twice = run(make_event(kAlice, kImap, MessagesExpunged{box, {1, 2}}));
  EXPECT_TRUE(twice.ok());
  EXPECT_TRUE(twice.uids.empty()) << "expunging what is gone is a no-op";
  auto vanished = store->expunged_since(box, moved.modseq - 1);
  ASSERT_EQ(vanished.size(), 3u);  // 4 (moved) and 1, 2
  EXPECT_EQ(store->expunged_since(box, expunged.modseq).size(), 0u);
  // Message 2's body is still referenced by its copy in Archive.
  EXPECT_EQ(store->body(store->messages(archive)[0].blob), raw_message(2));
  // New UIDs never reuse expunged ones.
  EXPECT_EQ(append(box, raw_message(9)).uids, std::vector<std::uint32_t>{5});
}

TEST_F(Projection, MoveWithinOneMailboxGivesANewUidAndExpungesTheOld) {
  ASSERT_TRUE(run(create_account(kAlice)).ok());
  const Uuid box = inbox();
  append(box, raw_message(1), {"\\Seen"});
  append(box, raw_message(2));
  const auto before = *store->mailbox(box);
  auto moved = run(make_event(kAlice, kImap, MessagesMoved{box, {1}, box}));
  ASSERT_TRUE(moved.ok()) << moved.str();
  EXPECT_EQ(moved.source_uids, std::vector<std::uint32_t>{1});
  EXPECT_EQ(moved.uids, std::vector<std::uint32_t>{3});
  const auto after = *store->mailbox(box);
  EXPECT_EQ(after.messages, 2u);
  EXPECT_EQ(after.size, before.size);
  EXPECT_EQ(after.unseen, before.unseen);
  EXPECT_EQ(after.uidnext, 4u);
  const auto msgs = store->messages(box);
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[1].uid, 3u);
  EXPECT_EQ(store->body(msgs[1].blob), raw_message(1));
  EXPECT_EQ(store->expunged_since(box, moved.modseq - 1).size(), 1u);
}

TEST_F(Projection, BodiesAreStoredOnceAndFreedWithTheLastReference) {
  ASSERT_TRUE(run(create_account(kAlice)).ok());
  const Uuid box = inbox();
  append(box, raw_message(1));
  append(box, raw_message(1));
  const auto blob = store->messages(box)[0].blob;
  ASSERT_EQ(store->messages(box)[1].blob, blob);
  run(make_event(kAlice, kImap, MessagesExpunged{box, {1}}));
  EXPECT_TRUE(store->body(blob)) << "still referenced by UID 2";
  run(make_event(kAlice, kImap, MessagesExpunged{box, {2}}));
  EXPECT_FALSE(store->body(blob));
}

TEST_F(Projection, RenameCarriesChildrenAndRecreatedNamesGetNewUidvalidity) {
  ASSERT_TRUE(run(create_account(kAlice)).ok());
  const Uuid a = Uuid::v7(), ab = Uuid::v7();
  run(make_event(kAlice, kImap, MailboxCreated{a, "a", ""}));
  run(make_event(kAlice, kImap, MailboxCreated{ab, "a/b", ""}));
  EXPECT_TRUE(run(make_event(kAlice, kImap, MailboxRenamed{a, "c"})).ok());
  EXPECT_EQ(store->mailbox(ab)->name, "c/b");
  EXPECT_FALSE(store->mailbox(kAlice, "a"));
  EXPECT_EQ(run(make_event(kAlice, kImap, MailboxRenamed{inbox(), "Old"})).code,
            OutcomeCode::invalid);
  EXPECT_EQ(run(make_event(kAlice, kImap, MailboxRenamed{ab, "Sent"})).code,
            OutcomeCode::mailbox_exists);
  const auto old_validity = store->mailbox(ab)->uidvalidity;
  append(ab, raw_message(1));
  EXPECT_TRUE(run(make_event(kAlice, kImap, MailboxDeleted{ab})).ok());
  EXPECT_FALSE(store->mailbox(ab));
  const Uuid again = Uuid::v7();
  run(make_event(kAlice, kImap, MailboxCreated{again, "c/b", ""}));
  EXPECT_GT(store->mailbox(again)->uidvalidity, old_validity);
  EXPECT_EQ(store->mailbox(again)->messages, 0u);
  EXPECT_EQ(run(make_event(kAlice, kImap, MailboxDeleted{inbox()})).code, OutcomeCode::invalid);
}

TEST_F(Projection, ImpossibleEventsAreRecordedNoOps) {
  auto o = run(make_event("ghost@example.test", kImap,
                          MessageAppended{Uuid::v7(), raw_message(1), 0, {}, {}}));
  EXPECT_EQ(o.code, OutcomeCode::unknown_account);
  ASSERT_TRUE(run(create_account(kAlice)).ok());
  ASSERT_TRUE(run(create_account("bob@example.test")).ok());
  // Bob's INBOX id used in an event of Alice's: another account's mailbox is
  // out of reach, as if it did not exist.
  const Uuid bobs = inbox("bob@example.test");
  EXPECT_EQ(append(bobs, raw_message(1)).code, OutcomeCode::mailbox_missing);
  EXPECT_EQ(store->mailbox(bobs)->messages, 0u);
  // A duplicate event id (a Kafka retry) is ignored.
  auto e = make_event(kAlice, kImap, MessageAppended{inbox(), raw_message(2), 0, {}, {}});
  EXPECT_TRUE(run(e).ok());
  EXPECT_EQ(run(e).code, OutcomeCode::duplicate);
  EXPECT_EQ(store->mailbox(kAlice, "INBOX")->messages, 1u);
  // The log kept going: every offset was applied.
  for (const auto& [p, next] : view->positions())
    EXPECT_EQ(next, *log->end_offset(p));
}

TEST_F(Projection, IncrementalProjectionAndReplayGiveTheSameDigest) {
  for (const auto& e : test::workload(300, 11))
    run(e);
  const std::string live = view->digest();
  const auto positions = view->positions();

  // Replay the same log into a fresh view, in big batches and in batches of 1.
  for (std::size_t batch : {std::size_t{4096}, std::size_t{1}}) {
    test::TempDir other;
    auto fresh = view::ViewDb::open(other.path() / "view");
    Projector replay(*log, *fresh, batch);
    ASSERT_TRUE(replay.catch_up());
    EXPECT_EQ(fresh->positions(), positions);
    EXPECT_EQ(fresh->digest(), live) << "batch size " << batch;
  }
}

TEST_F(Projection, RestartResumesFromTheStoredPosition) {
  for (const auto& e : test::workload(50, 3))
    run(e);
  const std::string before = view->digest();
  close();
  open();
  EXPECT_EQ(view->digest(), before) << "nothing is applied twice after a restart";
  auto o = run(create_account("late@example.test"));
  EXPECT_TRUE(o.ok());
}

// ---- staged bodies (BodyChunk + MessageAppended.staged) ----

class Staged : public Projection {
 protected:
  static constexpr std::int64_t kStart = 1764000000000;
  // Sends `body` in chunks of `chunk` bytes under `key`; returns the staged
  // description a MessageAppended would carry.
  StagedBody send(const std::string& key, const std::string& body, std::size_t chunk,
                  const Uuid& blob = Uuid::v7(), std::int64_t started = kStart) {
    StagedBody st{blob, started, body.size(), 0, false, ""};
    for (std::size_t pos = 0; pos < body.size(); pos += chunk) {
      auto e =
          make_event(key, kImap, BodyChunk{blob, started, st.chunks++, body.substr(pos, chunk)});
      e.at_ms = started;
      EXPECT_TRUE(run(e).ok());
    }
    return st;
  }
  Outcome append_staged(const std::string& account, const std::string& head, StagedBody st,
                        bool last_use, std::int64_t at = kStart) {
    st.last_use = last_use;
    auto e = make_event(account, kImap,
                        MessageAppended{inbox(account), head, at, {}, {}, std::move(st)});
    e.at_ms = at;
    return run(e);
  }
  std::string stored(const std::string& account, std::uint32_t uid) {
    auto msgs = store->messages(inbox(account), uid, uid);
    EXPECT_EQ(msgs.size(), 1u);
    if (msgs.empty()) return {};
    return store->body(msgs[0].blob).value_or("");
  }
  std::size_t staged_keys() {
    std::size_t n = 0;
    std::unique_ptr<rocksdb::Iterator> it(
        view->db()->NewIterator(rocksdb::ReadOptions(), view->cf(view::Family::staging)));
    for (it->SeekToFirst(); it->Valid(); it->Next())
      ++n;
    return n;
  }
};

TEST_F(Staged, ChunksMakeOneMessagePerAccountAndAreReleasedByTheLastUse) {
  const std::string bob = "bob@example.test";
  ASSERT_TRUE(run(create_account(kAlice)).ok());
  ASSERT_TRUE(run(create_account(bob)).ok());
  const std::string body = raw_message(7) + std::string(100000, 'z') + "\r\n";
  // Both accounts get the chunks under their own key when they are in
  // different partitions; here alice's key carries them for both when the
  // fixture's two partitions put them together.
  const bool same = log->partition_for(kAlice) == log->partition_for(bob);
  auto st = send(kAlice, body, 4096);
  if (!same) send(bob, body, 4096, st.blob_id);
  ASSERT_TRUE(append_staged(kAlice, "Received: a\r\n", st, !same).ok());
  const auto o = append_staged(bob, "Received: b\r\n", st, true);
  ASSERT_TRUE(o.ok()) << o.str();
  EXPECT_EQ(stored(kAlice, 1), "Received: a\r\n" + body);
  EXPECT_EQ(stored(bob, 1), "Received: b\r\n" + body);
  EXPECT_EQ(store->messages(inbox(kAlice))[0].size, body.size() + 13);
  EXPECT_EQ(staged_keys(), 0u) << "the last use releases the chunks";
}

TEST_F(Staged, MissingChunksAppendNothing) {
  ASSERT_TRUE(run(create_account(kAlice)).ok());
  auto st = send(kAlice, std::string(10000, 'x'), 4096);
  st.chunks += 1;  // names a chunk that never came
  EXPECT_EQ(append_staged(kAlice, "", st, true).code, OutcomeCode::invalid);
  st.chunks -= 1;
  st.size += 1;  // or says it is larger than it is
  EXPECT_EQ(append_staged(kAlice, "", st, true).code, OutcomeCode::invalid);
  EXPECT_TRUE(store->messages(inbox()).empty());
  st.size -= 1;
  EXPECT_TRUE(append_staged(kAlice, "", st, true).ok());
  EXPECT_EQ(stored(kAlice, 1), std::string(10000, 'x'));
}

TEST_F(Staged, AbandonedChunksAreDroppedADayLater) {
  ASSERT_TRUE(run(create_account(kAlice)).ok());
  send(kAlice, std::string(10000, 'x'), 4096);  // never named
  EXPECT_EQ(staged_keys(), 3u);
  const auto later = send(kAlice, "y", 4096, Uuid::v7(), kStart + 86'400'001);
  EXPECT_EQ(staged_keys(), 1u) << "only the new body stays";
  EXPECT_TRUE(append_staged(kAlice, "", later, true, kStart + 86'400'002).ok());
  EXPECT_EQ(staged_keys(), 0u);
}

// The outbound queue is a projection like the mailboxes: queued, attempted,
// deferred (moved in the due index), settled per recipient, and gone with
// its body once nobody is pending; a replay rebuilds it identically.
TEST_F(Projection, OutboundQueueFollowsItsEvents) {
  const Actor smtp{Protocol::submission, "alice@example.test", "192.0.2.1", "s"};
  const Uuid id = Uuid::v7();
  const std::string body = "Subject: out\r\n\r\nqueued body\r\n";
  OutboundQueued q{id,
                   "alice@example.test",
                   {{"bob@example.net", 0, ""}, {"carol@example.org", 0, ""}},
                   body,
                   std::nullopt,
                   "",
                   false,
                   1764000000000 + 86400000,
                   false,
                   false,
                   std::nullopt};
  ASSERT_TRUE(run(make_event("alice@example.test", smtp, q)).ok());
  auto due = store->due(std::numeric_limits<std::int64_t>::max() - 1, 10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].id, id);
  EXPECT_EQ(due[0].pending().size(), 2u);
  EXPECT_EQ(store->body(due[0].blob), body);
  EXPECT_FALSE(run(make_event("alice@example.test", smtp, q)).ok()) << "a queue id is used once";

  const Actor system{Protocol::system, "", "", "outbound"};
  ASSERT_TRUE(
      run(make_event("alice@example.test", system,
                     DeliveryAttempted{id, {"bob@example.net", "carol@example.org"}, "x", 1}))
          .ok());
  ASSERT_TRUE(run(make_event("alice@example.test", system,
                             Delivered{id, {"bob@example.net"}, "mx[192.0.2.2]:25", "250 ok"}))
                  .ok());
  ASSERT_TRUE(run(make_event("alice@example.test", system,
                             Deferred{id, {"carol@example.org"}, "mx", "451 later", 5000}))
                  .ok());
  EXPECT_TRUE(store->due(4999, 10).empty()) << "not due before its next attempt";
  due = store->due(5000, 10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].attempts, 1u);
  EXPECT_EQ(due[0].last_reply, "451 later");
  ASSERT_EQ(due[0].pending().size(), 1u);
  EXPECT_EQ(due[0].pending()[0]->address, "carol@example.org");
  EXPECT_EQ(store->queue_stats().messages, 1u);
  const auto blob = due[0].blob;

  ASSERT_TRUE(run(make_event("alice@example.test", system,
                             Bounced{id, {"carol@example.org"}, "mx", "550 no"}))
                  .ok());
  EXPECT_FALSE(store->queued(id)) << "settled: it leaves the queue";
  EXPECT_FALSE(store->body(blob)) << "with its body";
  EXPECT_EQ(store->queue_stats().messages, 0u);
  EXPECT_FALSE(run(make_event("alice@example.test", system, DeliveryRescheduled{id, 1})).ok());

  const std::string live = view->digest();
  test::TempDir other;
  auto fresh = view::ViewDb::open(other.path() / "view");
  Projector replay(*log, *fresh, 1);
  ASSERT_TRUE(replay.catch_up());
  EXPECT_EQ(fresh->digest(), live);
}

}  // namespace
}  // namespace a3::projections
