// MIME summaries: ENVELOPE and BODYSTRUCTURE as RFC 9051 7.5.2 renders them,
// exact part byte ranges, and the corpus of real and malformed messages.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "mime/mime.h"

namespace a3::mime {
namespace {

std::string range(std::string_view raw, std::uint64_t b, std::uint64_t e) {
  return std::string(raw.substr(b, e - b));
}

const Part& part(const Summary& s, const std::string& section) {
  for (const auto& p : s.parts) {
    if (p.section == section) return p;
  }
  throw std::runtime_error("no part " + section);
}

TEST(Mime, ImapStringsAreQuotedOrLiterals) {
  const std::pair<std::string, std::string> cases[] = {
      {"plain", "\"plain\""},
      {"say \"hi\" \\o/", "\"say \\\"hi\\\" \\\\o/\""},
      {"", "\"\""},
      {"two\r\nlines", "{10}\r\ntwo\r\nlines"},
      {"caf\xc3\xa9", "{5}\r\ncaf\xc3\xa9"},
  };
  for (const auto& [in, out] : cases)
    EXPECT_EQ(imap_string(in), out);
}

TEST(Mime, SimpleMessageEnvelopeAndStructure) {
  const std::string raw =
      "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
      "From: \"Bob Example\" <bob@example.net>\r\n"
      "To: alice@example.test, Carol <carol@example.test>\r\n"
      "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n"
      "Message-ID: <1@example.net>\r\n"
      "\r\n"
      "Hello\r\nworld\r\n";
  const Summary s = parse(raw);
  EXPECT_EQ(s.envelope,
            "(\"Wed, 25 Nov 2026 10:00:00 +0000\" \"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\" "
            "((\"Bob Example\" NIL \"bob\" \"example.net\")) "
            "((\"Bob Example\" NIL \"bob\" \"example.net\")) "
            "((\"Bob Example\" NIL \"bob\" \"example.net\")) "
            "((NIL NIL \"alice\" \"example.test\")(\"Carol\" NIL \"carol\" \"example.test\")) "
            "NIL NIL NIL \"<1@example.net>\")");
  EXPECT_EQ(s.body, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2)");
  EXPECT_EQ(
      s.bodystructure,
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2 NIL NIL NIL NIL)");
  EXPECT_EQ(s.subject, "Grüße");
  EXPECT_EQ(s.from, "Bob Example <bob@example.net>");
  EXPECT_EQ(s.message_id, "<1@example.net>");
  EXPECT_EQ(s.date_ms, 1795600800000);
  ASSERT_EQ(s.parts.size(), 1u);
  EXPECT_EQ(range(raw, s.parts[0].body_begin, s.parts[0].body_end), "Hello\r\nworld\r\n");
  EXPECT_TRUE(range(raw, 0, s.parts[0].body_begin).ends_with("<1@example.net>\r\n\r\n"));
}

TEST(Mime, MultipartRangesExcludeTheDelimiterCrlf) {
  const std::string raw =
      "From: a@example.test\r\n"
      "Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
      "\r\n"
      "preamble\r\n"
      "--XX\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "\r\n"
      "first\r\n"
      "--XX\r\n"
      "Content-Type: application/pdf; name=\"r.pdf\"\r\n"
      "Content-Disposition: attachment; filename=\"r.pdf\"\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "QUJD\r\n"
      "--XX--\r\n"
      "epilogue\r\n";
  const Summary s = parse(raw);
  const Part& p1 = part(s, "1");
  const Part& p2 = part(s, "2");
  EXPECT_EQ(range(raw, p1.body_begin, p1.body_end), "first");
  EXPECT_EQ(range(raw, p1.header_begin, p1.body_begin),
            "Content-Type: text/plain; charset=utf-8\r\n\r\n");
  EXPECT_EQ(range(raw, p2.body_begin, p2.body_end), "QUJD");
  EXPECT_EQ(p2.encoding, "base64");
  EXPECT_EQ(p2.type, "application/pdf");
  EXPECT_EQ(s.bodystructure,
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL)"
            "(\"application\" \"pdf\" (\"name\" \"r.pdf\") NIL NIL \"base64\" 4 NIL "
            "(\"attachment\" (\"filename\" \"r.pdf\")) NIL NIL) \"mixed\" (\"boundary\" \"XX\") "
            "NIL NIL NIL)");
  EXPECT_EQ(s.body,
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 0)"
            "(\"application\" \"pdf\" (\"name\" \"r.pdf\") NIL NIL \"base64\" 4) \"mixed\")");
}

