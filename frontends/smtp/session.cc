#include "frontends/smtp/session.h"

#include "frontends/net/sasl.h"

#include <algorithm>
#include <charconv>
#include <utility>

#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/smtp/replies.h"

namespace a3::smtp {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool has_bare_cr(std::string_view line) {
  return line.find('\r') != std::string_view::npos;
}

}  // namespace

Session::Session(SessionInfo info, Limits limits, Policy& policy)
    : info_(std::move(info)), limits_(limits), policy_(policy) {}

std::string Session::greeting() const {
  return fmt::format("220 {} ESMTP A3Mailer\r\n", info_.hostname);
}

void Session::receive(std::string_view bytes) {
  if (state_ == State::closed || state_ == State::tls_pending) return;
  in_.append(bytes);
  process();
}

std::string Session::take_output() {
  return std::exchange(out_, {});
}

void Session::reply(std::string_view text) {
  out_.append(text);
  out_.append("\r\n");
}

void Session::error(std::string_view text) {
  reply(text);
  if (++errors_ >= limits_.max_errors) {
    reply("421 4.7.0 Too many errors, closing connection");
    state_ = State::closed;
  }
}

void Session::reset_transaction() {
  ++transaction_;
  const std::string helo = env_.helo;
  env_ = Envelope{};
  env_.helo = helo;
  chunking_ = false;
  data_.clear();
  data_size_ = 0;
  data_too_big_ = data_bare_lf_ = data_long_line_ = false;
  line_start_ = true;
}

// Splits the buffer into lines (or BDAT chunks) and dispatches them, until
// input runs out or the session must wait.
void Session::process() {
  // Lines are consumed by moving an offset; the buffer is compacted once at
  // the end, so many short lines cost linear time.
  std::size_t pos = 0;
  auto in_sasl = [this] {
    return state_ == State::auth_plain || state_ == State::auth_user || state_ == State::auth_pass;
  };
  while (!discard_input_ && (state_ == State::command || state_ == State::data ||
                             state_ == State::bdat || in_sasl())) {
    if (state_ == State::bdat) {
      const std::size_t n = std::min(bdat_left_, in_.size() - pos);
      if (data_size_ + n <= limits_.max_message_size) {
        data_.append(in_, pos, n);
        data_size_ += n;
      } else {
        data_too_big_ = true;
      }
      pos += n;
      bdat_left_ -= n;
      if (bdat_left_ > 0) break;
      state_ = State::command;
      if (bdat_discard_) {
        bdat_discard_ = false;  // refused before it came: the reply was sent
        data_too_big_ = false;
      } else if (bdat_last_) {
        finish_message();
      } else {
        reply(data_too_big_ ? "552 5.3.4 Message too big"
                            : fmt::format("250 2.0.0 {} octets received", data_size_));
      }
      continue;
    }
    const std::size_t lf = in_.find('\n', pos);
    const bool text_mode = state_ == State::data;
    const std::size_t limit = text_mode ? limits_.max_text_line : limits_.max_command_line;
    if (lf == std::string::npos) {
      // No complete line: bound what a client can make us hold.
      const std::size_t avail = in_.size() - pos;
      if (avail > limit) {
        if (!text_mode) {
          if (!skipping_long_line_) error("500 5.5.2 Line too long");
          skipping_long_line_ = true;
          if (in_sasl()) state_ = State::command;  // the exchange is cancelled
          pos = in_.size();
        } else {
          // Counted for size; the message is refused at its end. A trailing
          // CR stays buffered: it may be the start of this line's CRLF.
          const std::size_t take = in_.back() == '\r' ? avail - 1 : avail;
          data_long_line_ = true;
          if (data_size_ + take > limits_.max_message_size) {
            data_too_big_ = true;
          } else if (!data_too_big_) {
            data_.append(in_, pos, take);
            data_size_ += take;
          }
          line_start_ = false;
          pos += take;
        }
      }
      break;
    }
    const std::string_view line(in_.data() + pos, lf + 1 - pos);
    pos = lf + 1;
    const bool crlf = line.size() >= 2 && line[line.size() - 2] == '\r';
    const std::string_view text = line.substr(0, line.size() - (crlf ? 2 : 1));
    if (skipping_long_line_ && !text_mode) {
      skipping_long_line_ = false;  // the rest of an over-long command line
      continue;
    }
    if (in_sasl()) {
      if (line.size() > limits_.max_command_line) {
        state_ = State::command;
        error("500 5.5.2 Line too long");
      } else {
        sasl_line(text);
      }
      continue;
    }
    if (state_ == State::command) {
      if (line.size() > limits_.max_command_line) {
        error("500 5.5.2 Line too long");
      } else if ((!crlf || has_bare_cr(text)) && limits_.reject_bare_lf) {
        // RFC 5321 2.3.8: lines end with CRLF; a bare CR or LF is refused.
        error("500 5.5.2 Bare CR or LF is not allowed (RFC 5321 2.3.8)");
      } else {
        command(text);
      }
    } else {
      if (line.size() > limits_.max_text_line) data_long_line_ = true;
      data_line(text, crlf);
    }
  }
  if (discard_input_) {
    in_.clear();
    discard_input_ = false;
  } else {
    in_.erase(0, pos);
  }
}

