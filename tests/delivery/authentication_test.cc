// The pure parts of the MX's checks: the author domain DMARC aligns with
// (RFC 7489 6.6.1), the Authentication-Results field we write (RFC 8601:
// values quoted when they must be, comments that cannot be broken out of),
// and the removal of fields that claim to be ours (RFC 8601 5). SPF, DKIM
// and DMARC against a real DNS server: tests/e2e/test_authentication.py.
#include <gtest/gtest.h>

#include "delivery/authentication.h"
#include "mime/mime.h"

namespace a3::delivery {
namespace {

TEST(Authentication, AuthorDomainsAreEveryFromFieldsDomains) {
  using V = std::vector<std::string>;
  EXPECT_EQ(author_domains("From: Alice <alice@Example.COM>\r\nTo: b@c\r\n\r\nbody"),
            V{"example.com"});
  EXPECT_EQ(author_domains("From: alice@example.com (Alice)\r\n\r\n"), V{"example.com"});
  EXPECT_EQ(author_domains("from:\r\n \"A, B\" <a@sub.example.org.>\r\n\r\n"),
            V{"sub.example.org"});
  // Obsolete syntax (RFC 5322 4.5.8): whitespace before the colon.
  EXPECT_EQ(author_domains("From : ceo@bank.example\r\n\r\n"), V{"bank.example"});
  // Several authors, or several From fields: each of them (DMARC judges all).
  EXPECT_EQ(author_domains("From: a@one.example, b@two.example, c@ONE.example\r\n\r\n"),
            (V{"one.example", "two.example"}));
  EXPECT_EQ(author_domains("From: x@attacker.example\r\nFrom: ceo@bank.example\r\n\r\n"),
            (V{"attacker.example", "bank.example"}));
  EXPECT_EQ(author_domains("From: team: a@x.example, b@y.example;\r\n\r\n"),
            (V{"x.example", "y.example"}));
  // Internationalized domains as DNS names them.
  EXPECT_EQ(author_domains("From: j@b\xc3\xbc"
                           "cher.example\r\n\r\n"),
            V{"xn--bcher-kva.example"});
  EXPECT_EQ(author_domains("Subject: none\r\n\r\nFrom: a@body.example\r\n"), V{});
  EXPECT_EQ(author_domains("From: undisclosed\r\n\r\n"), V{});
  const auto a = mime::authors("From: team: a@x.example, b@y.example;\r\n\r\n");
  EXPECT_EQ(a.fields, 1);
  EXPECT_EQ(a.addresses, (V{"a@x.example", "b@y.example"}));
}

TEST(Authentication, ResultsFieldQuotesValuesAndCleansComments) {
  AuthenticationResults r;
  r.spf = "fail";
  r.spf_reason = "evil) dkim=pass (x\r\nInjected: yes";
  r.spf_property = "smtp.mailfrom=\"odd local\"@example.net";
  r.dkim.push_back({"pass", "example.net", "s1", "ab/d+F=H", ""});
  r.dkim.push_back({"fail", "other.example", "s;2", "", "body hash mismatch"});
  r.dmarc = "fail";
  r.dmarc_policy = "reject";
  r.from_domain = "example.net";
  const std::string h = r.header("mx.example.test");
  EXPECT_EQ(
      h,
      "Authentication-Results: mx.example.test;\r\n"
      "\tspf=fail (evil dkim=pass xInjected: yes) smtp.mailfrom=\"odd local\"@example.net;\r\n"
      "\tdkim=pass header.d=example.net header.s=s1 header.b=\"ab/d+F=H\";\r\n"
      "\tdkim=fail (body hash mismatch) header.d=other.example header.s=\"s;2\";\r\n"
      "\tdmarc=fail (p=reject) header.from=example.net\r\n");
  const auto s = r.summary();
  EXPECT_EQ(s.dkim, "pass");
  EXPECT_EQ(s.dkim_domains, std::vector<std::string>{"example.net"});
  EXPECT_EQ(s.disposition, "deliver");
  // A message whose signatures were not checked at all (too many).
  AuthenticationResults skipped;
  skipped.spf.clear();
  skipped.dmarc.clear();
  skipped.dkim.push_back({"permerror", "", "", "", "17 signatures, more than 16"});
  EXPECT_EQ(skipped.header("mx"),
            "Authentication-Results: mx;\r\n\tdkim=permerror (17 signatures, more than 16)\r\n");
  AuthenticationResults none;
  none.spf.clear();
  EXPECT_EQ(none.header("mx"), "Authentication-Results: mx;\r\n\tdkim=none;\r\n\tdmarc=none\r\n");
}

TEST(Authentication, OurResultsAreRemovedFromWhatArrives) {
  const std::string in =
      "Authentication-Results: MX.example.test; dkim=pass\r\n"
      "Authentication-Results:\r\n\tmx.example.test;\r\n\tspf=pass\r\n"
      "Authentication-Results: mx.example.test(comment); dmarc=pass\r\n"
      "Authentication-Results: (a (nested) comment) \"mx.example.test\"; spf=pass\r\n"
      "Authentication-Results :\tmx.example.test; dkim=pass\r\n"
      "Authentication-Results: mx.example.test.evil; spf=pass\r\n"
      "Authentication-Results: other.example; spf=pass\r\n"
      "Subject: hi\r\n"
      "\r\n"
      "Authentication-Results: mx.example.test; in the body stays\r\n";
  EXPECT_EQ(without_our_results(in, "mx.example.test"),
            "Authentication-Results: mx.example.test.evil; spf=pass\r\n"
            "Authentication-Results: other.example; spf=pass\r\n"
            "Subject: hi\r\n"
            "\r\n"
            "Authentication-Results: mx.example.test; in the body stays\r\n");
  // Without a body, and without any such field: unchanged.
  EXPECT_EQ(without_our_results("Subject: x\r\n", "mx"), "Subject: x\r\n");
  EXPECT_EQ(without_our_results("", "mx"), "");
}

}  // namespace
}  // namespace a3::delivery