TEST(Mime, EmbeddedMessagesAreNumberedBelowTheirPart) {
  const std::string raw =
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
      "--b\r\nContent-Type: message/rfc822\r\n\r\n"
      "From: c@example.test\r\nSubject: inner\r\n"
      "Content-Type: multipart/alternative; boundary=c\r\n\r\n"
      "--c\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
      "--c\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
      "--c--\r\n"
      "--b--\r\n";
  const Summary s = parse(raw);
  const Part& msg = part(s, "2");
  EXPECT_TRUE(msg.message);
  EXPECT_TRUE(range(raw, msg.body_begin, msg.inner_body_begin).starts_with("From: c@example"));
  EXPECT_EQ(range(raw, part(s, "2.1").body_begin, part(s, "2.1").body_end), "plain");
  EXPECT_EQ(range(raw, part(s, "2.2").body_begin, part(s, "2.2").body_end), "<p>html</p>");
  EXPECT_NE(s.bodystructure.find("(\"message\" \"rfc822\" NIL NIL NIL \"7bit\""), std::string::npos)
      << s.bodystructure;
  EXPECT_NE(s.bodystructure.find("\"inner\""), std::string::npos) << "the inner envelope";
  EXPECT_NE(s.bodystructure.find("\"alternative\""), std::string::npos);
}

TEST(Mime, MalformedInputGivesABestEffortStructure) {
  const std::string cases[] = {
      "",
      "no header separator at all",
      "Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nunterminated part",
      "Content-Type: multipart/mixed\r\n\r\nno boundary parameter",
      "Content-Type: message/rfc822\r\n\r\n",
      "Subject: folded\r\n \r\n\t\r\n\r\nbody",  // whitespace-only continuation lines
      std::string("From: \xff\xfe <@>\r\nTo: ,,,\r\n\r\n\x00\x01", 26),
  };
  for (const auto& raw : cases) {
    const Summary s = parse(raw);
    EXPECT_FALSE(s.bodystructure.empty());
    EXPECT_EQ(s.bodystructure.front(), '(');
    for (const auto& p : s.parts) {
      EXPECT_LE(p.header_begin, p.body_begin);
      EXPECT_LE(p.body_begin, p.body_end);
      EXPECT_LE(p.body_end, raw.size());
    }
  }
  // The number of parts is bounded, whatever the number of boundaries.
  std::string many = "Content-Type: multipart/mixed; boundary=b\r\n\r\n";
  for (int i = 0; i < 20000; ++i)
    many += "--b\r\n";
  const Summary m = parse(many);
  EXPECT_LE(m.parts.size(), 2001u);
  // Deep nesting is bounded.
  std::string deep;
  for (int i = 0; i < 200; ++i) {
    deep += "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\r\n\r\n--b" +
            std::to_string(i) + "\r\n";
  }
  EXPECT_FALSE(parse(deep).bodystructure.empty());
}