// One line of DATA (without its line ending). The message ends only at a "."
// line that follows a CRLF and ends with CRLF (RFC 5321 4.1.1.4): with a bare
// LF anywhere, "\n.\n" or "\n.\r\n" are data, never an end.
void Session::data_line(std::string_view line, bool crlf) {
  if (line == "." && crlf && line_start_) {
    state_ = State::command;
    finish_message();
    return;
  }
  if (!crlf || has_bare_cr(line)) data_bare_lf_ = true;
  // RFC 5321 4.5.2: a leading dot was doubled by the client.
  if (line_start_ && line.starts_with(".")) line.remove_prefix(1);
  if (data_size_ + line.size() + 2 > limits_.max_message_size) {
    data_too_big_ = true;  // keep reading to the end, storing nothing more
  } else if (!data_too_big_) {
    const std::size_t before = data_.size();
    data_.append(line);
    data_.append(crlf ? "\r\n" : "\n");
    data_size_ += data_.size() - before;
  }
  line_start_ = crlf;
}

void Session::finish_message() {
  if (data_too_big_) {
    reply("552 5.3.4 Message size exceeds fixed maximum message size");
  } else if (data_long_line_) {
    reply(fmt::format("550 5.6.0 Message has a line longer than {} octets (RFC 5321 4.5.3.1.6)",
                      limits_.max_text_line));
  } else if (data_bare_lf_ && limits_.reject_bare_lf) {
    reply("550 5.6.0 Message contains a bare CR or LF (RFC 5321 2.3.8)");
  } else {
    pending_ = Message{env_, std::move(data_)};
    state_ = State::awaiting_delivery;
    return;
  }
  reset_transaction();
}

bool Session::data_refused() const {
  return data_too_big_ || data_long_line_ || (data_bare_lf_ && limits_.reject_bare_lf);
}

std::string Session::take_data() {
  if (!in_message()) return {};
  return std::exchange(data_, std::string());
}

std::optional<Message> Session::take_message() {
  if (state_ != State::awaiting_delivery || !pending_) return std::nullopt;
  return std::exchange(pending_, std::nullopt);
}

void Session::delivered(bool durable) {
  if (state_ != State::awaiting_delivery) return;
  // 250 only once every event of the message is durable; otherwise a
  // temporary failure, so the client keeps it and retries.
  if (!durable) return not_delivered(projections::errc::unavailable);
  reply("250 2.0.0 Message accepted for delivery");
  reset_transaction();
  state_ = State::command;
  process();  // pipelined commands waiting behind the message
}

void Session::not_delivered(projections::errc why) {
  if (state_ != State::awaiting_delivery) return;
  reply(reply_line(why, Stage::data));
  reset_transaction();
  state_ = State::command;
  process();
}

void Session::tls_established() {
  if (state_ != State::tls_pending) return;
  // RFC 3207 4.2: forget everything learned before TLS.
  info_.tls_active = true;
  have_helo_ = false;
  auth_user_.clear();  // a plaintext login does not carry over either
  env_ = Envelope{};
  reset_transaction();
  in_.clear();
  state_ = State::command;
}

