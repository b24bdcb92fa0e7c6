// Hostile-input tests: thousands of mutated commands (valid ones with bytes
// flipped, cut, repeated or spliced) through the IMAP, POP3 and SMTP
// sessions against a real store. Nothing may throw out of a session or
// crash; every reply is well formed for its protocol (IMAP: untagged,
// continuation or tagged status, literals counted; POP3: +OK/-ERR and
// dot-terminated lists; SMTP: three-digit codes), nothing follows the
// goodbye, and output stays bounded. Each valid command of the corpora gets
// exactly one tagged reply. Deterministic seeds.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "frontends/imap/session.h"
#include "frontends/pop3/session.h"
#include "frontends/smtp/session.h"
#include "tests/frontends/imap/converse.h"
#include "tests/frontends/protocol_checks.h"
#include "tests/projections/projection_fixture.h"
#include "tests/projections/workload.h"

namespace a3 {
namespace {

using test::check_imap;
using test::check_pop3;
using test::check_smtp;

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

constexpr std::size_t kMaxOutputPerInput = 1 << 20;

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

  // The IMAP session as the server drives it; every login is alice's.
  std::string say(imap::Session& session, std::string_view bytes) {
    return test::converse(session, *store, bytes, [](const net::AuthRequest&) {
      return std::optional<std::string>(test::kAlice);
    });
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
    say(session, "a LOGIN alice@example.test pw\r\nb SELECT INBOX\r\n");
    for (int i = 0; i < 150 && !session.closed(); ++i) {
      const std::string input = mutate(rng, corpus);
      std::string out = say(session, input);
      if (session.starttls_requested()) session.tls_established();
      out += session.take_output();
      ASSERT_LE(out.size(), kMaxOutputPerInput) << input;
      ASSERT_EQ(check_imap(out), "") << "after " << input;
      if (session.idling()) say(session, "DONE\r\n");
    }
    if (session.closed()) {
      EXPECT_EQ(say(session, "z NOOP\r\n"), "") << "nothing after BYE";
    }
  }
}

TEST_F(Fuzz, EveryValidImapCommandGetsOneTaggedReply) {
  const std::vector<std::pair<std::string, std::string>> commands = {
      {"c", "c FETCH 1:* (FLAGS UID BODY.PEEK[HEADER.FIELDS (SUBJECT)] ENVELOPE)\r\n"},
      {"d", "d UID FETCH 1:* (BODY[TEXT] RFC822.SIZE) (CHANGEDSINCE 1)\r\n"},
      {"e", "e SEARCH RETURN (MIN MAX COUNT) OR FROM bob SUBJECT message\r\n"},
      {"f", "f STORE 1:2 +FLAGS.SILENT (\\Seen)\r\n"},
      {"h", "h COPY 1 Junk\r\n"},
      {"i", "i APPEND INBOX (\\Flagged) {5+}\r\nhello\r\n"},
      {"j", "j LIST \"\" *\r\n"},
      {"k", "k CREATE a/b\r\n"},
      {"m", "m STATUS INBOX (MESSAGES UIDNEXT SIZE DELETED-STORAGE)\r\n"},
      {"q", "q GETQUOTAROOT INBOX\r\n"},
      {"p", "p IDLE\r\nDONE\r\n"},
      {"r", "r UID EXPUNGE 1\r\n"},
      {"s", "s NOOP\r\n"},
      {"t", "t CHECK\r\n"},
      {"u", "u UNSELECT\r\n"},
  };
  imap::Shared shared;
  imap::Session session({"h", "192.0.2.1", "f", true, true, false}, imap::Limits{}, *store, shared);
  say(session, "a LOGIN alice@example.test pw\r\n");
  say(session, "b SELECT INBOX\r\n");
  for (const auto& [tag, command] : commands) {
    std::map<std::string, int> tagged;
    const std::string out = say(session, command);
    EXPECT_EQ(check_imap(out, &tagged), "") << command;
    EXPECT_EQ(tagged.size(), 1u) << command << out;
    EXPECT_EQ(tagged[tag], 1) << command << out;
    if (tag == "u") say(session, "b SELECT INBOX\r\n");
  }
  EXPECT_TRUE(say(session, "z LOGOUT\r\n").ends_with("z OK LOGOUT completed\r\n"));
  EXPECT_TRUE(session.closed());
  EXPECT_EQ(say(session, "y NOOP\r\n"), "") << "nothing after BYE";
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
    bool in_list = false;
    ASSERT_EQ(check_pop3(session.take_output(), &in_list), "");
    for (int i = 0; i < 150 && !session.closed(); ++i) {
      const std::string input = mutate(rng, corpus);
      session.receive(input);
      while (auto auth = session.take_auth())
        session.auth_result(std::string(test::kAlice));
      if (auto update = session.take_update())
        session.update_done(store->execute_blocking(*update));
      if (session.starttls_requested()) session.tls_established();
      const std::string out = session.take_output();
      ASSERT_LE(out.size(), kMaxOutputPerInput) << input;
      ASSERT_EQ(check_pop3(out, &in_list), "") << "after " << input;
      if (session.has_buffered_commands()) session.receive("");
    }
    if (session.closed()) {
      session.take_output();
      session.receive("NOOP\r\n");
      EXPECT_EQ(session.take_output(), "") << "nothing after QUIT";
    }
  }
}

