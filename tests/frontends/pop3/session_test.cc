// POP3 transcripts over the sans-I/O session against a real store: states,
// every command, dot-stuffing, the maildrop snapshot, [IN-USE], QUIT's one
// expunge, and hostile input.
#include <gtest/gtest.h>

#include "frontends/pop3/session.h"
#include "tests/projections/projection_fixture.h"
#include "tests/projections/workload.h"

namespace a3::pop3 {
namespace {

using namespace schemas;

class Pop3 : public test::ProjectionFixture {
 protected:
  void SetUp() override {
    ProjectionFixture::SetUp();
    ASSERT_TRUE(run(test::create_account(test::kAlice)).ok());
  }

  std::unique_ptr<Session> open(bool tls = true) {
    SessionInfo info{"pop.example.test", "192.0.2.9", "p1", true, tls, false};
    return std::make_unique<Session>(info, limits, *store, maildrops);
  }

  std::string say(Session& s, std::string_view bytes) {
    s.receive(bytes);
    std::string out = s.take_output();
    while (auto auth = s.take_auth()) {
      std::optional<std::string> account;
      if (auth->password == "pw") account = store->account_for_address(auth->user);
      s.auth_result(account);
      out += s.take_output();
    }
    while (auto update = s.take_update()) {
      s.update_done(store->execute_blocking(*update));
      out += s.take_output();
    }
    return out;
  }

  std::unique_ptr<Session> logged_in() {
    auto s = open();
    say(*s, "USER alice@example.test\r\n");
    const std::string out = say(*s, "PASS pw\r\n");
    EXPECT_TRUE(out.starts_with("+OK Logged in")) << out;
    return s;
  }

  void deliver(const std::string& raw) {
    const auto inbox = store->mailbox(test::kAlice, "INBOX");
    ASSERT_TRUE(run(make_event(test::kAlice, test::kImap,
                               MessageAppended{inbox->id, raw, 1764000000000, {}, {}}))
                    .ok());
  }

  std::size_t inbox_size() {
    return store->messages(store->mailbox(test::kAlice, "INBOX")->id).size();
  }