void Session::command(std::string_view line) {
  const auto space = line.find(' ');
  const std::string verb = ascii::upper(line.substr(0, space));
  const std::string_view arg = space == std::string_view::npos ? "" : trim(line.substr(space + 1));

  if (verb == "EHLO" || verb == "HELO") return ehlo(arg, verb == "EHLO");
  if (verb == "MAIL") return mail(arg);
  if (verb == "RCPT") return rcpt(arg);
  if (verb == "BDAT") return bdat(arg);
  if (verb == "AUTH") return auth(arg);
  if (verb == "DATA") {
    if (!arg.empty()) return error("501 5.5.4 DATA takes no arguments");
    if (chunking_) return error("503 5.5.1 DATA after BDAT is not allowed (RFC 3030 2)");
    if (!env_.mail_from) return error("503 5.5.1 MAIL first");
    if (env_.accounts.empty()) return error("554 5.5.1 No valid recipients");
    reply("354 End data with <CR><LF>.<CR><LF>");
    state_ = State::data;
    line_start_ = true;
    return;
  }
  if (verb == "RSET") {
    if (!arg.empty()) return error("501 5.5.4 RSET takes no arguments");
    reset_transaction();
    return reply("250 2.0.0 OK");
  }
  if (verb == "NOOP") return reply("250 2.0.0 OK");
  if (verb == "QUIT") {
    reply(fmt::format("221 2.0.0 {} closing connection", info_.hostname));
    state_ = State::closed;
    return;
  }
  if (verb == "VRFY") {
    // RFC 5321 3.5.3: 252 when verification is not offered.
    return reply("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
  }
  if (verb == "EXPN") return error("502 5.5.1 EXPN is not supported");
  if (verb == "HELP") return reply("214 2.0.0 See RFC 5321");
  if (verb == "STARTTLS") {
    if (!arg.empty()) return error("501 5.5.4 STARTTLS takes no arguments");
    if (info_.tls_active) return error("503 5.5.1 TLS is already active");
    if (!info_.tls_available) return error("454 4.7.0 TLS not available");
    reply("220 2.0.0 Ready to start TLS");
    // Anything pipelined after STARTTLS came in plaintext: discard it.
    discard_input_ = true;
    state_ = State::tls_pending;
    return;
  }
  error("500 5.5.2 Command not recognised");
}

void Session::ehlo(std::string_view arg, bool extended) {
  if (arg.empty())
    return error(fmt::format("501 5.5.4 {} needs a domain", extended ? "EHLO" : "HELO"));
  // A domain or address literal: no spaces or control characters (it ends
  // up in the Received: header).
  for (char c : arg) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return error("501 5.5.4 Invalid domain name");
  }
  // RFC 5321 4.1.4: EHLO resets the transaction.
  reset_transaction();
  env_.helo = std::string(arg);
  have_helo_ = true;
  if (!extended) return reply(fmt::format("250 {}", info_.hostname));
  std::vector<std::string> lines = {
      fmt::format("{} greets {}", info_.hostname, arg),
      "PIPELINING",
      fmt::format("SIZE {}", limits_.max_message_size),
      "8BITMIME",
      "ENHANCEDSTATUSCODES",
      "SMTPUTF8",
      "CHUNKING",
  };
  if (limits_.enable_vrfy) lines.push_back("VRFY");
  if (auth_offered()) lines.push_back("AUTH PLAIN LOGIN");
  if (info_.tls_available && !info_.tls_active) lines.push_back("STARTTLS");
  for (std::size_t i = 0; i < lines.size(); ++i) {
    reply(fmt::format("250{}{}", i + 1 == lines.size() ? " " : "-", lines[i]));
  }
}

void Session::mail(std::string_view arg) {
  if (!have_helo_) return error("503 5.5.1 Say EHLO first");
  if (env_.mail_from) return error("503 5.5.1 Sender already given");
  if (info_.require_auth && auth_user_.empty()) {
    return error("530 5.7.0 Authentication required");
  }
  if (!ascii::istarts_with(arg, "FROM:")) return error("501 5.5.4 Syntax: MAIL FROM:<address>");
  std::string_view rest;
  std::string why;
  auto path = parse_path(trim(arg.substr(5)), rest, why);
  if (!path) return error("553 5.1.7 Bad sender address: " + why);
  bool smtputf8 = false, eight_bit = false;
  std::uint64_t declared_size = 0;
  // RFC 5321 4.1.2: Mail-parameters = esmtp-param *(SP esmtp-param)
  rest = trim(rest);
  while (!rest.empty()) {
    const auto sp = rest.find(' ');
    const std::string_view param = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? "" : trim(rest.substr(sp + 1));
    const auto eq = param.find('=');
    const std::string key = ascii::upper(param.substr(0, eq));
    const std::string_view value = eq == std::string_view::npos ? "" : param.substr(eq + 1);
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
    } else {
      return error(fmt::format("555 5.5.4 Unsupported parameter {}", key));
    }
  }
  if (path->mailbox.utf8 && !smtputf8) {
    return error("553 5.6.7 Non-ASCII address needs SMTPUTF8 (RFC 6531)");
  }
  if (!auth_user_.empty() && info_.require_auth &&
      (path->null || !policy_.sender_allowed(auth_user_, path->mailbox))) {
    return error("553 5.7.1 Sender address is not one of the authenticated user's");
  }
  env_.mail_from = std::move(path);
  env_.smtputf8 = smtputf8;
  env_.eight_bit = eight_bit;
  env_.declared_size = declared_size;
  reply("250 2.1.0 Sender OK");
}