TEST(FuzzSmtp, SmtpSessionsSurviveMutatedCommands) {
  class Policy : public smtp::Policy {
   public:
    Rcpt check_recipient(const smtp::Mailbox& to, bool, std::uint64_t,
                         smtp::Recipient& out) override {
      out.account = to.local;
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
      const std::string input = mutate(rng, corpus);
      session.receive(input);
      ++fed;
      const std::string out = session.take_output();
      ASSERT_LE(out.size(), kMaxOutputPerInput) << input;
      ASSERT_EQ(check_smtp(out), "") << "after " << input;
      if (session.take_message()) session.delivered(rng() % 2 == 0);
      if (auto auth = session.take_auth()) session.auth_result(false, "");
      if (session.starttls_requested()) session.tls_established();
      if (session.in_message() && session.buffered_data() > 100) session.take_data();
    }
    if (session.closed()) {
      session.take_output();
      session.receive("NOOP\r\n");
      EXPECT_EQ(session.take_output(), "") << "nothing after 221/421";
    }
  }
  // A malformed BDAT ends its session by design (its chunk cannot be
  // skipped), so sessions are shorter than 150 inputs; they must not all
  // end at once.
  EXPECT_GT(fed, 60 * 30) << "sessions ended early: the fuzzing did not reach far";
}

}  // namespace
// Floods of bytes with few or no line ends, literals announced and
// abandoned, messages larger than allowed: whatever arrives, what a session
// holds stays within its limits (plus one read), so a client cannot grow a
// connection's memory without bound.
TEST_F(Fuzz, BufferedInputStaysWithinTheLimits) {
  constexpr std::size_t kRead = 16 * 1024;  // one read of the driver
  std::mt19937 rng(9);
  auto flood = [&](std::string_view alphabet) {
    std::string chunk(kRead, 'a');
    for (auto& c : chunk) {
      const auto r = rng() % 64;
      if (r < alphabet.size()) c = alphabet[r];
    }
    return chunk;
  };

  imap::Limits il;
  il.append_limit = 1 << 20;
  imap::Shared shared;
  for (const bool login : {false, true}) {
    imap::Session session({"h", "192.0.2.1", "f", true, true, false}, il, *store, shared);
    if (login) say(session, "a LOGIN alice@example.test pw\r\nb SELECT INBOX\r\n");
    const std::size_t line = login ? il.max_line_after_auth : il.max_line_before_auth;
    const std::size_t bound = (login ? il.append_limit : 0) + 5 * line + kRead;
    say(session, "c APPEND INBOX {900000+}\r\n");
    for (int i = 0; i < 300 && !session.closed(); ++i) {
      say(session, flood(i % 3 ? "{}9+\r" : "\n"));
      ASSERT_LE(session.buffered_input(), bound) << "round " << i;
    }
  }

  pop3::Maildrops maildrops;
  pop3::Limits pl;
  pop3::Session pop({"h", "192.0.2.1", "f", true, true, false}, pl, *store, maildrops);
  for (int i = 0; i < 300 && !pop.closed(); ++i) {
    pop.receive(flood(i % 3 ? "x " : "\n"));
    pop.take_output();
    ASSERT_LE(pop.buffered_input(), pl.max_line + kRead) << "round " << i;
  }

  class Policy : public smtp::Policy {
   public:
    Rcpt check_recipient(const smtp::Mailbox& to, bool, std::uint64_t,
                         smtp::Recipient& out) override {
      out.account = to.local;
      return Rcpt::accept;
    }
  } policy;
  smtp::Limits sl;
  sl.max_message_size = 1 << 20;
  sl.max_errors = 1000;
  smtp::Session smtp({"mx", "192.0.2.1", true, false}, sl, policy);
  smtp.receive("EHLO fuzz.example\r\n");
  for (int i = 0; i < 300 && !smtp.closed(); ++i) {
    if (!smtp.in_message() && i % 50 == 0)
      smtp.receive("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    smtp.receive(flood(i % 3 ? "\r\n." : "\n"));
    smtp.take_output();
    if (smtp.take_message()) smtp.delivered(true);
    ASSERT_LE(smtp.buffered_input(), sl.max_message_size + sl.max_text_line + kRead)
        << "round " << i;
  }
}

}  // namespace a3
