// RCPT: RFC 5321 4.1.1.3; no relaying, quotas per recipient.
//
// rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path ) [SP
// Rcpt-parameters] CRLF
#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/net/sasl.h"
#include "frontends/smtp/replies.h"
#include "frontends/smtp/session.h"

namespace a3::smtp {

void Session::cmd_rcpt(std::string_view arg) {
  if (!ascii::istarts_with(arg, "TO:")) return error("501 5.5.4 Syntax: RCPT TO:<address>");
  std::string_view rest;
  std::string why;
  auto path = parse_path(ascii::trim(arg.substr(3)), rest, why);
  if (!path || path->null) return error("553 5.1.3 Bad recipient address: " + (path ? "<>" : why));
  if (!ascii::trim(rest).empty()) return error("555 5.5.4 RCPT parameters are not supported");
  if (path->mailbox.utf8 && !env_.smtputf8) {
    return error("553 5.6.7 Non-ASCII address needs SMTPUTF8 (RFC 6531)");
  }
  if (env_.rcpt_to.size() >= limits_.max_recipients) return reply("452 4.5.3 Too many recipients");
  Recipient found;
  const auto verdict =
      policy_.check_recipient(path->mailbox, auth_user_, env_.declared_size, found);
  if (policy_.would_block()) {
    retry_ = true;  // nothing was answered or changed: the line runs again
    return;
  }
  switch (verdict) {
    case Policy::Rcpt::accept: {
      env_.rcpt_to.push_back(path->mailbox);
      const auto it = std::find(env_.accounts.begin(), env_.accounts.end(), found.account);
      env_.rcpt_account.push_back(static_cast<std::size_t>(it - env_.accounts.begin()));
      if (it == env_.accounts.end()) {
        env_.accounts.push_back(found.account);
        env_.recipients.push_back(std::move(found));
      }
      return reply("250 2.1.5 Recipient OK");
    }
    case Policy::Rcpt::unknown_user:
      return error("550 5.1.1 No such user here");
    case Policy::Rcpt::relay_denied:
      return error("550 5.7.1 Relaying denied");
    case Policy::Rcpt::outbound_unavailable:
      return error("550 5.7.1 Delivery to other domains is not offered yet");
    case Policy::Rcpt::temporary_failure:
      return reply(reply_line(projections::errc::unavailable, Stage::rcpt));
    case Policy::Rcpt::mailbox_full:
      return reply(reply_line(projections::errc::over_quota, Stage::rcpt));
    case Policy::Rcpt::exceeds_mailbox:
      return reply(reply_line(projections::errc::exceeds_quota, Stage::rcpt));
  }
}

}  // namespace a3::smtp