void Session::rcpt(std::string_view arg) {
  if (!env_.mail_from) return error("503 5.5.1 MAIL first");
  if (!ascii::istarts_with(arg, "TO:")) return error("501 5.5.4 Syntax: RCPT TO:<address>");
  std::string_view rest;
  std::string why;
  auto path = parse_path(trim(arg.substr(3)), rest, why);
  if (!path || path->null) return error("553 5.1.3 Bad recipient address: " + (path ? "<>" : why));
  if (!trim(rest).empty()) return error("555 5.5.4 RCPT parameters are not supported");
  if (path->mailbox.utf8 && !env_.smtputf8) {
    return error("553 5.6.7 Non-ASCII address needs SMTPUTF8 (RFC 6531)");
  }
  if (env_.rcpt_to.size() >= limits_.max_recipients) return reply("452 4.5.3 Too many recipients");
  std::string account;
  switch (policy_.check_recipient(path->mailbox, auth_user_, env_.declared_size, account)) {
    case Policy::Rcpt::accept:
      env_.rcpt_to.push_back(path->mailbox);
      if (std::find(env_.accounts.begin(), env_.accounts.end(), account) == env_.accounts.end()) {
        env_.accounts.push_back(account);
      }
      return reply("250 2.1.5 Recipient OK");
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

bool Session::auth_offered() const {
  return info_.require_auth && (info_.tls_active || info_.allow_plaintext_auth);
}

// RFC 4954 4: AUTH mechanism [initial-response]
void Session::auth(std::string_view arg) {
  if (!have_helo_) return error("503 5.5.1 Say EHLO first");
  if (!auth_user_.empty()) return error("503 5.5.1 Already authenticated");
  if (env_.mail_from) return error("503 5.5.1 AUTH not allowed during a mail transaction");
  if (!info_.require_auth) return error("502 5.5.1 AUTH is offered on the submission ports");
  if (!info_.tls_active && !info_.allow_plaintext_auth) {
    return error("538 5.7.11 Encryption required for requested authentication mechanism");
  }
  const auto sp = arg.find(' ');
  const std::string mech = ascii::upper(arg.substr(0, sp));
  const std::string_view initial = sp == std::string_view::npos ? "" : trim(arg.substr(sp + 1));
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

std::optional<AuthRequest> Session::take_auth() {
  if (state_ != State::awaiting_auth) return std::nullopt;
  return std::exchange(auth_, std::nullopt);
}

void Session::auth_result(bool ok, const std::string& account) {
  if (state_ != State::awaiting_auth) return;
  state_ = State::command;
  if (ok) {
    auth_user_ = account;
    reply("235 2.7.0 Authentication successful");
  } else {
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

// RFC 3030 2: BDAT <size> [LAST]
void Session::bdat(std::string_view arg) {
  const auto sp = arg.find(' ');
  const std::string_view size_text = arg.substr(0, sp);
  const std::string last =
      sp == std::string_view::npos ? "" : ascii::upper(trim(arg.substr(sp + 1)));
  std::uint64_t size = 0;
  const auto r = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size);
  if (size_text.empty() || r.ec != std::errc() || r.ptr != size_text.data() + size_text.size() ||
      !(last.empty() || last == "LAST")) {
    // The chunk's size is unknown: the connection cannot be resynchronised.
    reply("501 5.5.4 Syntax: BDAT <size> [LAST]");
    state_ = State::closed;
    return;
  }
  if (!env_.mail_from || env_.accounts.empty()) {
    // RFC 3030 2: the chunk must still be read and discarded.
    reply(env_.mail_from ? "554 5.5.1 No valid recipients" : "503 5.5.1 MAIL first");
    bdat_left_ = size;
    bdat_last_ = false;
    bdat_discard_ = true;
    data_too_big_ = true;  // store nothing
    state_ = State::bdat;
    return;
  }
  chunking_ = true;
  bdat_left_ = size;
  bdat_last_ = last == "LAST";
  state_ = State::bdat;
}

}  // namespace a3::smtp
