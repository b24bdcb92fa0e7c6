// IMAP transcripts over the sans-I/O session against a real store (local
// log + projector + view): framing, literals, states, every command, and
// what a second session sees.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <fmt/chrono.h>

#include "frontends/imap/session.h"
#include "schemas/codec.h"
#include "tests/frontends/imap/converse.h"
#include "tests/projections/projection_fixture.h"
#include "tests/projections/workload.h"

namespace a3::imap {
namespace {

using namespace schemas;

class Imap : public test::ProjectionFixture {
 protected:
  void SetUp() override {
    ProjectionFixture::SetUp();
    ASSERT_TRUE(run(test::create_account(test::kAlice)).ok());
    ASSERT_TRUE(run(test::create_account("bob@example.test")).ok());
  }

  std::unique_ptr<Session> open(bool tls = true) {
    SessionInfo info{"imap.example.test", "192.0.2.9", "t1", true, tls, false};
    return std::make_unique<Session>(info, limits, *store, shared);
  }

  // Sends `bytes`; completes logins (password "pw" is right); returns the
  // output.
  std::string say(Session& s, std::string_view bytes) {
    return test::converse(s, *store, bytes, [&](const net::AuthRequest& auth) {
      std::optional<std::string> account;
      if (auth.password == "pw") account = store->account_for_address(auth.user);
      return account;
    });
  }

  std::unique_ptr<Session> logged_in(const std::string& user = test::kAlice) {
    auto s = open();
    const auto out = say(*s, "l LOGIN " + user + " pw\r\n");
    EXPECT_NE(out.find("l OK [CAPABILITY"), std::string::npos) << out;
    return s;
  }

  void deliver(const std::string& account, const std::string& raw,
               std::vector<std::string> flags = {}) {
    const auto inbox = store->mailbox(account, "INBOX");
    ASSERT_TRUE(inbox);
    ASSERT_TRUE(run(make_event(account, test::kImap,
                               MessageAppended{inbox->id, raw, 1764000000000, flags, {}}))
                    .ok());
  }

  static bool has(const std::string& out, const std::string& line) {
    return out.find(line) != std::string::npos;
  }

