// SMTP transcripts over the sans-I/O session: parser, states, limits,
// smuggling and STARTTLS injection, open-relay tricks.
#include <gtest/gtest.h>

#include "frontends/smtp/session.h"

namespace a3::smtp {
namespace {

class FakePolicy : public Policy {
 public:
  Rcpt check_recipient(const Mailbox& to, bool, std::uint64_t, Recipient& out) override {
    if (to.domain != "example.test") return Rcpt::relay_denied;
    if (to.quoted || (to.local != "alice" && to.local != "bob")) return Rcpt::unknown_user;
    out.account = to.local + "@example.test";
    return Rcpt::accept;
  }
};

class Smtp : public ::testing::Test {
 protected:
  Smtp() : session({"mx.example.test", "192.0.2.1", true, false}, limits, policy) {}

  std::string say(std::string_view bytes) {
    session.receive(bytes);
    return session.take_output();
  }
  void hello() { ASSERT_TRUE(say("EHLO client.example\r\n").starts_with("250-mx.example.test")); }
  void envelope() {
    hello();
    ASSERT_EQ(say("MAIL FROM:<bob@example.net>\r\n"), "250 2.1.0 Sender OK\r\n");
    ASSERT_EQ(say("RCPT TO:<alice@example.test>\r\n"), "250 2.1.5 Recipient OK\r\n");
  }

