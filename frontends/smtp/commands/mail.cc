// MAIL: RFC 5321 4.1.1.2, with SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), AUTH (RFC
// 4954 5).
//
// mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF
#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/metrics.h"
#include "frontends/net/sasl.h"
#include "frontends/smtp/replies.h"
#include "frontends/smtp/session.h"

namespace a3::smtp {

void Session::cmd_mail(std::string_view arg) {
  if (env_.mail_from) return error("503 5.5.1 Sender already given");
  if (info_.require_auth && auth_user_.empty()) {
    return error("530 5.7.0 Authentication required");
  }
  if (!ascii::istarts_with(arg, "FROM:")) return error("501 5.5.4 Syntax: MAIL FROM:<address>");
  if (limits_.allow_message && !limits_.allow_message(auth_user_)) {
    return reply(auth_user_.empty()
                     ? "451 4.7.0 Too many messages from your address this hour; try again later"
                     : "451 4.7.0 Too many messages from this account this hour; try again later");
  }
  std::string_view rest;
  std::string why;
  auto path = parse_path(ascii::trim(arg.substr(5)), rest, why);
  if (!path) return error("553 5.1.7 Bad sender address: " + why);
  bool smtputf8 = false, eight_bit = false, ret_headers = false, seen_ret = false;
  std::string envid;
  std::uint64_t declared_size = 0;
  for (const auto& [key, value] : esmtp_params(rest)) {
    if (key == "SIZE") {
      // RFC 1870: refuse at once what will not fit.
      std::uint64_t size = 0;
      const auto r = std::from_chars(value.data(), value.data() + value.size(), size);
      if (r.ec != std::errc() || r.ptr != value.data() + value.size()) {
        return error("501 5.5.4 Bad SIZE value");
      }
      if (size > limits_.max_message_size) {
        return reply("552 5.3.4 Message size exceeds fixed maximum message size");
      }
      declared_size = size;
    } else if (key == "BODY") {
      const std::string v = ascii::upper(value);
      if (v == "8BITMIME") {
        eight_bit = true;
      } else if (v != "7BIT") {
        return error("501 5.5.4 BODY must be 7BIT or 8BITMIME");
      }
    } else if (key == "SMTPUTF8" && value.empty()) {
      smtputf8 = true;
    } else if (key == "AUTH") {
      // RFC 4954 5: accepted and ignored from unauthenticated clients.
    } else if (key == "RET") {
      // RFC 3461 4.3: what a failure report returns.
      const std::string v = ascii::upper(value);
      if (v != "FULL" && v != "HDRS") return error("501 5.5.4 RET must be FULL or HDRS");
      if (seen_ret) return error("501 5.5.4 RET given twice");
      seen_ret = true;
      ret_headers = v == "HDRS";
    } else if (key == "ENVID") {
      // RFC 3461 4.4: at most 100 characters of xtext.
      auto decoded = xtext_decode(value);
      if (!decoded || value.empty() || value.size() > 100)
        return error("501 5.5.4 Bad ENVID value");
      if (!envid.empty()) return error("501 5.5.4 ENVID given twice");
      envid = std::move(*decoded);
    } else {
      return error(fmt::format("555 5.5.4 Unsupported parameter {}", key));
    }
  }
  if (path->mailbox.utf8 && !smtputf8) {
    return error("553 5.6.7 Non-ASCII address needs SMTPUTF8 (RFC 6531)");
  }
  // The access lists' sender domains, for clients that have not logged in
  // and are not in outbound.trusted_networks (the MX's remote senders).
  if (auth_user_.empty() && !info_.trusted_relay && !path->null && limits_.refuses_sender) {
    if (const auto refusal = limits_.refuses_sender(path->mailbox.domain)) {
      metrics::smtp_message("rejected", "sender_domain", 0);
      return reply("550 5.7.1 " + *refusal);
    }
  }
  const bool allowed = auth_user_.empty() || !info_.require_auth ||
                       (!path->null && policy_.sender_allowed(auth_user_, path->mailbox));
  if (policy_.would_block()) {
    retry_ = true;  // nothing was answered or changed: the line runs again
    return;
  }
  if (!allowed) {
    return error("553 5.7.1 Sender address is not one of the authenticated user's");
  }
  env_.mail_from = std::move(path);
  env_.smtputf8 = smtputf8;
  env_.eight_bit = eight_bit;
  env_.declared_size = declared_size;
  env_.ret_headers = ret_headers;
  env_.envid = std::move(envid);
  reply("250 2.1.0 Sender OK");
}

}  // namespace a3::smtp
