// IMAP syntax: strings and literals, sequence sets, dates, modified UTF-7.
#include <gtest/gtest.h>

#include "frontends/imap/parser.h"
#include "mime/mime.h"

namespace a3::imap {
namespace {

TEST(ImapParser, AtomsQuotedStringsAndLiterals) {
  Parser p("a1 LOGIN \"al\\\"ice\" {3}\r\np w");
  EXPECT_EQ(p.tag(), "a1");
  p.sp();
  EXPECT_EQ(p.atom(), "LOGIN");
  p.sp();
  EXPECT_EQ(p.astring(), "al\"ice");
  p.sp();
  EXPECT_EQ(p.astring(), "p w");
  EXPECT_TRUE(p.at_end());
  EXPECT_THROW(Parser("\"unterminated").string(), ParseError);
  EXPECT_THROW(Parser("\"bad \\n escape\"").string(), ParseError);
  EXPECT_THROW(Parser("{10}\r\nshort").string(), ParseError);
  EXPECT_EQ(Parser("{4+}\r\nab\r\n").string(), "ab\r\n");
  EXPECT_EQ(Parser(std::string_view("~{2}\r\n\0x", 8)).string(), std::string("\0x", 2));
  EXPECT_FALSE(Parser("NIL").nstring());
  EXPECT_THROW(Parser("+tag").tag(), ParseError);
}

TEST(ImapParser, SequenceSets) {
  auto set = Parser("1:3,7,10:*").sequence_set();
  EXPECT_TRUE(set.contains(2, 20));
  EXPECT_FALSE(set.contains(5, 20));
  EXPECT_TRUE(set.contains(20, 20));
  EXPECT_TRUE(set.contains(15, 20));
  auto rev = Parser("5:2").sequence_set();
  EXPECT_TRUE(rev.contains(3, 9));
  EXPECT_TRUE(Parser("$").sequence_set().saved);
  EXPECT_THROW(Parser("0").sequence_set(), ParseError);
  EXPECT_THROW(Parser("1:").sequence_set(), ParseError);
  EXPECT_THROW(Parser("99999999999").sequence_set(), ParseError);
  EXPECT_EQ(SequenceSet::format({5, 1, 2, 3, 9, 10}), "1:3,5,9:10");
}

TEST(ImapParser, DatesAndDateTimes) {
  EXPECT_EQ(Parser("1-Feb-1994").date(), 760060800000);
  EXPECT_EQ(Parser("\"01-feb-1994\"").date(), 760060800000);
  EXPECT_THROW(Parser("1-Foo-1994").date(), ParseError);
  // RFC 9051's example, 17-Jul-1996 02:44:25 -0700 = 09:44:25 UTC
  EXPECT_EQ(Parser("\"17-Jul-1996 02:44:25 -0700\"").date_time(), 837596665000);
  EXPECT_EQ(Parser("\" 7-Jul-1996 09:44:25 +0000\"").date_time(), 836732665000);
  EXPECT_THROW(Parser("\"17-Jul-1996 25:44:25 -0700\"").date_time(), ParseError);
}

TEST(ImapParser, ModifiedUtf7) {
  // RFC 3501 5.1.3's example
  EXPECT_EQ(utf7_encode("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
  EXPECT_EQ(utf7_decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-"), "~peter/mail/台北/日本語");
  EXPECT_EQ(utf7_encode("A&B"), "A&-B");
  EXPECT_EQ(utf7_decode("A&-B"), "A&B");
  EXPECT_EQ(utf7_decode("Entw&APw-rfe"), "Entwürfe");
  EXPECT_EQ(utf7_encode("Entwürfe"), "Entw&APw-rfe");
  EXPECT_EQ(utf7_encode("😀"), "&2D3eAA-");
  EXPECT_EQ(utf7_decode("&2D3eAA-"), "😀");
  EXPECT_FALSE(utf7_decode("&Jjo!"));        // unterminated
  EXPECT_FALSE(utf7_decode("&AGE-"));        // encodes printable ASCII ("a")
  EXPECT_FALSE(utf7_decode("&2D0-"));        // lone surrogate
  EXPECT_FALSE(utf7_decode("caf\xc3\xa9"));  // 8-bit is not modified UTF-7
}

TEST(ImapParser, QuoteChoosesQuotedOrLiteral) {
  EXPECT_EQ(mime::imap_string("a \"b\""), "\"a \\\"b\\\"\"");
  EXPECT_EQ(mime::imap_string("caf\xc3\xa9"), "{5}\r\ncaf\xc3\xa9");
}

}  // namespace
}  // namespace a3::imap