  Limits limits;
  Shared shared;
};

TEST_F(Imap, GreetingAndLoginRules) {
  auto plain = open(false);
  EXPECT_TRUE(
      plain->greeting().starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS "
                                    "LOGINDISABLED"))
      << plain->greeting();
  EXPECT_TRUE(has(say(*plain, "a LOGIN alice@example.test pw\r\n"), "a NO [PRIVACYREQUIRED]"));
  EXPECT_TRUE(has(say(*plain, "b SELECT INBOX\r\n"), "b BAD"));
  auto s = open();
  EXPECT_TRUE(has(s->greeting(), "AUTH=PLAIN SASL-IR"));
  EXPECT_TRUE(has(say(*s, "a LOGIN alice@example.test wrong\r\n"), "a NO [AUTHENTICATIONFAILED]"));
  // AUTHENTICATE PLAIN with SASL-IR: "\0alice@example.test\0pw"
  EXPECT_TRUE(has(say(*s, "b AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABwdw==\r\n"),
                  "b OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+"));
  EXPECT_TRUE(has(say(*s, "c LOGIN x y\r\n"), "c BAD"));
  auto t = open();
  EXPECT_EQ(say(*t, "d AUTHENTICATE PLAIN\r\n"), "+ \r\n");
  EXPECT_TRUE(has(say(*t, "AGFsaWNlQGV4YW1wbGUudGVzdABwdw==\r\n"), "d OK"));
  auto u = open();
  say(*u, "e AUTHENTICATE PLAIN\r\n");
  EXPECT_TRUE(has(say(*u, "*\r\n"), "e BAD"));
}

TEST_F(Imap, StarttlsDiscardsPipelinedCommands) {
  auto s = open(false);
  EXPECT_EQ(say(*s, "a STARTTLS\r\nb NOOP\r\n"), "a OK Begin TLS negotiation now\r\n");
  EXPECT_TRUE(s->starttls_requested());
  s->tls_established();
  EXPECT_EQ(s->take_output(), "");
  EXPECT_TRUE(has(say(*s, "c CAPABILITY\r\n"), "AUTH=PLAIN"));
  EXPECT_FALSE(has(say(*s, "c CAPABILITY\r\n"), "STARTTLS"));
}

TEST_F(Imap, LiteralsSynchronisingAndNot) {
  auto s = open();
  EXPECT_EQ(say(*s, "a LOGIN {18}\r\n"), "+ Ready for literal data\r\n");
  EXPECT_TRUE(has(say(*s, "alice@example.test {2}\r\n"), "+ Ready"));
  EXPECT_TRUE(has(say(*s, "pw\r\n"), "a OK"));
  auto t = open();
  // LITERAL- before login: small non-synchronising literals are fine...
  EXPECT_TRUE(has(say(*t, "a LOGIN {18+}\r\nalice@example.test pw\r\n"), "a OK"));
  // ...large ones end the connection.
  auto u = open();
  const std::string out = say(*u, "a LOGIN {5000+}\r\n");
  EXPECT_TRUE(has(out, "* BYE [TOOBIG]")) << out;
  EXPECT_TRUE(u->closed());
  // A synchronising literal over the line limit is refused before it is sent.
  auto v = open();
  EXPECT_TRUE(has(say(*v, "a LOGIN {100000}\r\n"), "a BAD [TOOBIG]"));
  EXPECT_FALSE(v->closed());
}

TEST_F(Imap, LongLinesAndBadCommands) {
  limits.max_bad_commands = 3;
  auto s = open();
  EXPECT_TRUE(has(say(*s, "a " + std::string(9000, 'x')), "BAD Line too long"));
  EXPECT_TRUE(has(say(*s, "\r\nb NOOP\r\n"), "b OK"));
  EXPECT_TRUE(has(say(*s, "c FROB\r\n"), "c BAD"));
  EXPECT_TRUE(has(say(*s, "d FROB\r\n"), "d BAD"));
  EXPECT_FALSE(s->closed()) << "the NOOP in between reset the count: only consecutive errors";
  EXPECT_TRUE(has(say(*s, "e FROB\r\n"), "* BYE"));
  EXPECT_TRUE(s->closed());
  // A refused line announcing a non-synchronising literal ends the
  // connection: its bytes could not be told from commands.
  auto t = logged_in();
  EXPECT_TRUE(has(say(*t, "f APPEND INBOX {3+}" + std::string(70000, ' ') + "{3+}\r\nabc\r\n"),
                  "* BYE [TOOBIG]"));
  EXPECT_TRUE(t->closed());
  // LIST patterns cost linear time, whatever they are.
  auto u = logged_in();
  std::string pattern;
  for (int i = 0; i < 200; ++i)
    pattern += "*a";
  EXPECT_TRUE(has(say(*u, "g LIST \"\" \"" + pattern + "*b\"\r\n"), "g OK"));
}

TEST_F(Imap, SelectFetchAndSeen) {
  deliver(test::kAlice, test::raw_message(1));
  deliver(test::kAlice, test::raw_message(2), {"\\Flagged"});
  auto s = logged_in();
  std::string out = say(*s, "a SELECT INBOX\r\n");
  EXPECT_TRUE(has(out, "* 2 EXISTS\r\n")) << out;
  EXPECT_TRUE(has(out, "* OK [UIDVALIDITY "));
  EXPECT_TRUE(has(out, "* OK [UIDNEXT 3]"));
  EXPECT_TRUE(has(out, "* OK [HIGHESTMODSEQ "));
  EXPECT_TRUE(has(out, "* OK [UNSEEN 1]"));
  EXPECT_TRUE(has(out, "a OK [READ-WRITE]"));
  out = say(*s, "b FETCH 1:* (UID FLAGS RFC822.SIZE)\r\n");
  EXPECT_TRUE(has(out, "* 1 FETCH (UID 1 FLAGS () RFC822.SIZE "));
  EXPECT_TRUE(has(out, "* 2 FETCH (UID 2 FLAGS (\\Flagged) RFC822.SIZE "));
  out = say(*s, "c FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)] ENVELOPE)\r\n");
  EXPECT_TRUE(has(out, "BODY[HEADER.FIELDS (SUBJECT)] {22}\r\nSubject: message 1\r\n\r\n")) << out;
  EXPECT_TRUE(has(out, "ENVELOPE (NIL \"message 1\""));
  EXPECT_FALSE(has(out, "\\Seen"));
  out = say(*s, "d FETCH 1 BODY[TEXT]\r\n");
  EXPECT_TRUE(has(out, "* 1 FETCH (BODY[TEXT] {8}\r\nBody 1\r\n FLAGS (\\Seen))")) << out;
  out = say(*s, "e UID FETCH 2 (BODY[]<0.4>)\r\n");
  EXPECT_TRUE(has(out, "* 2 FETCH (UID 2 BODY[]<0> {4}\r\nFrom FLAGS (\\Flagged \\Seen))")) << out;
  EXPECT_TRUE(has(say(*s, "f FETCH 3 FLAGS\r\n"), "f BAD"));
  EXPECT_TRUE(has(say(*s, "g UID FETCH 3:* FLAGS\r\n"), "* 2 FETCH (UID 2 FLAGS"))
      << "n:* includes the highest UID";
  out = say(*s, "h FETCH 1 (BODY[1] BINARY.SIZE[1] BODYSTRUCTURE)\r\n");
  EXPECT_TRUE(has(out, "BODY[1] {8}\r\nBody 1\r\n")) << out;
  EXPECT_TRUE(has(out, "BINARY.SIZE[1] 8"));
  EXPECT_TRUE(has(out, "BODYSTRUCTURE (\"text\" \"plain\""));
}

TEST_F(Imap, ExamineIsReadOnly) {
  deliver(test::kAlice, test::raw_message(1));
  auto s = logged_in();
  EXPECT_TRUE(has(say(*s, "a EXAMINE INBOX\r\n"), "a OK [READ-ONLY]"));
  const std::string out = say(*s, "b FETCH 1 BODY[]\r\n");
  EXPECT_FALSE(has(out, "\\Seen")) << out;
  EXPECT_TRUE(has(say(*s, "c STORE 1 +FLAGS (\\Deleted)\r\n"), "c NO [READ-ONLY]"));
}

TEST_F(Imap, StoreWithConditionsAndExpunge) {
  for (int i = 1; i <= 4; ++i)
    deliver(test::kAlice, test::raw_message(i));
  auto s = logged_in();
  say(*s, "a SELECT INBOX (CONDSTORE)\r\n");
  std::string out = say(*s, "b STORE 1:2 +FLAGS (\\Deleted $Work)\r\n");
  EXPECT_TRUE(std::regex_search(
      out, std::regex(R"(\* 1 FETCH \(UID 1 FLAGS \(\$Work \\Deleted\) MODSEQ \(\d+\)\))")))
      << out;
  EXPECT_TRUE(has(out, "b OK"));
  out = say(*s, "c FETCH 4 MODSEQ\r\n");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(MODSEQ \((\d+)\))")));
  const auto modseq = std::stoull(m[1]);
  // Message 3 changes after its MODSEQ: the conditional store leaves it.
  say(*s, "d STORE 3 +FLAGS.SILENT (\\Answered)\r\n");
  out = say(*s, fmt::format("e STORE 3,4 (UNCHANGEDSINCE {}) +FLAGS (\\Seen)\r\n", modseq));
  EXPECT_TRUE(has(out, "e OK [MODIFIED 3]")) << out;
  EXPECT_TRUE(has(out, "* 4 FETCH (UID 4 FLAGS (\\Seen) MODSEQ"));
  out = say(*s, "f EXPUNGE\r\n");
  EXPECT_TRUE(has(out, "* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n")) << out;
  EXPECT_TRUE(has(say(*s, "g FETCH 1:* UID\r\n"), "* 2 FETCH (UID 4)"));
  say(*s, "h STORE 1 +FLAGS (\\Deleted)\r\n");
  say(*s, "i STORE 2 +FLAGS (\\Deleted)\r\n");
  out = say(*s, "j UID EXPUNGE 4\r\n");
  EXPECT_TRUE(has(out, "* 2 EXPUNGE")) << out;
  EXPECT_FALSE(has(out, "* 1 EXPUNGE"));
  EXPECT_TRUE(has(say(*s, "k STORE 1 +FLAGS (\\Bogus)\r\n"), "k BAD"));
}

TEST_F(Imap, SearchKeysAndEsearch) {
  deliver(test::kAlice, test::raw_message(1), {"\\Seen"});
  deliver(test::kAlice, test::raw_message(2));
  deliver(test::kAlice,
          "From: Carol <carol@example.net>\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\nX-Tag: blue\r\n"
          "Content-Transfer-Encoding: quoted-printable\r\n\r\nna=C3=AFve text\r\n");
  auto s = logged_in();
  say(*s, "a SELECT INBOX\r\n");
  EXPECT_TRUE(has(say(*s, "b SEARCH UNSEEN\r\n"), "* SEARCH 2 3\r\n"));
  EXPECT_TRUE(has(say(*s, "c SEARCH FROM carol\r\n"), "* SEARCH 3\r\n"));
  EXPECT_TRUE(has(say(*s, "d SEARCH CHARSET UTF-8 SUBJECT {5}\r\ncafé\r\n"), "* SEARCH 3\r\n"));
  EXPECT_TRUE(has(say(*s, "e SEARCH BODY \"naïve\"\r\n"), "* SEARCH 3\r\n"))
      << "quoted-printable is decoded";
  EXPECT_TRUE(has(say(*s, "f SEARCH HEADER X-Tag blue\r\n"), "* SEARCH 3\r\n"));
  EXPECT_TRUE(has(say(*s, "g SEARCH OR 1 3 NOT SEEN\r\n"), "* SEARCH 3\r\n"));
  EXPECT_TRUE(has(say(*s, "h UID SEARCH RETURN (MIN MAX COUNT) ALL\r\n"),
                  "* ESEARCH (TAG \"h\") UID MIN 1 MAX 3 COUNT 3\r\n"));
  EXPECT_TRUE(has(say(*s, "i SEARCH RETURN (SAVE) SUBJECT message\r\n"), "i OK"));
  EXPECT_TRUE(has(say(*s, "j FETCH $ UID\r\n"), "* 2 FETCH (UID 2)"));
  EXPECT_TRUE(has(say(*s, "k SEARCH CHARSET KOI8-R ALL\r\n"), "k NO [BADCHARSET"));
  EXPECT_TRUE(has(say(*s, "l SEARCH SINCE 1-Jan-2020 BEFORE 1-Jan-2100\r\n"), "* SEARCH 1 2 3"));
  EXPECT_TRUE(has(say(*s, "m SEARCH LARGER 100000\r\n"), "* SEARCH\r\n"));
}

TEST_F(Imap, CopyMoveAndUidplus) {
  deliver(test::kAlice, test::raw_message(1));
  deliver(test::kAlice, test::raw_message(2));
  auto s = logged_in();
  say(*s, "a SELECT INBOX\r\n");
  EXPECT_TRUE(has(say(*s, "b COPY 1 Nowhere\r\n"), "b NO [TRYCREATE]"));
  std::string out = say(*s, "c COPY 1:2 Trash\r\n");
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(c OK \[COPYUID \d+ 1:2 1:2\])"))) << out;
  out = say(*s, "d UID MOVE 2 Junk\r\n");
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\* OK \[COPYUID \d+ 2 1\])"))) << out;
  EXPECT_TRUE(has(out, "* 2 EXPUNGE\r\nd OK")) << out;
  out = say(*s, "e STATUS Trash (MESSAGES UIDNEXT UNSEEN SIZE)\r\n");
  EXPECT_TRUE(std::regex_search(
      out, std::regex(R"(\* STATUS "Trash" \(MESSAGES 2 UIDNEXT 3 UNSEEN 2 SIZE \d+\))")))
      << out;
  out = say(*s, "f APPEND Drafts (\\Draft) \"17-Jul-1996 02:44:25 -0700\" {13}\r\n");
  EXPECT_EQ(out, "+ Ready for literal data\r\n");
  out = say(*s, "Subject: x\r\n\r\n");
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(f OK \[APPENDUID \d+ 1\])"))) << out;
  out = say(*s, "g APPEND Drafts {1+}\r\na {1+}\r\nb\r\n");
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(g OK \[APPENDUID \d+ 2:3\])"))) << out;
  EXPECT_TRUE(has(say(*s, "h APPEND Nowhere {1+}\r\na\r\n"), "h NO [TRYCREATE]"));
}

