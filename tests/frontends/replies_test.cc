// The store's error taxonomy, mapped to replies by one table per protocol:
// every error has a well-formed reply with a code the RFCs define.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "frontends/imap/replies.h"
#include "frontends/pop3/replies.h"
#include "frontends/smtp/replies.h"

namespace a3 {
namespace {

using projections::errc;

constexpr errc kAll[] = {errc::not_found,     errc::exists,   errc::in_use,      errc::over_quota,
                         errc::exceeds_quota, errc::conflict, errc::unavailable, errc::pending,
                         errc::invalid,       errc::limit};

TEST(Replies, ImapUsesRfc5530AndRfc9208Codes) {
  // RFC 5530 3 and RFC 9208 (OVERQUOTA); empty: no code.
  const std::set<std::string> codes = {"",
                                       "UNAVAILABLE",
                                       "AUTHENTICATIONFAILED",
                                       "AUTHORIZATIONFAILED",
                                       "EXPIRED",
                                       "PRIVACYREQUIRED",
                                       "CONTACTADMIN",
                                       "NOPERM",
                                       "INUSE",
                                       "EXPUNGEISSUED",
                                       "CORRUPTION",
                                       "SERVERBUG",
                                       "CLIENTBUG",
                                       "CANNOT",
                                       "LIMIT",
                                       "OVERQUOTA",
                                       "ALREADYEXISTS",
                                       "NONEXISTENT"};
  for (const errc e : kAll) {
    const auto r = imap::reply_for(e);
    EXPECT_TRUE(codes.contains(std::string(r.code))) << projections::to_string(e);
    EXPECT_FALSE(r.text.empty());
  }
  EXPECT_EQ(imap::no_text(errc::over_quota), "[OVERQUOTA] The mailbox is full (quota)");
  EXPECT_EQ(imap::reply_for(errc::exists).code, "ALREADYEXISTS");
  EXPECT_EQ(imap::reply_for(errc::not_found).code, "NONEXISTENT");
  // Durable already: a code inviting a retry would apply it twice.
  EXPECT_EQ(imap::reply_for(errc::pending).code, "");
}

TEST(Replies, SmtpCodesAgreeWithTheirEnhancedCodes) {
  for (const auto stage : {smtp::Stage::rcpt, smtp::Stage::data, smtp::Stage::auth}) {
    for (const errc e : kAll) {
      const auto r = smtp::reply_for(e, stage);
      // RFC 3463 2: the class digit of the enhanced code is the reply's.
      ASSERT_GE(r.enhanced.size(), 5u);
      EXPECT_EQ(r.enhanced[0], static_cast<char>('0' + r.code / 100))
          << r.code << " " << r.enhanced;
      EXPECT_TRUE(r.code / 100 == 4 || r.code / 100 == 5) << r.code;
    }
  }
  EXPECT_EQ(smtp::reply_line(errc::over_quota, smtp::Stage::rcpt),
            "452 4.2.2 Mailbox full, try again later");
  EXPECT_EQ(smtp::reply_for(errc::exceeds_quota, smtp::Stage::data).code, 552);
  EXPECT_EQ(smtp::reply_for(errc::exceeds_quota, smtp::Stage::data).enhanced, "5.2.2");
  // RFC 4954 6: 454 4.7.0 for a temporary authentication failure.
  EXPECT_EQ(smtp::reply_line(errc::unavailable, smtp::Stage::auth),
            "454 4.7.0 Temporary authentication failure");
  EXPECT_EQ(smtp::reply_for(errc::unavailable, smtp::Stage::data).code, 451);
  // Nothing the store cannot do now is permanent.
  for (const errc e : {errc::over_quota, errc::unavailable, errc::pending, errc::in_use,
                       errc::conflict, errc::limit})
    EXPECT_EQ(smtp::reply_for(e, smtp::Stage::data).code / 100, 4) << projections::to_string(e);
}

TEST(Replies, Pop3UsesRfc2449AndRfc3206Codes) {
  const std::set<std::string> codes = {"", "IN-USE", "LOGIN-DELAY", "SYS/TEMP", "SYS/PERM", "AUTH"};
  for (const errc e : kAll) {
    const auto r = pop3::reply_for(e);
    EXPECT_TRUE(codes.contains(std::string(r.code))) << projections::to_string(e);
  }
  EXPECT_EQ(pop3::err_text(errc::in_use),
            "[IN-USE] The maildrop is in use by another POP3 session");
  EXPECT_EQ(pop3::reply_for(errc::unavailable).code, "SYS/TEMP");
}

}  // namespace
}  // namespace a3