TEST(Mime, EveryCorpusMessageParsesWithinItsBounds) {
  const std::filesystem::path corpus =
      std::filesystem::path(A3_TEST_SOURCE_DIR) / "fuzz/corpus/mime";
  ASSERT_TRUE(std::filesystem::exists(corpus)) << corpus;
  int n = 0;
  for (const auto& f : std::filesystem::directory_iterator(corpus)) {
    if (f.path().extension() != ".eml") continue;
    std::ifstream in(f.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string raw = ss.str();
    const Summary s = parse(raw);
    std::set<std::string> sections;
    for (const auto& p : s.parts) {
      EXPECT_TRUE(sections.insert(p.section).second) << f.path() << " section " << p.section;
      EXPECT_LE(p.body_end, raw.size()) << f.path();
      EXPECT_LE(p.body_begin, p.body_end) << f.path();
    }
    EXPECT_EQ(s.envelope.front(), '(') << f.path();
    ++n;
  }
  EXPECT_GT(n, 50);
}

TEST(Mime, EnvelopeAddressesAreTheHeadersOwnText) {
  const std::string raw =
      "From: \"Route\" <@relay1.example,@relay2.example:user@example.com>\r\n"
      "Sender: J\xfcrgen =?iso-8859-1?Q?M=FCller?= <j@example.com>\r\n"
      "Reply-To: Only A Name\r\n"
      "To: undisclosed-recipients:;\r\n"
      "Cc: Team: a@example.com, \"B \\\"Q\\\"\" <b@example.com>;, c@example.com (Carol)\r\n"
      "Bcc: nobody, <>\r\n"
      "Subject: a\r\n\tfolded subject\r\n"
      "\r\n";
  const Summary s = parse(raw);
  EXPECT_EQ(
      s.envelope,
      "(NIL \"a folded subject\" "
      "((\"Route\" \"@relay1.example,@relay2.example\" \"user\" \"example.com\")) "
      "(({32}\r\nJ\xfcrgen =?iso-8859-1?Q?M=FCller?= NIL \"j\" \"example.com\")) "
      "((\"Only A Name\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) "
      "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) "
      "((NIL NIL \"Team\" NIL)(NIL NIL \"a\" \"example.com\")"
      "(\"B \\\"Q\\\"\" NIL \"b\" \"example.com\")(NIL NIL NIL NIL)"
      "(\"Carol\" NIL \"c\" \"example.com\")) "
      "((NIL NIL \"nobody\" \"MISSING_DOMAIN\")(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) "
      "NIL NIL)");
}

TEST(Mime, BoundariesAreMatchedTheWayTheReferenceDoes) {
  // An inner boundary that the outer one is a prefix of; a missing close
  // delimiter; a part without a header; the same boundary nested.
  const std::string raw =
      "Content-Type: multipart/mixed; boundary=\"ab\"\r\n\r\n"
      "--ab\r\n"
      "Content-Type: multipart/mixed; boundary=\"abc\"\r\n\r\n"
      "--abc\r\n\r\none\r\n"
      "--ab\r\n"
      "Content-Type: multipart/mixed; boundary=\"ab\"\r\n\r\n"
      "--ab\r\nContent-Type: text/html\r\n\r\ntwo\r\n"
      "--ab--\r\n"
      "epilogue\r\n";
  const Summary s = parse(raw);
  EXPECT_EQ(range(raw, part(s, "1.1").body_begin, part(s, "1.1").body_end), "one");
  EXPECT_EQ(part(s, "1.1").header_begin, part(s, "1.1").body_begin - 2);
  EXPECT_EQ(part(s, "2").type, "multipart/mixed");
  EXPECT_EQ(range(raw, part(s, "2.1").body_begin, part(s, "2.1").body_end), "two");
  EXPECT_EQ(part(s, "2.1").type, "text/html");
  // The inner "--ab--" closes the nested multipart; its epilogue and the
  // outer's run to the end.
  EXPECT_TRUE(range(raw, part(s, "2").body_begin, part(s, "2").body_end).ends_with("epilogue\r\n"));
  EXPECT_EQ(
      s.body,
      "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) \"mixed\")"
      "((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) \"mixed\") \"mixed\")");
}

TEST(Mime, ParametersAreKeptAsSent) {
  const std::string raw =
      "Content-Type: text/plain; format=flowed; name*0=\"long\"; name*1=\"name.txt\"\r\n"
      "Content-Disposition: attachment; filename*=utf-8''%C3%A9t%C3%A9.txt\r\n"
      "Content-Transfer-Encoding: base64 and garbage\r\n"
      "Content-Language: en-GB, de\r\n"
      "\r\n"
      "x\r\n";
  const Summary s = parse(raw);
  EXPECT_EQ(s.bodystructure,
            "(\"text\" \"plain\" (\"format\" \"flowed\" \"name\" \"longname.txt\" \"charset\" "
            "\"us-ascii\") NIL NIL \"7bit\" 3 1 NIL (\"attachment\" (\"filename*\" "
            "\"utf-8''%C3%A9t%C3%A9.txt\")) (\"en-GB\" \"de\") NIL)");
}

}  // namespace
}  // namespace a3::mime