TEST_F(Imap, LargeAppendsGoAheadInChunks) {
  auto s = logged_in();
  std::string raw = "Subject: large\r\nMessage-ID: <large@example.test>\r\n\r\n";
  while (raw.size() < 1'500'000)
    raw += "a line of a large appended message, long enough to matter\r\n";
  const std::string out =
      say(*s, fmt::format("a APPEND INBOX {{{}+}}\r\n", raw.size()) + raw + "\r\n");
  ASSERT_TRUE(has(out, "a OK [APPENDUID")) << out;
  say(*s, "b SELECT INBOX\r\n");
  EXPECT_TRUE(has(say(*s, "c FETCH 1 BODY.PEEK[]\r\n"),
                  fmt::format("BODY[] {{{}}}\r\n", raw.size()) + raw));
  std::size_t chunks = 0;
  for (std::int32_t p = 0; p < log->partitions(); ++p) {
    auto reader = log->open_reader({p, 0});
    ASSERT_TRUE(reader);
    for (;;) {
      auto records = (*reader)->poll(1000, std::chrono::milliseconds(0));
      if (!records || records->empty()) break;
      for (const auto& r : *records)
        chunks += std::holds_alternative<BodyChunk>(schemas::decode(r.value)->body) ? 1 : 0;
    }
  }
  EXPECT_EQ(chunks, 3u) << "1.5 MB in 512 KiB chunks";
}

