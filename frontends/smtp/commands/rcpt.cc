// RCPT: RFC 5321 4.1.1.3, RFC 3461 DSN parameters; no open relay, quotas
// per recipient.
//
// rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path ) [SP
// Rcpt-parameters] CRLF
#include <algorithm>
#include <charconv>
#include <cstring>

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
  // RFC 3461 4.1, 4.2: NOTIFY and ORCPT.
  std::uint8_t notify = 0;
  std::string orcpt;
  for (const auto& [key, value] : esmtp_params(rest)) {
    if (key == "NOTIFY") {
      if (notify) return error("501 5.5.4 NOTIFY given twice");
      const std::string v = ascii::upper(value);
      if (v == "NEVER") {
        notify = schemas::notify_never;
      } else {
        for (std::size_t pos = 0; pos <= v.size();) {
          const auto comma = std::min(v.find(',', pos), v.size());
          const std::string_view word = std::string_view(v).substr(pos, comma - pos);
          const std::uint8_t bit = word == "SUCCESS"   ? schemas::notify_success
                                   : word == "FAILURE" ? schemas::notify_failure
                                   : word == "DELAY"   ? schemas::notify_delay
                                                       : 0;
          if (!bit || (notify & bit)) return error("501 5.5.4 Bad NOTIFY value");
          notify |= bit;
          pos = comma + 1;
        }
      }
    } else if (key == "ORCPT") {
      // addr-type ";" xtext, e.g. rfc822;bob+2Bx@example.net
      const auto semi = value.find(';');
      auto decoded =
          semi == std::string_view::npos ? std::nullopt : xtext_decode(value.substr(semi + 1));
      // RFC 3461 4.2: addr-type is an atom.
      const bool atom = semi != std::string_view::npos &&
                        std::all_of(value.begin(), value.begin() + semi, [](char c) {
                          return ascii::is_alpha(c) || ascii::is_digit(c) ||
                                 (c != '\0' && std::strchr("!#$%&'*+-/=?^_`{|}~", c));
                        });
      if (!decoded || !atom || semi == 0 || value.size() > 500)
        return error("501 5.5.4 Bad ORCPT value");
      if (!orcpt.empty()) return error("501 5.5.4 ORCPT given twice");
      orcpt = std::string(value.substr(0, semi)) + ";" + *decoded;
    } else {
      return error(fmt::format("555 5.5.4 Unsupported parameter {}", key));
    }
  }
  if (path->mailbox.utf8 && !env_.smtputf8) {
    return error("553 5.6.7 Non-ASCII address needs SMTPUTF8 (RFC 6531)");
  }
  if (env_.rcpt_to.size() >= limits_.max_recipients) return reply("452 4.5.3 Too many recipients");
  Recipient found;
  const bool may_relay = !auth_user_.empty() || info_.trusted_relay;
  const auto verdict = policy_.check_recipient(path->mailbox, may_relay, env_.declared_size, found);
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
      if (notify & schemas::notify_success)
        env_.success_reports.push_back({path->mailbox, notify, std::move(orcpt)});
      return reply("250 2.1.5 Recipient OK");
    }
    case Policy::Rcpt::outbound:
      // The receiving server must speak SMTPUTF8 for a non-ASCII address;
      // that is known only when delivering (a bounce says so then).
      for (const auto& r : env_.outbound) {
        if (r.to.str() == path->mailbox.str()) return reply("250 2.1.5 Recipient OK (duplicate)");
      }
      env_.rcpt_to.push_back(path->mailbox);
      env_.rcpt_account.push_back(SIZE_MAX);  // no local account
      env_.outbound.push_back({path->mailbox, notify, std::move(orcpt)});
      return reply("250 2.1.5 Recipient OK");
    case Policy::Rcpt::unknown_user:
      ++unknown_recipients_;
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
