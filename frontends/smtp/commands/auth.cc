// AUTH: RFC 4954 (PLAIN, RFC 4616; LOGIN), only on the submission ports, after TLS.
//
// auth-command = "AUTH" SP sasl-mech [SP initial-response] *(CRLF [base64]) [CRLF cancel-response]
// CRLF
#include <algorithm>
#include <charconv>
#include <utility>

#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/net/sasl.h"
#include "frontends/smtp/replies.h"
#include "frontends/smtp/session.h"

namespace a3::smtp {

// RFC 4954 4: AUTH mechanism [initial-response]
void Session::cmd_auth(std::string_view arg) {
  if (!auth_user_.empty()) return error("503 5.5.1 Already authenticated");
  if (env_.mail_from) return error("503 5.5.1 AUTH not allowed during a mail transaction");
  if (!info_.require_auth) return error("502 5.5.1 AUTH is offered on the submission ports");
  if (!info_.tls_active && !info_.allow_plaintext_auth) {
    return error("538 5.7.11 Encryption required for requested authentication mechanism");
  }
  const auto sp = arg.find(' ');
  const std::string mech = ascii::upper(arg.substr(0, sp));
  const std::string_view initial =
      sp == std::string_view::npos ? "" : ascii::trim(arg.substr(sp + 1));
  if (mech == "PLAIN") {
    if (initial.empty()) {
      reply("334 ");
      state_ = State::auth_plain;
      return;
    }
    return plain_response(initial == "=" ? "" : initial);
  }
  if (mech == "LOGIN") {
    if (!initial.empty()) {
      auto user = net::base64_decode(initial);
      if (!user) return error("501 5.5.2 Cannot decode the response");
      login_user_ = *user;
      reply("334 UGFzc3dvcmQ6");  // "Password:"
      state_ = State::auth_pass;
      return;
    }
    reply("334 VXNlcm5hbWU6");  // "Username:"
    state_ = State::auth_user;
    return;
  }
  error("504 5.5.4 Unrecognised authentication mechanism");
}

void Session::sasl_line(std::string_view line) {
  const State was = state_;
  state_ = State::command;
  if (line == "*") return error("501 5.0.0 Authentication cancelled");  // RFC 4954 4
  if (was == State::auth_plain) return plain_response(line);
  auto decoded = net::base64_decode(line);
  if (!decoded) return error("501 5.5.2 Cannot decode the response");
  if (was == State::auth_user) {
    login_user_ = *decoded;
    reply("334 UGFzc3dvcmQ6");
    state_ = State::auth_pass;
    return;
  }
  auth_ = AuthRequest{"LOGIN", std::exchange(login_user_, {}), std::move(*decoded)};
  state_ = State::awaiting_auth;
}

// RFC 4616: message = [authzid] NUL authcid NUL passwd
void Session::plain_response(std::string_view b64) {
  auto decoded = net::base64_decode(b64);
  if (!decoded) return error("501 5.5.2 Cannot decode the response");
  auto plain = net::parse_plain(*decoded);
  if (!plain) return error("501 5.5.2 Malformed PLAIN response");
  if (plain->other_identity) {
    return error("535 5.7.8 Authorization identity must be the authentication identity");
  }
  auth_ = AuthRequest{"PLAIN", std::move(plain->user), std::move(plain->password)};
  state_ = State::awaiting_auth;
}

void Session::auth_result(bool ok, const std::string& account) {
  if (state_ != State::awaiting_auth) return;
  state_ = State::command;
  if (ok) {
    auth_user_ = account;
    reply("235 2.7.0 Authentication successful");
  } else {
    ++auth_failures_;  // the guard counts it as a failed login, not a protocol error
    error("535 5.7.8 Authentication credentials invalid");
  }
  process();
}

void Session::auth_unavailable() {
  if (state_ != State::awaiting_auth) return;
  state_ = State::command;
  reply(reply_line(projections::errc::unavailable, Stage::auth));
  process();
}

bool Session::auth_offered() const {
  return info_.require_auth && (info_.tls_active || info_.allow_plaintext_auth);
}

}  // namespace a3::smtp