TEST_F(Imap, KeywordsRecentBinaryAndMoveWithinAMailbox) {
  deliver(test::kAlice, test::raw_message(1));
  deliver(test::kAlice,
          "Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
          "Content-Transfer-Encoding: base64\r\n\r\naGk=\r\n--b--\r\n");
  auto a = logged_in();
  auto b = logged_in();
  // \Recent goes to one session only (RFC 3501 2.3.2).
  say(*a, "a SELECT INBOX\r\n");
  say(*b, "b SELECT INBOX\r\n");
  deliver(test::kAlice, test::raw_message(3));
  const std::string ra = say(*a, "a1 NOOP\r\n");
  const std::string rb = say(*b, "b1 NOOP\r\n");
  EXPECT_NE(has(ra, "* 1 RECENT"), has(rb, "* 1 RECENT")) << ra << rb;
  // A new keyword is announced in FLAGS before a FETCH shows it.
  std::string out = say(*a, "a2 STORE 1 +FLAGS ($Important)\r\n");
  EXPECT_LT(out.find("* FLAGS ("), out.find("$Important)")) << out;
  EXPECT_TRUE(has(out, "$Important \\*)] Flags permitted")) << out;
  EXPECT_TRUE(has(say(*b, "b2 NOOP\r\n"),
                  "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)"));
  // BINARY of a multipart is its bytes; of a base64 part, decoded.
  out = say(*a, "a3 FETCH 2 (BINARY.PEEK[] BINARY.PEEK[1])\r\n");
  EXPECT_TRUE(has(out, "BINARY[1] {2}\r\nhi")) << out;
  EXPECT_TRUE(has(out, "BINARY[] {")) << out;
  // A message whose body is a message: BODY[1] is the encapsulated message.
  deliver(test::kAlice,
          "Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n"
          "Subject: inner\r\n\r\ninner body\r\n");
  say(*a, "a30 NOOP\r\n");
  out = say(*a, "a31 UID FETCH 4 (BODY.PEEK[1] BODY.PEEK[1.TEXT] BODY.PEEK[1.HEADER])\r\n");
  EXPECT_TRUE(has(out, "BODY[1] {30}\r\nSubject: inner\r\n\r\ninner body\r\n")) << out;
  EXPECT_TRUE(has(out, "BODY[1.TEXT] {12}\r\ninner body\r\n")) << out;
  EXPECT_TRUE(has(out, "BODY[1.HEADER] {18}\r\nSubject: inner\r\n\r\n")) << out;
  // MOVE within the selected mailbox: a new UID, the old one expunged.
  out = say(*a, "a4 UID MOVE 1 INBOX\r\n");
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\* OK \[COPYUID \d+ 1 5\])"))) << out;
  EXPECT_TRUE(has(out, "* 1 EXPUNGE")) << out;
  EXPECT_TRUE(has(out, "a4 OK")) << out;
  EXPECT_TRUE(has(say(*a, "a5 UID FETCH 5 FLAGS\r\n"), "UID 5 FLAGS ($Important"));
}