  FakePolicy policy;
  Limits limits;
  Session session;
};

TEST_F(Smtp, EhloAdvertisesTheExtensions) {
  const std::string r = say("EHLO client.example\r\n");
  for (const char* ext : {"PIPELINING", "SIZE 50000000", "8BITMIME", "ENHANCEDSTATUSCODES",
                          "SMTPUTF8", "CHUNKING", "STARTTLS"}) {
    EXPECT_NE(r.find(ext), std::string::npos) << ext;
  }
  EXPECT_TRUE(r.ends_with("250 STARTTLS\r\n")) << r;
  EXPECT_EQ(say("HELO x\r\n"), "250 mx.example.test\r\n");
  EXPECT_EQ(say("EHLO\r\n"), "501 5.5.4 EHLO needs a domain\r\n");
  EXPECT_EQ(say("EHLO a b\r\n"), "501 5.5.4 Invalid domain name\r\n");
  EXPECT_EQ(say(std::string("EHLO a\0b\r\n", 10)), "501 5.5.4 Invalid domain name\r\n");
}

TEST_F(Smtp, TheCommandTableChecksOrderAndArgumentsOnce) {
  EXPECT_EQ(say("MAIL FROM:<a@example.net>\r\n"), "503 5.5.1 Say EHLO first\r\n");
  EXPECT_EQ(say("RCPT TO:<alice@example.test>\r\n"), "503 5.5.1 Say EHLO first\r\n");
  EXPECT_EQ(say("AUTH PLAIN\r\n"), "503 5.5.1 Say EHLO first\r\n");
  hello();
  EXPECT_EQ(say("RCPT TO:<alice@example.test>\r\n"), "503 5.5.1 MAIL first\r\n");
  EXPECT_EQ(say("DATA\r\n"), "503 5.5.1 MAIL first\r\n");
  EXPECT_EQ(say("RSET now\r\n"), "501 5.5.4 RSET takes no arguments\r\n");
  EXPECT_EQ(say("STARTTLS x\r\n"), "501 5.5.4 STARTTLS takes no arguments\r\n");
  EXPECT_EQ(say("FROB\r\n"), "500 5.5.2 Command not recognised\r\n");
  // Lower case verbs are the same commands (RFC 5321 2.4).
  EXPECT_EQ(say("noop\r\n"), "250 2.0.0 OK\r\n");
  // Every verb of the table is a command: none answers 500.
  for (const auto verb : Session::command_names()) {
    if (verb == "QUIT" || verb == "BDAT" || verb == "DATA" || verb == "STARTTLS") continue;
    EXPECT_EQ(say(std::string(verb) + " x\r\n").find("500 "), std::string::npos) << verb;
  }
}

TEST_F(Smtp, AMessageIsHandedOverAndAcknowledgedOnlyWhenDurable) {
  envelope();
  EXPECT_EQ(say("DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(say("Subject: hi\r\n\r\n..dot-stuffed\r\nbody\r\n.\r\n"), "");
  auto m = session.take_message();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data, "Subject: hi\r\n\r\n.dot-stuffed\r\nbody\r\n");
  EXPECT_EQ(m->envelope.accounts, std::vector<std::string>{"alice@example.test"});
  EXPECT_EQ(m->envelope.mail_from->mailbox.str(), "bob@example.net");
  session.delivered(true);
  EXPECT_EQ(session.take_output(), "250 2.0.0 Message accepted for delivery\r\n");
}

TEST_F(Smtp, TheCallerMayTakeALargeMessageWhileItComesIn) {
  envelope();
  say("DATA\r\n");
  EXPECT_TRUE(session.receiving_data());
  say("Subject: part\r\n\r\n..one\r\n");
  EXPECT_EQ(session.buffered_data(), 23u);
  EXPECT_EQ(session.take_data(), "Subject: part\r\n\r\n.one\r\n");
  say("two\r\n.\r\n");
  EXPECT_FALSE(session.receiving_data());
  auto m = session.take_message();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data, "two\r\n") << "only what was not taken";
  session.delivered(true);
  EXPECT_EQ(session.take_output(), "250 2.0.0 Message accepted for delivery\r\n");
}

TEST(SmtpLimits, TakenBytesStillCountAgainstTheSizeLimit) {
  FakePolicy policy;
  Limits limits;
  limits.max_message_size = 100;
  Session s({"mx.example.test", "192.0.2.1", true, false}, limits, policy);
  s.receive("EHLO c\r\nMAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
  s.receive(std::string(60, 'a') + "\r\n");
  EXPECT_EQ(s.take_data().size(), 62u);
  EXPECT_FALSE(s.data_refused());
  s.receive(std::string(60, 'b') + "\r\n");
  EXPECT_TRUE(s.data_refused());
  s.take_output();
  s.receive(".\r\n");
  EXPECT_EQ(s.take_output(), "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  EXPECT_FALSE(s.take_message());
}

// A lookup that would have waited for the disk on an I/O thread: the
// command is kept, answered nothing, and runs again (receive("")) where
// waiting is allowed; the pipelined commands behind it wait their turn.
TEST(SmtpRetry, ACommandWhoseLookupWouldBlockRunsAgainElsewhere) {
  class Slow : public FakePolicy {
   public:
    Rcpt check_recipient(const Mailbox& to, bool u, std::uint64_t size, Recipient& out) override {
      blocked_ = blocks_left_ > 0;
      if (blocked_) {
        --blocks_left_;
        return Rcpt::unknown_user;  // a wrong answer, which must not be used
      }
      return FakePolicy::check_recipient(to, u, size, out);
    }
    bool would_block() override { return std::exchange(blocked_, false); }
    int blocks_left_ = 1;
    bool blocked_ = false;
  } policy;
  Session s({"mx.example.test", "192.0.2.1", true, false}, {}, policy);
  s.receive("EHLO c\r\n");
  s.take_output();
  s.receive(
      "MAIL FROM:<b@example.net>\r\nRCPT TO:<alice@example.test>\r\nRCPT "
      "TO:<bob@example.test>\r\n");
  EXPECT_EQ(s.take_output(), "250 2.1.0 Sender OK\r\n");
  EXPECT_TRUE(s.retry_elsewhere());
  s.receive("");
  EXPECT_FALSE(s.retry_elsewhere());
  EXPECT_EQ(s.take_output(), "250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n");
  EXPECT_EQ(s.envelope().accounts.size(), 2u);
}

TEST_F(Smtp, LogFailureGivesATemporaryError) {
  envelope();
  say("DATA\r\nx\r\n.\r\n");
  ASSERT_TRUE(session.take_message());
  session.delivered(false);
  EXPECT_EQ(session.take_output(),
            "451 4.3.0 Temporary failure of the mail store, try again later\r\n");
}

TEST_F(Smtp, PipelinedCommandsWaitForTheDelivery) {
  envelope();
  EXPECT_EQ(say("DATA\r\nx\r\n.\r\nMAIL FROM:<>\r\nNOOP\r\n"),
            "354 End data with <CR><LF>.<CR><LF>\r\n");
  ASSERT_TRUE(session.take_message());
  session.delivered(true);
  EXPECT_EQ(session.take_output(),
            "250 2.0.0 Message accepted for delivery\r\n250 2.1.0 Sender OK\r\n250 2.0.0 OK\r\n");
}

// SMTP smuggling: none of these sequences may end the message; each makes
// it refused at the real <CRLF>.<CRLF>.
TEST_F(Smtp, SmugglingSequencesNeverEndAMessage) {
  const char* tricks[] = {"\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r\n.\n", "\n.\r"};
  for (const char* trick : tricks) {
    FakePolicy p;
    Session s({"mx", "192.0.2.1", false, false}, limits, p);
    s.receive("EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    s.take_output();
    s.receive(std::string("Subject: one\r\n\r\nfirst") + trick +
              "MAIL FROM:<evil@example.net>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nforged\r\n");
    EXPECT_EQ(s.take_output(), "") << "nothing answered inside the data: " << trick;
    EXPECT_FALSE(s.take_message());
    s.receive(".\r\n");
    EXPECT_FALSE(s.take_message()) << trick;
    EXPECT_EQ(s.take_output(), "550 5.6.0 Message contains a bare CR or LF (RFC 5321 2.3.8)\r\n")
        << trick;
  }
  // NUL before the dot: the line is ".\0"-free data; the real end is later.
  envelope();
  say("DATA\r\n");
  say(std::string("a\r\n\0.\r\nb\r\n", 10));
  EXPECT_FALSE(session.take_message());
  say(".\r\n");
  auto m = session.take_message();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data, std::string("a\r\n\0.\r\nb\r\n", 10));
}

TEST_F(Smtp, BareLfInCommandsIsRefused) {
  EXPECT_EQ(say("EHLO x\n"), "500 5.5.2 Bare CR or LF is not allowed (RFC 5321 2.3.8)\r\n");
  EXPECT_EQ(say("NOOP\rRSET\r\n"), "500 5.5.2 Bare CR or LF is not allowed (RFC 5321 2.3.8)\r\n");
}

TEST_F(Smtp, StarttlsDiscardsPipelinedPlaintextAndResetsState) {
  hello();
  say("MAIL FROM:<a@example.net>\r\n");
  EXPECT_EQ(say("STARTTLS\r\nRSET\r\n"), "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_TRUE(session.starttls_requested());
  EXPECT_EQ(say("NOOP\r\n"), "") << "nothing is read before the handshake";
  session.tls_established();
  EXPECT_EQ(say("MAIL FROM:<a@example.net>\r\n"), "503 5.5.1 Say EHLO first\r\n")
      << "state learned before TLS is forgotten";
  const std::string ehlo = say("EHLO x\r\n");
  EXPECT_EQ(ehlo.find("STARTTLS"), std::string::npos);
  EXPECT_EQ(say("STARTTLS\r\n"), "503 5.5.1 TLS is already active\r\n");
}

TEST_F(Smtp, OpenRelayTricksAreRefused) {
  hello();
  say("MAIL FROM:<spammer@example.net>\r\n");
  const std::pair<const char*, const char*> cases[] = {
      {"<victim@elsewhere.example>", "550 5.7.1"},
      {"<victim%elsewhere.example@example.test>", "550 5.1.1"},
      {"<elsewhere.example!victim@example.test>", "550 5.1.1"},
      {"<@example.test:victim@elsewhere.example>", "550 5.7.1"},
      {"<@example.test,@relay.example:victim@elsewhere.example>", "550 5.7.1"},
      {"<\"victim@elsewhere.example\"@example.test>", "550 5.1.1"},
      {"<\"victim%elsewhere.example\"@example.test>", "550 5.1.1"},
      {"<victim@elsewhere.example@example.test>", "553 5.1.3"},
      {"<victim@[192.0.2.99]>", "550 5.7.1"},
      {"<victim@example.test.>", "553 5.1.3"},
      {"<victim@elsewhere.example.>", "553 5.1.3"},
      {"<\"victim\"@example.test>", "550 5.1.1"},
      {"<victim>", "553 5.1.3"},
      {"victim@elsewhere.example", "553 5.1.3"},
      {"<victim@elsewhere.example> NOTIFY=NEVER", "550 5.7.1"},  // DSN parameters change nothing
      {"<alice@example.test@elsewhere.example>", "553 5.1.3"},
  };
  for (const auto& [to, code] : cases) {
    const std::string r = say(std::string("RCPT TO:") + to + "\r\n");
    EXPECT_TRUE(r.starts_with(code)) << to << " -> " << r;
  }
  EXPECT_EQ(say("DATA\r\n"), "554 5.5.1 No valid recipients\r\n");
}

TEST_F(Smtp, LimitsAreEnforced) {
  hello();
  EXPECT_EQ(say("MAIL FROM:<a@example.net> SIZE=60000000\r\n"),
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  EXPECT_EQ(say(std::string(600, 'A') + "\r\n"), "500 5.5.2 Line too long\r\n");
  EXPECT_EQ(say(std::string(100000, 'B')), "500 5.5.2 Line too long\r\n");
  EXPECT_EQ(say(std::string(100000, 'B') + "\r\nNOOP\r\n"), "250 2.0.0 OK\r\n")
      << "the rest of an over-long line is skipped, then commands go on";
  EXPECT_EQ(say("MAIL FROM:<a@example.net> FOO=BAR\r\n"),
            "555 5.5.4 Unsupported parameter FOO\r\n");
  EXPECT_EQ(say("MAIL FROM:<j\xc3\xbcrgen@example.net>\r\n"),
            "553 5.6.7 Non-ASCII address needs SMTPUTF8 (RFC 6531)\r\n");
  EXPECT_EQ(say("MAIL FROM:<j\xc3\xbcrgen@example.net> SMTPUTF8\r\n"), "250 2.1.0 Sender OK\r\n");
}

// RFC 5321 6.3: more than 100 Received: fields is a loop; 100 is not. Only
// the header counts (a quoted Received: line in the body is text).
TEST_F(Smtp, MailLoopsAreRefused) {
  hello();
  auto send = [&](int hops, const std::string& body) {
    say("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    std::string msg;
    for (int i = 0; i < hops; ++i)
      msg += "Received: from hop" + std::to_string(i) + ".example by x; Tue, 1 Dec 2026\r\n";
    return say(msg + "Subject: loop\r\n\r\n" + body + ".\r\n");
  };
  const std::string loop = send(101, "x\r\n");
  EXPECT_NE(loop.find("554 5.4.6 Too many hops"), std::string::npos) << loop;
  EXPECT_FALSE(session.take_message());
  std::string body;
  for (int i = 0; i < 200; ++i)
    body += "Received: quoted in the body\r\n";
  const std::string ok = send(100, body);
  EXPECT_EQ(ok.find("554"), std::string::npos) << ok;
  EXPECT_TRUE(session.take_message());
  session.delivered(true);
  session.take_output();

  // BDAT: counted across chunks of any size.
  std::string msg;
  for (int i = 0; i < 101; ++i)
    msg += "Received: from hop" + std::to_string(i) + ".example by x; Tue, 1 Dec 2026\r\n";
  msg += "\r\nbody\r\n";
  say("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.test>\r\n");
  std::string out;
  for (std::size_t pos = 0; pos < msg.size(); pos += 7) {
    const std::string piece = msg.substr(pos, 7);
    const bool last = pos + 7 >= msg.size();
    out += say("BDAT " + std::to_string(piece.size()) + (last ? " LAST" : "") + "\r\n" + piece);
  }
  EXPECT_NE(out.find("554 5.4.6 Too many hops"), std::string::npos) << out.substr(out.size() - 200);
  EXPECT_FALSE(session.take_message());
}

TEST_F(Smtp, TooManyRecipientsAndTooBigMessages) {
  limits.max_recipients = 2;
  limits.max_message_size = 2000;
  Session s({"mx", "", false, false}, limits, policy);
  s.receive(
      "EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.test>\r\n"
      "RCPT TO:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\n");
  EXPECT_TRUE(s.take_output().ends_with("452 4.5.3 Too many recipients\r\n"));
  s.receive("DATA\r\n" + std::string(3000, 'x').insert(900, "\r\n").insert(1900, "\r\n") +
            "\r\n.\r\n");
  EXPECT_FALSE(s.take_message());
  EXPECT_TRUE(
      s.take_output().ends_with("552 5.3.4 Message size exceeds fixed maximum message size\r\n"));
}

TEST_F(Smtp, TooManyErrorsClosesTheConnection) {
  limits.max_errors = 3;
  Session s({"mx", "", false, false}, limits, policy);
  s.receive("FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n");
  EXPECT_EQ(
      s.take_output(),
      "500 5.5.2 Command not recognised\r\n500 5.5.2 Command not recognised\r\n"
      "500 5.5.2 Command not recognised\r\n421 4.7.0 Too many errors, closing connection\r\n");
  EXPECT_TRUE(s.closed());
}

TEST_F(Smtp, ChunkingDeliversExactBytes) {
  envelope();
  EXPECT_EQ(say("BDAT 5\r\nab\r\n."), "250 2.0.0 5 octets received\r\n");
  EXPECT_EQ(say("BDAT 3 LAST\r\nxyz"), "");
  auto m = session.take_message();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data, "ab\r\n.xyz");
  session.delivered(true);
  EXPECT_EQ(session.take_output(), "250 2.0.0 Message accepted for delivery\r\n");
  // A chunk without recipients is read and discarded, staying in sync.
  say("MAIL FROM:<a@example.net>\r\n");
  EXPECT_EQ(say("BDAT 4 LAST\r\nNOOPNOOP\r\n"),
            "554 5.5.1 No valid recipients\r\n250 2.0.0 OK\r\n");
  EXPECT_EQ(say("BDAT x\r\n"), "501 5.5.4 Syntax: BDAT <size> [LAST]\r\n");
  EXPECT_TRUE(session.closed());
}

TEST_F(Smtp, SubmissionRequiresAuthentication) {
  Session s({"mx", "", true, true, /*require_auth=*/true}, limits, policy);
  s.receive("EHLO x\r\nMAIL FROM:<alice@example.test>\r\n");
  EXPECT_TRUE(s.take_output().ends_with("530 5.7.0 Authentication required\r\n"));
  s.set_authenticated("alice@example.test");
  s.receive("MAIL FROM:<alice@example.test>\r\n");
  EXPECT_EQ(s.take_output(), "250 2.1.0 Sender OK\r\n");
}

TEST_F(Smtp, AuthPlainAndLoginAfterTls) {
  Session s({"mx", "", true, true, /*require_auth=*/true}, limits, policy);
  s.receive("EHLO x\r\n");
  EXPECT_NE(s.take_output().find("250 AUTH PLAIN LOGIN"), std::string::npos);
  // RFC 4616: "\0alice@example.test\0secret", initial response (RFC 4954 4).
  s.receive("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\nNOOP\r\n");
  auto req = s.take_auth();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->user, "alice@example.test");
  EXPECT_EQ(req->password, "secret");
  EXPECT_EQ(s.take_output(), "") << "pipelined NOOP waits for the verdict";
  s.auth_result(false, "");
  EXPECT_EQ(s.take_output(), "535 5.7.8 Authentication credentials invalid\r\n250 2.0.0 OK\r\n");
  // LOGIN, step by step, and a cancelled exchange.
  s.receive("AUTH LOGIN\r\n");
  EXPECT_EQ(s.take_output(), "334 VXNlcm5hbWU6\r\n");
  s.receive("*\r\n");
  EXPECT_EQ(s.take_output(), "501 5.0.0 Authentication cancelled\r\n");
  s.receive("AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n");
  EXPECT_EQ(s.take_output(), "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n");
  req = s.take_auth();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->user, "alice");
  s.auth_result(true, "alice@example.test");
  EXPECT_EQ(s.take_output(), "235 2.7.0 Authentication successful\r\n");
  s.receive("AUTH PLAIN x\r\n");
  EXPECT_EQ(s.take_output(), "503 5.5.1 Already authenticated\r\n");
  // Bad base64 is a syntax error, not a crash.
  Session t({"mx", "", true, true, true}, limits, policy);
  t.receive("EHLO x\r\nAUTH PLAIN ***\r\nAUTH FOO\r\n");
  const std::string out = t.take_output();
  EXPECT_NE(out.find("501 5.5.2 Cannot decode the response"), std::string::npos) << out;
  EXPECT_NE(out.find("504 5.5.4"), std::string::npos) << out;
}

// The access lists' countries: a 554 greeting, then only QUIT (RFC 5321
// 3.1), and too many tries close the connection.
TEST_F(Smtp, ARefusedClientIsGreetedWith554AndMayOnlyQuit) {
  SessionInfo info{"mx.example.test", "203.0.113.9", true, false};
  info.refused = "Connections from country FR are refused here";
  Session s(info, limits, policy);
  EXPECT_EQ(s.greeting(), "554 mx.example.test Connections from country FR are refused here\r\n");
  s.receive("EHLO client.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.test>\r\n");
  const std::string r =
      "503 5.7.1 Connections from country FR are refused here; only QUIT is "
      "accepted\r\n";
  EXPECT_EQ(s.take_output(), r + r + r);
  s.receive("QUIT\r\n");
  EXPECT_TRUE(s.take_output().starts_with("221 "));
  EXPECT_TRUE(s.closed());
  Session t(info, limits, policy);
  for (int i = 0; i < limits.max_errors; ++i)
    t.receive("NOOP\r\n");
  EXPECT_TRUE(t.take_output().ends_with("421 4.7.0 Too many errors, closing connection\r\n"));
  EXPECT_TRUE(t.closed());
}

// The access lists' sender domains: on the MX, not for a logged-in user,
// never for the null sender (bounces).
TEST_F(Smtp, ARefusedSenderDomainGets550AndTheSessionGoesOn) {
  Limits l;
  std::vector<std::string> asked;
  l.refuses_sender = [&](std::string_view domain) -> std::optional<std::string> {
    asked.emplace_back(domain);
    if (domain == "spam.example") return "Sender domain spam.example is blocked here";
    return std::nullopt;
  };
  Session s({"mx", "192.0.2.1", true, false}, l, policy);
  s.receive("EHLO x\r\nMAIL FROM:<Bob@SPAM.example> SIZE=10\r\n");
  EXPECT_TRUE(
      s.take_output().ends_with("550 5.7.1 Sender domain spam.example is blocked here\r\n"));
  s.receive("MAIL FROM:<>\r\n");
  EXPECT_EQ(s.take_output(), "250 2.1.0 Sender OK\r\n");
  s.receive("RSET\r\nMAIL FROM:<bob@good.example>\r\n");
  EXPECT_EQ(s.take_output(), "250 2.0.0 OK\r\n250 2.1.0 Sender OK\r\n");
  EXPECT_EQ(asked, (std::vector<std::string>{"spam.example", "good.example"}));
  Session sub({"mx", "", true, true, /*require_auth=*/true}, l, policy);
  sub.set_authenticated("alice@example.test");
  sub.receive("EHLO x\r\nMAIL FROM:<alice@example.test>\r\n");
  EXPECT_TRUE(sub.take_output().ends_with("250 2.1.0 Sender OK\r\n"));
  EXPECT_EQ(asked.size(), 2u) << "a logged-in user is not asked about";
  SessionInfo relay{"mx", "10.0.0.5", true, false};
  relay.trusted_relay = true;  // outbound.trusted_networks
  Session inside(relay, l, policy);
  inside.receive("EHLO x\r\nMAIL FROM:<cron@spam.example>\r\n");
  EXPECT_TRUE(inside.take_output().ends_with("250 2.1.0 Sender OK\r\n"));
  EXPECT_EQ(asked.size(), 2u) << "a trusted relay is not asked about";
}

TEST_F(Smtp, NoPlaintextAuthWithoutTls) {
  Session s({"mx", "", true, false, /*require_auth=*/true}, limits, policy);
  s.receive("EHLO x\r\n");
  EXPECT_EQ(s.take_output().find("AUTH"), std::string::npos) << "not offered before TLS";
  s.receive("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
  EXPECT_EQ(s.take_output(),
            "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
  EXPECT_FALSE(s.take_auth());
}

TEST_F(Smtp, ManyShortLinesAndLongDataLinesStayInSync) {
  envelope();
  say("DATA\r\n");
  // A long line split right after its CR must still end with its CRLF.
  EXPECT_EQ(say(std::string(1500, 'x') + "\r"), "");
  const std::string out = say("\n.\r\nNOOP\r\n");
  EXPECT_FALSE(session.take_message());
  EXPECT_NE(out.find("550 5.6.0 Message has a line longer than 1000 octets"), std::string::npos)
      << out;
  EXPECT_TRUE(out.ends_with("250 2.0.0 OK\r\n")) << "the NOOP after the end is a command: " << out;
  // A SASL response that is too long cancels the exchange.
  Session s({"mx", "", true, true, true}, limits, policy);
  s.receive("EHLO x\r\nAUTH PLAIN\r\n" + std::string(2000, 'A') + "\r\nNOOP\r\n");
  const std::string o = s.take_output();
  EXPECT_NE(o.find("500 5.5.2 Line too long"), std::string::npos) << o;
  EXPECT_TRUE(o.ends_with("250 2.0.0 OK\r\n")) << o;
  EXPECT_FALSE(s.take_auth());
}

TEST_F(Smtp, CommandsOutOfOrder) {
  EXPECT_EQ(say("MAIL FROM:<a@example.net>\r\n"), "503 5.5.1 Say EHLO first\r\n");
  hello();
  EXPECT_EQ(say("RCPT TO:<alice@example.test>\r\n"), "503 5.5.1 MAIL first\r\n");
  EXPECT_EQ(say("DATA\r\n"), "503 5.5.1 MAIL first\r\n");
  EXPECT_EQ(say("MAIL FROM:<>\r\n"), "250 2.1.0 Sender OK\r\n");
  EXPECT_EQ(say("MAIL FROM:<>\r\n"), "503 5.5.1 Sender already given\r\n");
  EXPECT_EQ(say("RSET\r\n"), "250 2.0.0 OK\r\n");
  EXPECT_EQ(say("VRFY alice\r\n"),
            "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n");
  EXPECT_EQ(say("QUIT\r\n"), "221 2.0.0 mx.example.test closing connection\r\n");
  EXPECT_TRUE(session.closed());
}

}  // namespace
}  // namespace a3::smtp