  Limits limits;
  Maildrops maildrops;
};

TEST_F(Pop3, CapabilitiesAndLoginRules) {
  auto plain = open(false);
  EXPECT_EQ(plain->greeting(), "+OK pop.example.test A3Mailer POP3 ready\r\n");
  std::string capa = say(*plain, "CAPA\r\n");
  EXPECT_NE(capa.find("STLS\r\n"), std::string::npos) << capa;
  EXPECT_EQ(capa.find("USER\r\n"), std::string::npos) << "no plaintext passwords without TLS";
  EXPECT_TRUE(say(*plain, "USER alice@example.test\r\n").starts_with("-ERR [AUTH]"));
  EXPECT_TRUE(say(*plain, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABwdw==\r\n").starts_with("-ERR"));
  auto s = open();
  capa = say(*s, "CAPA\r\n");
  for (const char* c : {"TOP\r\n", "UIDL\r\n", "RESP-CODES\r\n", "AUTH-RESP-CODE\r\n",
                        "PIPELINING\r\n", "USER\r\n", "SASL PLAIN\r\n", "UTF8\r\n"})
    EXPECT_NE(capa.find(c), std::string::npos) << c << capa;
  EXPECT_TRUE(capa.ends_with("\r\n.\r\n"));
  EXPECT_TRUE(say(*s, "STAT\r\n").starts_with("-ERR"));
  EXPECT_TRUE(say(*s, "APOP alice x\r\n").starts_with("-ERR"));
  say(*s, "USER alice@example.test\r\n");
  EXPECT_EQ(say(*s, "PASS nope\r\n"), "-ERR [AUTH] Authentication failed\r\n");
  EXPECT_TRUE(say(*s, "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABwdw==\r\n").starts_with("+OK"));
  auto t = open();
  EXPECT_EQ(say(*t, "AUTH PLAIN\r\n"), "+ \r\n");
  EXPECT_EQ(say(*t, "*\r\n"), "-ERR Authentication cancelled\r\n");
  EXPECT_EQ(say(*t, "AUTH PLAIN\r\n"), "+ \r\n");
  EXPECT_TRUE(say(*t, "AGFsaWNlQGV4YW1wbGUudGVzdABwdw==\r\n").starts_with("-ERR [IN-USE]"))
      << "s holds the maildrop";
}

TEST_F(Pop3, StlsDiscardsPipelinedCommands) {
  auto s = open(false);
  EXPECT_EQ(say(*s, "STLS\r\nCAPA\r\n"), "+OK Begin TLS negotiation\r\n");
  EXPECT_TRUE(s->starttls_requested());
  s->tls_established();
  EXPECT_EQ(s->take_output(), "");
  const std::string capa = say(*s, "CAPA\r\n");
  EXPECT_EQ(capa.find("STLS"), std::string::npos);
  EXPECT_NE(capa.find("USER"), std::string::npos);
}

TEST_F(Pop3, ListRetrTopUidlAndDotStuffing) {
  deliver("Subject: one\r\n\r\n.starts with a dot\r\nline 2\r\nline 3\r\n");
  deliver("Subject: bare\n\nlf only\n");
  auto s = logged_in();
  // Sizes are the stored sizes (the second message, stored with bare LFs,
  // is sent with CRLF: three octets more than listed).
  EXPECT_EQ(say(*s, "STAT\r\n"), fmt::format("+OK 2 {}\r\n", 52 + 23));
  EXPECT_EQ(say(*s, "LIST\r\n"), "+OK Listing follows\r\n1 52\r\n2 23\r\n.\r\n");
  EXPECT_EQ(say(*s, "LIST 2\r\n"), "+OK 2 23\r\n");
  EXPECT_TRUE(say(*s, "LIST 3\r\n").starts_with("-ERR"));
  EXPECT_EQ(
      say(*s, "RETR 1\r\n"),
      "+OK 52 octets\r\nSubject: one\r\n\r\n..starts with a dot\r\nline 2\r\nline 3\r\n.\r\n");
  EXPECT_EQ(say(*s, "RETR 2\r\n"), "+OK 23 octets\r\nSubject: bare\r\n\r\nlf only\r\n.\r\n")
      << "CRLF-normalised";
  EXPECT_EQ(say(*s, "TOP 1 1\r\n"),
            "+OK Top follows\r\nSubject: one\r\n\r\n..starts with a dot\r\n.\r\n");
  EXPECT_EQ(say(*s, "TOP 1 0\r\n"), "+OK Top follows\r\nSubject: one\r\n\r\n.\r\n");
  EXPECT_EQ(
      say(*s, "TOP 1 99\r\n"),
      "+OK Top follows\r\nSubject: one\r\n\r\n..starts with a dot\r\nline 2\r\nline 3\r\n.\r\n")
      << "more lines than the body has: the whole body";
  const std::string uidl = say(*s, "UIDL\r\n");
  const auto box = store->mailbox(test::kAlice, "INBOX");
  EXPECT_EQ(uidl,
            fmt::format("+OK Listing follows\r\n1 {0}.1\r\n2 {0}.2\r\n.\r\n", box->uidvalidity));
  EXPECT_EQ(say(*s, "NOOP\r\n"), "+OK\r\n");
}

TEST_F(Pop3, QuitExpungesMarkedMessagesOnlyThen) {
  for (int i = 1; i <= 3; ++i)
    deliver(test::raw_message(i));
  auto s = logged_in();
  EXPECT_TRUE(say(*s, "DELE 1\r\n").starts_with("+OK"));
  EXPECT_TRUE(say(*s, "DELE 1\r\n").starts_with("-ERR")) << "already marked";
  EXPECT_TRUE(say(*s, "RETR 1\r\n").starts_with("-ERR"));
  EXPECT_TRUE(say(*s, "STAT\r\n").starts_with("+OK 2 "));
  EXPECT_TRUE(say(*s, "RSET\r\n").starts_with("+OK"));
  EXPECT_TRUE(say(*s, "STAT\r\n").starts_with("+OK 3 "));
  say(*s, "DELE 2\r\nDELE 3\r\n");
  // Mail arriving meanwhile changes nothing in this session's numbering.
  deliver(test::raw_message(4));
  EXPECT_TRUE(say(*s, "STAT\r\n").starts_with("+OK 1 "));
  EXPECT_EQ(inbox_size(), 4u) << "DELE only marks";
  EXPECT_EQ(say(*s, "QUIT\r\n"), "+OK Bye, 2 messages deleted\r\n");
  EXPECT_TRUE(s->closed());
  EXPECT_EQ(inbox_size(), 2u);
  // A dropped connection deletes nothing, and frees the maildrop.
  auto t = logged_in();
  say(*t, "DELE 1\r\n");
  t.reset();
  EXPECT_EQ(inbox_size(), 2u);
  auto u = logged_in();
  EXPECT_TRUE(say(*u, "STAT\r\n").starts_with("+OK 2 "));
}

TEST_F(Pop3, HostileInput) {
  limits.max_bad_commands = 3;
  auto s = open();
  EXPECT_EQ(say(*s, std::string(300, 'A') + "\r\n"), "-ERR Line too long\r\n");
  EXPECT_EQ(say(*s, "FROB\r\n"), "-ERR Unknown command or not allowed before login\r\n");
  const std::string out = say(*s, "FROB\r\n");
  EXPECT_NE(out.find("Too many errors"), std::string::npos);
  EXPECT_TRUE(s->closed());
}

}  // namespace
}  // namespace a3::pop3