TEST_F(Imap, MailboxesListAndNames) {
  auto s = logged_in();
  EXPECT_TRUE(has(say(*s, "a CREATE Work/Projects/2026\r\n"), "a OK"));
  EXPECT_TRUE(has(say(*s, "b CREATE Work\r\n"), "b NO [ALREADYEXISTS]"));
  std::string out = say(*s, "c LIST \"\" %\r\n");
  EXPECT_TRUE(has(out, "* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n")) << out;
  EXPECT_TRUE(has(out, "* LIST (\\HasChildren) \"/\" \"Work\"\r\n")) << out;
  EXPECT_TRUE(has(out, "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n")) << out;
  EXPECT_FALSE(has(out, "Work/Projects"));
  out = say(*s, "d LIST \"\" Work/*\r\n");
  EXPECT_TRUE(has(out, "\"/\" \"Work/Projects\"\r\n"));
  EXPECT_TRUE(has(out, "\"/\" \"Work/Projects/2026\"\r\n"));
  EXPECT_TRUE(has(say(*s, "e LIST \"\" \"\"\r\n"), "* LIST (\\Noselect) \"/\" \"\""));
  EXPECT_TRUE(has(say(*s, "f RENAME Work Job\r\n"), "f OK"));
  out = say(*s, "g LIST \"\" *\r\n");
  EXPECT_TRUE(has(out, "\"/\" \"Job/Projects/2026\"\r\n")) << out;
  EXPECT_FALSE(has(out, "Work"));
  // Modified UTF-7 for a rev1 client, UTF-8 once UTF8=ACCEPT is on.
  EXPECT_TRUE(has(say(*s, "h CREATE Entw&APw-rfe\r\n"), "h OK"));
  EXPECT_TRUE(has(say(*s, "i LIST \"\" Entw*\r\n"), "\"/\" \"Entw&APw-rfe\"\r\n"));
  say(*s, "j ENABLE UTF8=ACCEPT\r\n");
  EXPECT_TRUE(has(say(*s, "k LIST \"\" Entw*\r\n"), "\"/\" {9}\r\nEntwürfe\r\n"));
  EXPECT_TRUE(has(say(*s, "l CREATE ../bob/INBOX\r\n"), "l NO [CANNOT]"));
  EXPECT_TRUE(has(say(*s, "m DELETE INBOX\r\n"), "m NO"));
  EXPECT_TRUE(has(say(*s, "n DELETE Job/Projects/2026\r\n"), "n OK"));
  EXPECT_TRUE(has(say(*s, "o SUBSCRIBE Job\r\n"), "o OK"));
  out = say(*s, "p LIST (SUBSCRIBED) \"\" * RETURN (CHILDREN STATUS (MESSAGES))\r\n");
  EXPECT_TRUE(has(out, "* LIST (\\Subscribed \\HasChildren) \"/\" \"Job\"\r\n")) << out;
  EXPECT_TRUE(has(out, "* STATUS \"Job\" (MESSAGES 0)")) << out;
  EXPECT_TRUE(has(say(*s, "q LIST (SPECIAL-USE) \"\" *\r\n"), "\\Trash) \"/\" \"Trash\""));
  EXPECT_TRUE(has(say(*s, "r NAMESPACE\r\n"), "* NAMESPACE ((\"\" \"/\")) NIL NIL"));
  // Another account's mailboxes are not reachable by any name.
  auto b = logged_in("bob@example.test");
  EXPECT_FALSE(has(say(*b, "s LIST \"\" *\r\n"), "Job"));
  EXPECT_TRUE(has(say(*b, "t SELECT Job\r\n"), "t NO [NONEXISTENT]"));
}

TEST_F(Imap, OtherSessionsChangesArriveAtTheRightMoments) {
  deliver(test::kAlice, test::raw_message(1));
  deliver(test::kAlice, test::raw_message(2));
  auto a = logged_in();
  auto b = logged_in();
  say(*a, "a SELECT INBOX\r\n");
  say(*b, "b SELECT INBOX\r\n");
  say(*b, "b1 STORE 1 +FLAGS (\\Deleted \\Seen)\r\n");
  say(*b, "b2 EXPUNGE\r\n");
  deliver(test::kAlice, test::raw_message(3));
  say(*b, "b4 UID STORE 2 +FLAGS (\\Answered)\r\n");
  // FETCH must not carry EXPUNGE; NOOP does.
  std::string out = say(*a, "a1 FETCH 2 UID\r\n");
  EXPECT_FALSE(has(out, "EXPUNGE")) << out;
  EXPECT_TRUE(has(out, "* 3 EXISTS")) << out;
  EXPECT_TRUE(has(out, "FLAGS (\\Answered)")) << out;
  out = say(*a, "a1b FETCH 2 UID\r\n");
  EXPECT_FALSE(has(out, "\\Answered")) << "reported once, not again while EXPUNGE waits: " << out;
  out = say(*a, "a2 NOOP\r\n");
  EXPECT_TRUE(has(out, "* 1 EXPUNGE\r\n")) << out;
  EXPECT_TRUE(has(say(*a, "a3 FETCH 1:* UID\r\n"), "* 2 FETCH (UID 3)"));
  // IDLE: changes are pushed when polled; DONE ends it.
  EXPECT_EQ(say(*a, "a4 IDLE\r\n"), "+ idling\r\n");
  say(*b, "b3 STORE 1 +FLAGS (\\Flagged)\r\n");
  a->idle_poll();
  EXPECT_TRUE(has(a->take_output(), "* 1 FETCH (UID 2 FLAGS (\\Answered \\Flagged"));
  EXPECT_TRUE(has(say(*a, "DONE\r\n"), "a4 OK"));
}

