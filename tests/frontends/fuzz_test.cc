// Hostile-input smoke tests: thousands of mutated commands (valid ones
// with bytes flipped, cut, repeated or spliced) through the IMAP, POP3 and
// SMTP sessions against a real store. Nothing may throw out of a session
// or crash; every session must keep answering or close. Deterministic seeds.
#include <gtest/gtest.h>

#include <random>

#include "frontends/imap/session.h"
#include "frontends/pop3/session.h"
#include "frontends/smtp/session.h"
#include "tests/projections/projection_fixture.h"
#include "tests/projections/workload.h"

namespace a3 {
namespace {

std::string mutate(std::mt19937& rng, const std::vector<std::string>& corpus) {
  std::string s = corpus[rng() % corpus.size()];
  const int edits = static_cast<int>(rng() % 4);
  for (int i = 0; i < edits && !s.empty(); ++i) {
    const std::size_t at = rng() % s.size();
    switch (rng() % 6) {
      case 0:
        s[at] = static_cast<char>(rng() % 256);
        break;
      case 1:
        s.erase(at, rng() % 8);
        break;
      case 2: {
        static constexpr std::string_view kSpecials = "{}()[]<>\"\\*%$:,.~+-0123456789 \r\n";
        s.insert(at, std::string(1 + rng() % 3, kSpecials[rng() % kSpecials.size()]));
        break;
      }
      case 3:
        s.insert(at, corpus[rng() % corpus.size()].substr(0, rng() % 20));
        break;
      case 4:
        s = s.substr(0, at);
        break;
      default:
        s.insert(at, std::to_string(rng()));
        break;
    }
  }
  if (rng() % 4) s += "\r\n";
  return s;
}

class Fuzz : public test::ProjectionFixture {
 protected:
  void SetUp() override {
    ProjectionFixture::SetUp();
    ASSERT_TRUE(run(test::create_account(test::kAlice)).ok());
    const auto inbox = store->mailbox(test::kAlice, "INBOX");
    for (int i = 1; i <= 3; ++i) {
      ASSERT_TRUE(
          run(schemas::make_event(
                  test::kAlice, test::kImap,
                  schemas::MessageAppended{inbox->id, test::raw_message(i), 1764000000000, {}, {}}))
              .ok());
    }
  }
};

TEST_F(Fuzz, ImapSessionsSurviveMutatedCommands) {
  const std::vector<std::string> corpus = {
      "a LOGIN alice@example.test pw",
      "b SELECT INBOX (CONDSTORE)",
      "c FETCH 1:* (FLAGS UID BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<0.10> BINARY.PEEK[1] "
      "BODYSTRUCTURE ENVELOPE MODSEQ)",
      "d UID FETCH 1:* (BODY[1.MIME] BODY[TEXT] RFC822.SIZE) (CHANGEDSINCE 1 VANISHED)",
      "e SEARCH RETURN (MIN MAX COUNT SAVE) CHARSET UTF-8 OR (FROM bob SUBJECT message) "
      "NOT (LARGER 10 SINCE 1-Jan-2020) UID 1:* HEADER X-Y z MODSEQ 1",
      "f STORE 1:2 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Seen $Kw)",
      "g UID MOVE 1 Trash",
      "h COPY $ Junk",
      "i APPEND INBOX (\\Flagged) \" 7-Jul-1996 09:44:25 +0000\" {5+}\r\nhello",
      "j LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"*\" \"%/%\") RETURN (CHILDREN STATUS (MESSAGES "
      "SIZE))",
      "k CREATE a/b/c (USE (\\Archive))",
      "l RENAME a x/y",
      "m STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ DELETED SIZE)",
      "n ENABLE QRESYNC UTF8=ACCEPT IMAP4rev2",
      "o SELECT INBOX (QRESYNC (1 1 1:5 (1:2 1:2)))",
      "p IDLE",
      "DONE",
      "q AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABwdw==",
      "r UID EXPUNGE 1:*",
      "s ID (\"name\" \"x\")",
      "t APPEND INBOX UTF8 (~{3}\r\nabc)",
      "u SEARCH $",
      "v EXAMINE \"&ZeVnLIqe-\"",
  };
  std::mt19937 rng(20261126);
  imap::Shared shared;
  for (int s = 0; s < 40; ++s) {
    imap::Session session({"h", "192.0.2.1", "f", true, true, false}, imap::Limits{}, *store,
                          shared);
    session.receive("a LOGIN alice@example.test pw\r\nb SELECT INBOX\r\n");
    for (int i = 0; i < 150 && !session.closed(); ++i) {
      session.receive(mutate(rng, corpus));
      while (auto auth = session.take_auth())
        session.auth_result(std::string(test::kAlice));
      if (session.starttls_requested()) session.tls_established();
      session.take_output();
      if (session.idling()) session.receive("DONE\r\n");
    }
  }
}

TEST_F(Fuzz, Pop3SessionsSurviveMutatedCommands) {
  const std::vector<std::string> corpus = {
      "USER alice@example.test",
      "PASS pw",
      "STAT",
      "LIST",
      "LIST 1",
      "RETR 1",
      "TOP 1 2",
      "DELE 2",
      "RSET",
      "UIDL",
      "UIDL 3",
      "NOOP",
      "CAPA",
      "AUTH PLAIN",
      "AUTH",
      "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABwdw==",
      "UTF8",
      "STLS",
      "APOP x y",
  };
  std::mt19937 rng(6);
  pop3::Maildrops maildrops;
  for (int s = 0; s < 40; ++s) {
    pop3::Session session({"h", "192.0.2.1", "f", true, true, false}, pop3::Limits{}, *store,
                          maildrops);
    session.receive("USER alice@example.test\r\nPASS pw\r\n");
    for (int i = 0; i < 150 && !session.closed(); ++i) {
      session.receive(mutate(rng, corpus));
      while (auto auth = session.take_auth())
        session.auth_result(std::string(test::kAlice));
      if (session.starttls_requested()) session.tls_established();
      session.take_output();
      if (session.has_buffered_commands()) session.receive("");
    }
  }
}

TEST(FuzzSmtp, SmtpSessionsSurviveMutatedCommands) {
  class Policy : public smtp::Policy {
   public:
    Rcpt check_recipient(const smtp::Mailbox& to, const std::string&, std::uint64_t,
                         std::string& account) override {
      account = to.local;
      return to.domain == "example.test" ? Rcpt::accept : Rcpt::relay_denied;
    }
  } policy;
  const std::vector<std::string> corpus = {
      "EHLO client.example",
      "HELO x",
      "MAIL FROM:<a@example.net> SIZE=100 BODY=8BITMIME SMTPUTF8",
      "RCPT TO:<alice@example.test>",
      "RCPT TO:<\"q\"@example.test>",
      "DATA",
      "Subject: x\r\n\r\nbody\r\n.",
      "BDAT 5\r\nhello",
      "BDAT 0 LAST",
      "RSET",
      "NOOP",
      "VRFY bob",
      "STARTTLS",
      "AUTH PLAIN",
      "AUTH LOGIN",
      "AUTH PLAIN AGFsaWNlAHB3",
      "MAIL FROM:<@a,@b:c@d>",
      ".\r\n.",
  };
  std::mt19937 rng(25);
  int fed = 0;
  for (int s = 0; s < 60; ++s) {
    smtp::Limits limits;
    limits.max_errors = 1000;  // keep going: the point is what the parser does
    smtp::Session session({"mx", "192.0.2.1", true, false}, limits, policy);
    session.receive("EHLO fuzz.example\r\n");
    for (int i = 0; i < 150 && !session.closed(); ++i) {
      session.receive(mutate(rng, corpus));
      ++fed;
      session.take_output();
      if (session.take_message()) session.delivered(rng() % 2 == 0);
      if (auto auth = session.take_auth()) session.auth_result(false, "");
      if (session.starttls_requested()) session.tls_established();
      if (session.in_message() && session.buffered_data() > 100) session.take_data();
    }
  }
  // A malformed BDAT ends its session by design (its chunk cannot be
  // skipped), so sessions are shorter than 150 inputs; they must not all
  // end at once.
  EXPECT_GT(fed, 60 * 30) << "sessions ended early: the fuzzing did not reach far";
}

}  // namespace
}  // namespace a3
