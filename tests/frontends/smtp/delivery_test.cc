// SMTP delivery into the store: recipients checked against the view, one
// MessageAppended per account with a Received: header, bytes preserved, a
// retried message delivered once, a log failure never acknowledged.
#include <gtest/gtest.h>

#include <thread>

#include <fmt/format.h>

#include <rocksdb/db.h>
#include <boost/asio.hpp>

#include "frontends/smtp/delivery.h"
#include "tests/projections/projection_fixture.h"
#include "tests/projections/workload.h"
#include "tests/run_sync.h"

namespace a3::smtp {
namespace {

using schemas::Protocol;

using test::run_sync;

class Delivery : public test::ProjectionFixture {
 protected:
  void SetUp() override {
    ProjectionFixture::SetUp();
    ASSERT_TRUE(run(test::create_account("alice@example.test", {"al@example.test"})).ok());
    ASSERT_TRUE(run(test::create_account("bob@example.test")).ok());
  }

  // Runs one SMTP transaction; returns the final reply.
  // With `chunk`, the body goes ahead as BodyChunk events of that size, as
  // the server sends a large message.
  std::string transaction(const std::string& data, bool log_ok = true, std::size_t chunk = 0) {
    StorePolicy policy(*store, {"example.test", "localhost"});
    Session s({"mx.example.test", "192.0.2.7", false, false}, {}, policy);
    s.receive(
        "EHLO client.example.net\r\nMAIL FROM:<sender@example.net>\r\n"
        "RCPT TO:<alice@example.test>\r\nRCPT TO:<AL@Example.Test>\r\n"
        "RCPT TO:<bob@example.test>\r\nRCPT TO:<nobody@example.test>\r\n"
        "RCPT TO:<victim@elsewhere.example>\r\nDATA\r\n" +
        data + ".\r\n");
    replies = s.take_output();
    auto m = s.take_message();
    if (!m) return "no message";
    DeliveryContext ctx{"mx.example.test", "192.0.2.7",  "s-42", "", "",
                        Protocol::smtp,    1764072000000};
    const auto partition = [this](std::string_view k) { return log->partition_for(k); };
    if (!log_ok) log->close();
    // What the server runs for a message: the chunks of a staged body as
    // they come in, then the delivery.
    std::optional<StagedStream> stream;
    if (chunk > 0) {
      stream.emplace();
      const auto keys = chunk_keys(m->envelope.accounts, partition);
      EXPECT_EQ(keys.size(),
                log->partition_for("alice@example.test") == log->partition_for("bob@example.test")
                    ? 1u
                    : 2u);
      for (std::size_t pos = 0; pos < m->data.size(); pos += chunk)
        run_sync(stream_chunk(*store, *stream, keys, m->data.substr(pos, chunk), ctx));
      m->data.clear();
    }
    const auto refused = run_sync(deliver(*store, *m, ctx, stream ? &*stream : nullptr));
    if (refused) {
      s.not_delivered(*refused);
    } else {
      s.delivered(true);
    }
    if (log_ok) settle();
    return s.take_output();
  }

  // Waits until the projector has applied everything in the log.
  void settle() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      bool done = true;
      for (const auto& [p, next] : projector->applied())
        done = done && next == *log->end_offset(p);
      if (done) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    FAIL() << "the projector did not catch up";
  }

  std::vector<std::string> inbox(const std::string& account) {
    std::vector<std::string> out;
    const auto box = store->mailbox(account, "INBOX");
    for (const auto& m : store->messages(box->id))
      out.push_back(*store->body(m.blob));
    return out;
  }