TEST_F(Imap, QresyncReportsVanishedExactly) {
  for (int i = 1; i <= 5; ++i)
    deliver(test::kAlice, test::raw_message(i));
  auto s = logged_in();
  say(*s, "a ENABLE QRESYNC\r\n");
  std::string out = say(*s, "b SELECT INBOX\r\n");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(UIDVALIDITY (\d+))")));
  const std::string uidvalidity = m[1];
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(HIGHESTMODSEQ (\d+))")));
  const std::string modseq = m[1];
  say(*s, "c STORE 2,4 +FLAGS (\\Deleted)\r\n");
  out = say(*s, "d EXPUNGE\r\n");
  EXPECT_TRUE(has(out, "* VANISHED 2,4\r\n")) << out;
  say(*s, "e STORE 1 +FLAGS (\\Seen)\r\n");
  say(*s, "f UNSELECT\r\n");
  out = say(*s, "g SELECT INBOX (QRESYNC (" + uidvalidity + " " + modseq + " 1:5))\r\n");
  EXPECT_TRUE(has(out, "* VANISHED (EARLIER) 2,4\r\n")) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\* 1 FETCH \(UID 1 FLAGS \(\\Seen\) MODSEQ)")))
      << out;
  out = say(*s, "h UID FETCH 1:* FLAGS (CHANGEDSINCE " + modseq + " VANISHED)\r\n");
  EXPECT_TRUE(has(out, "* VANISHED (EARLIER) 2,4\r\n")) << out;
}

// Whether an untagged FETCH response is well formed: quoted strings and
// literals skipped, parentheses balanced, one response per line.
bool well_formed(const std::string& out, std::string& why) {
  std::size_t i = 0;
  int depth = 0;
  while (i < out.size()) {
    const char c = out[i];
    if (c == '"') {
      for (++i; i < out.size() && out[i] != '"'; ++i) {
        if (out[i] == '\\') ++i;
        if (out[i] == '\r' || out[i] == '\n') return why = "CR/LF in a quoted string", false;
      }
      ++i;
    } else if (c == '{') {
      const auto close = out.find("}\r\n", i);
      if (close == std::string::npos) return why = "bad literal", false;
      i = close + 3 + std::stoul(out.substr(i + 1, close - i - 1));
    } else if (c == '(') {
      ++depth, ++i;
    } else if (c == ')') {
      if (--depth < 0) return why = "unbalanced )", false;
      ++i;
    } else if (c == '\r' && i + 1 < out.size() && out[i + 1] == '\n') {
      if (depth != 0) return why = "line ends inside parentheses", false;
      i += 2;
    } else {
      ++i;
    }
  }
  return depth == 0 || (why = "unclosed (", false);
}

TEST_F(Imap, EveryCorpusMessageIsServedBackWhole) {
  const std::filesystem::path corpus =
      std::filesystem::path(A3_TEST_SOURCE_DIR) / "../../shared/mime-corpus";
  ASSERT_TRUE(std::filesystem::exists(corpus)) << corpus;
  auto s = logged_in();
  std::vector<std::pair<std::string, std::string>> messages;
  for (const auto& f : std::filesystem::directory_iterator(corpus)) {
    if (f.path().extension() != ".eml") continue;
    std::ifstream in(f.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    messages.emplace_back(f.path().filename().string(), ss.str());
  }
  std::sort(messages.begin(), messages.end());
  for (const auto& [name, raw] : messages) {
    const std::string out =
        say(*s, fmt::format("a APPEND INBOX {{{}+}}\r\n", raw.size()) + raw + "\r\n");
    ASSERT_TRUE(has(out, "a OK [APPENDUID")) << name << ": " << out;
  }
  say(*s, "b SELECT INBOX\r\n");
  for (std::size_t n = 1; n <= messages.size(); ++n) {
    const auto& [name, raw] = messages[n - 1];
    const std::string out = say(
        *s, fmt::format(
                "c FETCH {} (BODY.PEEK[] ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE "
                "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] BODY.PEEK[1.MIME] BODY.PEEK[TEXT])\r\n",
                n));
    ASSERT_TRUE(has(out, "c OK FETCH completed")) << name << ": " << out.substr(0, 300);
    // A NUL cannot be in a literal (RFC 9051 4.3): BODY[] sends it as 0x80.
    std::string text = raw;
    std::replace(text.begin(), text.end(), '\0', '\x80');
    EXPECT_TRUE(has(out, fmt::format("BODY[] {{{}}}\r\n", raw.size()) + text)) << name;
    EXPECT_TRUE(has(out, fmt::format("RFC822.SIZE {}", raw.size()))) << name;
    std::string why;
    const std::string untagged = out.substr(0, out.rfind("c OK"));
    EXPECT_TRUE(well_formed(untagged, why)) << name << ": " << why;
    const std::string search = say(*s, fmt::format("d SEARCH {} TEXT \"the\"\r\n", n));
    EXPECT_TRUE(has(search, "d OK")) << name;
  }
}

// A mutation is answered only once its write is done, and the commands
// pipelined behind it wait for it; no thread waits meanwhile.
TEST_F(Imap, MutationsWaitForTheirWriteWithoutBlocking) {
  auto s = logged_in();
  s->receive("a CREATE Work\r\nb LIST \"\" Work\r\n");
  EXPECT_EQ(s->take_output(), "") << "nothing answered before the write";
  auto w = s->take_write();
  ASSERT_TRUE(w);
  EXPECT_FALSE(s->take_write()) << "one write at a time";
  ASSERT_EQ(w->events.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<MailboxCreated>(w->events[0].body));
  s->receive("c NOOP\r\n");
  EXPECT_EQ(s->take_output(), "") << "input buffered while the write is out";
  s->write_done(test::run_sync(store->execute(std::move(w->events), w->wait)));
  const std::string out = s->take_output();
  EXPECT_TRUE(has(out, "a OK CREATE completed\r\n* LIST")) << out;
  EXPECT_TRUE(has(out, "b OK")) << out;
  EXPECT_TRUE(has(out, "c OK")) << out;
}

// If the log cannot take a write the client gets a temporary failure, and
// MULTIAPPEND takes back what it had appended (RFC 3502: all or nothing).
TEST_F(Imap, UnavailableStoreGetsNoAndMultiappendIsUndone) {
  auto s = logged_in();
  s->receive("a CREATE Work\r\n");
  auto w = s->take_write();
  ASSERT_TRUE(w);
  s->write_done(projections::errc::unavailable);
  EXPECT_EQ(s->take_output(),
            "a NO [UNAVAILABLE] The mail store cannot take changes now, try again later\r\n");

  s->receive("b APPEND INBOX {5+}\r\nhello {5+}\r\nworld\r\n");
  auto first = s->take_write();
  ASSERT_TRUE(first);
  s->write_done(test::run_sync(store->execute(std::move(first->events), first->wait)));
  EXPECT_EQ(s->take_output(), "") << "the second message is not written yet";
  ASSERT_EQ(store->messages(store->mailbox(test::kAlice, "INBOX")->id).size(), 1u);
  auto second = s->take_write();
  ASSERT_TRUE(second);
  s->write_done(projections::errc::unavailable);
  auto undo = s->take_write();
  ASSERT_TRUE(undo) << "the first message is expunged again";
  ASSERT_EQ(undo->events.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<MessagesExpunged>(undo->events[0].body));
  s->write_done(test::run_sync(store->execute(std::move(undo->events), undo->wait)));
  EXPECT_TRUE(has(s->take_output(), "b NO [UNAVAILABLE]"));
  EXPECT_TRUE(store->messages(store->mailbox(test::kAlice, "INBOX")->id).empty());
  EXPECT_TRUE(has(say(*s, "c NOOP\r\n"), "c OK"));
}

// An APPEND of `raw` to INBOX, with a non-synchronising literal.
std::string append_command(const std::string& raw) {
  return fmt::format("x APPEND INBOX {{{}+}}\r\n", raw.size()) + raw + "\r\n";
}

TEST_F(Imap, StoreSilentSendsNothingOfItsOwnChange) {
  deliver(test::kAlice, test::raw_message(1));
  deliver(test::kAlice, test::raw_message(2));
  auto s = logged_in();
  say(*s, "a SELECT INBOX\r\n");
  // RFC 9051 6.4.6: no FETCH for the session's own silent change, now or
  // at the next poll.
  std::string out = say(*s, "b STORE 2 FLAGS.SILENT (\\Deleted)\r\n");
  EXPECT_FALSE(has(out, "FETCH")) << out;
  EXPECT_TRUE(has(out, "b OK"));
  out = say(*s, "c UID STORE 1 +FLAGS.SILENT (\\Seen)\r\n");
  EXPECT_FALSE(has(out, "FETCH")) << out;
  out = say(*s, "d NOOP\r\n");
  EXPECT_FALSE(has(out, "FETCH")) << out;
  EXPECT_TRUE(has(say(*s, "e FETCH 1:2 FLAGS\r\n"), "* 2 FETCH (FLAGS (\\Deleted))"));
  // RFC 7162 3.1.3: with CONDSTORE the new MODSEQ is still sent, once, and
  // no FLAGS.
  say(*s, "f ENABLE CONDSTORE\r\n");
  out = say(*s, "g STORE 1 +FLAGS.SILENT (\\Flagged)\r\n");
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\* 1 FETCH \(UID 1 MODSEQ \(\d+\)\)\r\n)")))
      << out;
  EXPECT_EQ(out.find("FETCH"), out.rfind("FETCH")) << out;
  EXPECT_FALSE(has(out, "FLAGS (")) << out;
  EXPECT_FALSE(has(say(*s, "h NOOP\r\n"), "FETCH"));
}

TEST_F(Imap, IdTakesWhatRfc2971AllowsAndNoMore) {
  auto s = logged_in();
  std::string fields;
  for (int i = 0; i < 30; ++i)
    fields += fmt::format("{}\"{}\" \"{}\"", i ? " " : "", std::string(30, 'a' + i % 26),
                          std::string(1024, 'v'));
  std::string out = say(*s, "a ID (" + fields + ")\r\n");
  EXPECT_TRUE(has(out, "* ID (\"name\" \"A3Mailer\"")) << out.substr(0, 200);
  EXPECT_TRUE(has(out, "a OK"));
  EXPECT_TRUE(has(say(*s, "b ID (" + fields + " \"x\" NIL)\r\n"), "b BAD"));
  EXPECT_TRUE(has(say(*s, "c ID (\"" + std::string(31, 'f') + "\" NIL)\r\n"), "c BAD"));
  EXPECT_TRUE(has(say(*s, "d ID (\"f\" \"" + std::string(1025, 'v') + "\")\r\n"), "d BAD"));
  EXPECT_TRUE(has(say(*s, "e ID NIL\r\n"), "e OK"));
}