  std::string replies;
};

TEST_F(Delivery, EachAccountGetsTheMessageOnceWithAReceivedHeader) {
  const std::string data = "Subject: hello\r\nMessage-ID: <m1@example.net>\r\n\r\nHi\r\n";
  EXPECT_EQ(transaction(data), "250 2.0.0 Message accepted for delivery\r\n");
  EXPECT_NE(replies.find("550 5.1.1 No such user here"), std::string::npos) << replies;
  EXPECT_NE(replies.find("550 5.7.1 Relaying denied"), std::string::npos) << replies;
  for (const char* account : {"alice@example.test", "bob@example.test"}) {
    const auto msgs = inbox(account);
    ASSERT_EQ(msgs.size(), 1u) << account;
    EXPECT_TRUE(
        msgs[0].starts_with("Received: from client.example.net ([192.0.2.7])\r\n"
                            "\tby mx.example.test (A3Mailer) with ESMTP id s-42\r\n"))
        << msgs[0];
    EXPECT_NE(msgs[0].find("; Tue, 25 Nov 2025"), std::string::npos) << msgs[0];
    EXPECT_TRUE(msgs[0].ends_with("\r\n" + data)) << "the message follows byte for byte";
  }
  // The client retries (a lost 250): the same events, recognised as duplicates.
  EXPECT_EQ(transaction(data), "250 2.0.0 Message accepted for delivery\r\n");
  EXPECT_EQ(inbox("alice@example.test").size(), 1u);
  EXPECT_EQ(inbox("bob@example.test").size(), 1u);
}

TEST_F(Delivery, AStagedBodyIsDeliveredWholeAndRetriesAreDuplicates) {
  std::string data = "Subject: large\r\nMessage-ID: <big@example.net>\r\n\r\n";
  for (int i = 0; i < 2000; ++i)
    data += fmt::format("line {} of a message sent ahead in chunks\r\n", i);
  EXPECT_EQ(transaction(data, true, 7000), "250 2.0.0 Message accepted for delivery\r\n");
  for (const char* account : {"alice@example.test", "bob@example.test"}) {
    const auto msgs = inbox(account);
    ASSERT_EQ(msgs.size(), 1u) << account;
    EXPECT_TRUE(msgs[0].starts_with("Received: from client.example.net")) << account;
    EXPECT_TRUE(msgs[0].ends_with("\r\n" + data)) << account;
  }
  // The same message again, sent inline this time: the same event ids.
  EXPECT_EQ(transaction(data, true, 0), "250 2.0.0 Message accepted for delivery\r\n");
  EXPECT_EQ(transaction(data, true, 5000), "250 2.0.0 Message accepted for delivery\r\n");
  EXPECT_EQ(inbox("alice@example.test").size(), 1u);
  EXPECT_EQ(inbox("bob@example.test").size(), 1u);
}

TEST_F(Delivery, ALogFailureIsATemporaryErrorNever250) {
  EXPECT_EQ(transaction("Subject: x\r\n\r\ny\r\n", /*log_ok=*/false),
            "451 4.3.0 Temporary failure of the mail store, try again later\r\n");
}

// Runs `commands` (MAIL FROM ... DATA ... .) and, for an accepted message,
// the delivery the server would run; returns every reply.
std::string session_with_delivery(projections::Store& store, const std::string& commands) {
  StorePolicy policy(store, {"example.test"});
  Session s({"mx.example.test", "192.0.2.7", false, false}, {}, policy);
  s.receive("EHLO client.example.net\r\n" + commands);
  std::string out = s.take_output();
  if (auto m = s.take_message()) {
    DeliveryContext ctx{"mx.example.test", "192.0.2.7",  "s-43", "", "",
                        Protocol::smtp,    1764072000000};
    const auto refused = run_sync(deliver(store, *m, ctx, nullptr));
    if (refused) {
      s.not_delivered(*refused);
    } else {
      s.delivered(true);
    }
    out += s.take_output();
  }
  return out;
}

TEST_F(Delivery, QuotasAreCheckedPerRecipient) {
  const auto bobs = store->mailbox("bob@example.test", "INBOX");
  // Bob's mailbox holds more than his quota (an operator's import).
  ASSERT_TRUE(run(schemas::make_event(
                      "bob@example.test", test::kAdmin,
                      schemas::MessageAppended{bobs->id, std::string(2000, 'x'), 0, {}, {}}))
                  .ok());
  ASSERT_TRUE(
      run(schemas::make_event("bob@example.test", test::kAdmin, schemas::AccountQuotaChanged{1000}))
          .ok());
  ASSERT_TRUE(run(schemas::make_event("alice@example.test", test::kAdmin,
                                      schemas::AccountQuotaChanged{4000}))
                  .ok());
  // A full mailbox is refused at RCPT (452 4.2.2), temporarily, and the
  // other recipient still gets the message.
  auto out =
      session_with_delivery(*store,
                            "MAIL FROM:<s@example.net>\r\nRCPT TO:<bob@example.test>\r\n"
                            "RCPT TO:<alice@example.test>\r\nDATA\r\nSubject: q\r\n\r\nx\r\n.\r\n");
  EXPECT_NE(out.find("452 4.2.2 Mailbox full"), std::string::npos) << out;
  EXPECT_NE(out.find("250 2.0.0 Message accepted"), std::string::npos) << out;
  settle();
  EXPECT_EQ(inbox("alice@example.test").size(), 1u);
  EXPECT_EQ(inbox("bob@example.test").size(), 1u) << "only the operator's message";
  // A declared size larger than the whole quota: 552 5.2.2 at RCPT.
  out = session_with_delivery(
      *store, "MAIL FROM:<s@example.net> SIZE=5000\r\nRCPT TO:<alice@example.test>\r\n");
  EXPECT_NE(out.find("552 5.2.2"), std::string::npos) << out;
  // Undeclared, and larger than the quota: 552 5.2.2 at the end of DATA.
  out = session_with_delivery(
      *store, "MAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n" + [] {
        std::string lines;
        for (int i = 0; i < 50; ++i)
          lines += std::string(90, 'y') + "\r\n";
        return lines;
      }() + ".\r\n");
  EXPECT_NE(out.find("552 5.2.2 Message larger than the recipient's quota"), std::string::npos)
      << out;
  settle();
  EXPECT_EQ(inbox("alice@example.test").size(), 1u);
}

// On an I/O thread the store answers from memory only: after a restart,
// what is on disk only is "would block", never a wrong "no such user".
TEST_F(Delivery, MemoryOnlyReadsNeverWaitForTheDisk) {
  ASSERT_TRUE(view->db()->Flush(rocksdb::FlushOptions()).ok());
  close();
  open();
  {
    projections::Store::MemoryOnlyReads memory_only;
    // Flushed and reopened: the block cache is cold, the data on disk.
    EXPECT_EQ(store->account_for_address("al@example.test"), std::nullopt);
    EXPECT_TRUE(memory_only.would_block()) << "a miss must say it would have blocked";
    EXPECT_TRUE(projections::Store::reads_would_block());
  }
  EXPECT_FALSE(projections::Store::reads_would_block()) << "only inside a scope";
  EXPECT_EQ(store->account_for_address("al@example.test"), "alice@example.test");
}

TEST(Received, NamesTheProtocolPerRfc3848) {
  Envelope env;
  env.helo = "h";
  DeliveryContext ctx{"mx",
                      "192.0.2.1",
                      "id",
                      "TLSv1.3 TLS_AES_256_GCM_SHA384",
                      "alice@example.test",
                      schemas::Protocol::submission,
                      0};
  const std::string r = received_header(env, ctx, "bob@example.test");
  EXPECT_NE(r.find("with ESMTPSA id id"), std::string::npos) << r;
  EXPECT_NE(r.find("(using TLSv1.3 TLS_AES_256_GCM_SHA384)"), std::string::npos) << r;
  env.smtputf8 = true;
  ctx.tls.clear();
  ctx.auth_user.clear();
  EXPECT_NE(received_header(env, ctx, "x@y").find("with UTF8SMTP id"), std::string::npos);
}

}  // namespace
}  // namespace a3::smtp