TEST_F(Imap, SentDatesAreTheDateHeadersOwnDay) {
  auto s = logged_in();
  say(*s, "a SELECT INBOX\r\n");
  // 23:30 -0800 on 1 December is 2 December in UTC: SENTON is the 1st.
  say(*s, append_command("Date: Mon, 1 Dec 2025 23:30:00 -0800\r\nSubject: west\r\n\r\nx\r\n"));
  // 00:30 +0900 on 3 December is 2 December in UTC: SENTON is the 3rd.
  say(*s, append_command("Date: Wed, 3 Dec 2025 00:30:00 +0900\r\nSubject: east\r\n\r\nx\r\n"));
  // No Date: sent on 1 January 1970, before every date, as the reference.
  say(*s, append_command("Subject: undated\r\n\r\nx\r\n"));
  say(*s, append_command("Date: not a date\r\nSubject: bad\r\n\r\nx\r\n"));
  say(*s, "b NOOP\r\n");
  EXPECT_TRUE(has(say(*s, "c SEARCH SENTON 1-Dec-2025\r\n"), "* SEARCH 1\r\n"));
  EXPECT_TRUE(has(say(*s, "d SEARCH SENTON 3-Dec-2025\r\n"), "* SEARCH 2\r\n"));
  EXPECT_TRUE(has(say(*s, "e SEARCH SENTON 2-Dec-2025\r\n"), "* SEARCH\r\n"));
  EXPECT_TRUE(has(say(*s, "f SEARCH SENTBEFORE 2-Dec-2025\r\n"), "* SEARCH 1 3 4\r\n"));
  EXPECT_TRUE(has(say(*s, "g SEARCH SENTSINCE 2-Dec-2025\r\n"), "* SEARCH 2\r\n"));
  EXPECT_TRUE(has(say(*s, "h SEARCH SENTON 1-Jan-1970\r\n"), "* SEARCH 3 4\r\n"));
  // The ENVELOPE date is the header's text, even when it is not a date.
  EXPECT_TRUE(has(say(*s, "i FETCH 4 ENVELOPE\r\n"), "ENVELOPE (\"not a date\" \"bad\""));
}

TEST_F(Imap, SectionsOfPartsThatAreNotMessages) {
  auto s = logged_in();
  say(*s, "a SELECT INBOX\r\n");
  say(*s, append_command("Subject: one part\r\n\r\nbody text\r\n"));
  say(*s, "b NOOP\r\n");
  // Part 1 of a single-part message is its body; it has no header or text
  // of its own (it is no message/rfc822): both are empty.
  std::string out = say(*s, "c FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.HEADER] BODY.PEEK[1.TEXT])\r\n");
  EXPECT_TRUE(has(out, "BODY[1] {11}\r\nbody text\r\n")) << out;
  EXPECT_TRUE(has(out, "BODY[1.HEADER] {0}\r\n")) << out;
  EXPECT_TRUE(has(out, "BODY[1.TEXT] {0}\r\n")) << out;
}

TEST_F(Imap, NulIsNeverInALiteral) {
  auto s = logged_in();
  say(*s, "a SELECT INBOX\r\n");
  say(*s, append_command(std::string("Subject: nul\r\n\r\na\0b\r\n", 21)));
  say(*s, "b NOOP\r\n");
  // RFC 9051 4.3: a literal holds no NUL; BODY[] sends it as 0x80, as the
  // reference does, and BINARY[] sends the octets in a literal8.
  std::string out = say(*s, "c FETCH 1 (BODY.PEEK[TEXT] BINARY.PEEK[1])\r\n");
  EXPECT_TRUE(has(out,
                  "BODY[TEXT] {5}\r\na\x80"
                  "b\r\n"))
      << out;
  EXPECT_TRUE(has(out, std::string("BINARY[1] ~{5}\r\na\0b\r\n", 21))) << out;
}

TEST_F(Imap, SavedateIsWhenTheMessageCameIntoTheMailbox) {
  auto s = logged_in();
  EXPECT_TRUE(has(say(*s, "a CAPABILITY\r\n"), " SAVEDATE"));
  say(*s, "b SELECT INBOX\r\n");
  say(*s, append_command("Date: Mon, 1 Jan 2001 00:00:00 +0000\r\nSubject: old\r\n\r\nx\r\n"));
  say(*s, "c NOOP\r\n");
  // RFC 8514: not the Date header, not the internal date, but the save.
  std::string out = say(*s, "d FETCH 1 (SAVEDATE)\r\n");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      out, m,
      std::regex(R"(\* 1 FETCH \(SAVEDATE "(\d\d-\w\w\w-\d\d\d\d) \d\d:\d\d:\d\d \+0000"\))")))
      << out;
  const auto yesterday = std::chrono::system_clock::now() - std::chrono::hours(24);
  const std::string day =
      fmt::format("{:%d-%b-%Y}", std::chrono::floor<std::chrono::seconds>(yesterday));
  EXPECT_TRUE(has(say(*s, "e SEARCH SAVEDSINCE " + day + "\r\n"), "* SEARCH 1\r\n"));
  EXPECT_TRUE(has(say(*s, "f SEARCH SAVEDBEFORE " + day + "\r\n"), "* SEARCH\r\n"));
  EXPECT_TRUE(has(say(*s, "g SEARCH SAVEDON " + std::string(m[1]) + "\r\n"), "* SEARCH 1\r\n"));
  EXPECT_TRUE(has(say(*s, "h SEARCH SAVEDATESUPPORTED\r\n"), "* SEARCH 1\r\n"));
  EXPECT_TRUE(has(say(*s, "i SEARCH SENTBEFORE 2-Jan-2001\r\n"), "* SEARCH 1\r\n"));
}

}  // namespace
}  // namespace a3::imap
