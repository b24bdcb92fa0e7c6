#include "frontends/pop3/session.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/metrics.h"
#include "frontends/net/sasl.h"
#include "frontends/pop3/replies.h"

namespace a3::pop3 {

namespace {

// Pipelined RETRs wait while this much output is unsent.
constexpr std::size_t kMaxPendingOutput = 1 << 20;

}  // namespace

bool Maildrops::lock(const std::string& account) {
  std::lock_guard lock(mu_);
  return locked_.insert(account).second;
}

void Maildrops::unlock(const std::string& account) {
  std::lock_guard lock(mu_);
  locked_.erase(account);
}

Session::Session(SessionInfo info, Limits limits, projections::Store& store, Maildrops& maildrops)
    : info_(std::move(info)), limits_(limits), store_(store), maildrops_(maildrops) {}

Session::~Session() {
  if (!account_.empty()) maildrops_.unlock(account_);
}

std::string Session::greeting() const {
  return fmt::format("+OK {} A3Mailer POP3 ready\r\n", info_.hostname);
}

std::string Session::fmt_line(std::string_view status, std::string_view text) {
  if (text.empty()) return fmt::format("{}\r\n", status);  // RFC 2449: text is optional
  return fmt::format("{} {}\r\n", status, text);
}

void Session::status(std::string_view status, std::string_view text) {
  out_ += fmt_line(status, text);
  if (metered_.command.empty()) return;
  metrics::command_done("pop3", metered_.command, status == "+OK" ? "ok" : "err",
                        metrics::seconds_since(metered_.start));
  metered_.command = {};
}

void Session::bad(std::string_view text) {
  err(text);
  ++bad_answers_;
  if (++bad_commands_ >= limits_.max_bad_commands) {
    err("Too many errors, closing");
    state_ = State::closed;
  }
}

std::string Session::capabilities() const {
  std::string c = "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nUTF8\r\n";
  if (state_ != State::transaction) {
    if (plaintext_ok()) c += "USER\r\nSASL PLAIN\r\n";
    if (info_.tls_available && !info_.tls_active) c += "STLS\r\n";
  }
  c += "IMPLEMENTATION A3Mailer\r\n";
  return c;
}

void Session::receive(std::string_view bytes) {
  held_back_ = false;
  if (state_ == State::closed || state_ == State::tls_pending) return;
  in_.append(bytes);
  process();
}

void Session::process() {
  std::size_t pos = 0;
  while (state_ == State::authorization || state_ == State::transaction || state_ == State::sasl) {
    const std::size_t lf = in_.find('\n', pos);
    if (lf == std::string::npos) {
      // SASL responses may be longer than commands (RFC 5034 4).
      const std::size_t limit = state_ == State::sasl ? 2048 : limits_.max_line;
      if (in_.size() - pos > limit) {
        if (!skipping_line_) bad("Line too long");
        skipping_line_ = true;
        pos = in_.size();
      }
      break;
    }
    std::string_view line(in_.data() + pos, lf - pos);
    pos = lf + 1;
    ++lines_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (skipping_line_) {
      skipping_line_ = false;
      if (state_ == State::sasl) state_ = State::authorization;
      continue;
    }
    if (state_ == State::sasl) {
      state_ = State::authorization;
      if (line == "*") {
        err("Authentication cancelled");
        continue;
      }
      auto decoded = net::base64_decode(line);
      auto plain = decoded ? net::parse_plain(*decoded) : std::nullopt;
      if (!plain) {
        bad("Malformed SASL response");
      } else if (plain->other_identity) {
        err("[AUTH] Cannot act for another user");
      } else {
        pending_auth_ = AuthRequest{"PLAIN", std::move(plain->user), std::move(plain->password)};
        state_ = State::awaiting_auth;
      }
      continue;
    }
    if (line.size() > limits_.max_line) {
      bad("Line too long");
      continue;
    }
    command(line);
    if (out_.size() > kMaxPendingOutput) {
      held_back_ = true;  // the rest waits until this is sent
      break;
    }
    if (state_ == State::tls_pending) {
      pos = in_.size();  // RFC 2595 4: nothing sent before TLS counts
      break;
    }
  }
  in_.erase(0, std::min(pos, in_.size()));
}

std::optional<AuthRequest> Session::take_auth() {
  if (state_ != State::awaiting_auth || !pending_auth_) return std::nullopt;
  return std::exchange(pending_auth_, std::nullopt);
}

void Session::auth_unavailable() {
  if (state_ != State::awaiting_auth) return;
  state_ = State::authorization;
  err(err_text(projections::errc::unavailable));
  process();  // the commands pipelined behind the login
}

void Session::auth_over_limit() {
  if (state_ != State::awaiting_auth) return;
  state_ = State::authorization;
  // RFC 2449 8.1.1: the credentials were right, the maildrop is busy.
  err("[IN-USE] Too many sessions for this account");
  process();
}

void Session::auth_result(const std::optional<std::string>& account) {
  if (state_ != State::awaiting_auth) return;
  state_ = State::authorization;
  if (!account) {
    err("[AUTH] Authentication failed");
  } else if (!maildrops_.lock(*account)) {
    err(err_text(projections::errc::in_use));
  } else {
    auto inbox = store_.mailbox(*account, "INBOX");
    if (!inbox) {
      maildrops_.unlock(*account);
      err("[SYS/PERM] No INBOX");
    } else {
      account_ = *account;
      inbox_ = *inbox;
      for (const auto& r : store_.messages(inbox->id))
        messages_.push_back({r.uid, r.size, r.blob, false});
      state_ = State::transaction;
      ok(fmt::format("Logged in, {} messages", messages_.size()));
    }
  }
  process();  // pipelined commands waited for this
}

void Session::tls_established() {
  info_.tls_active = true;
  in_.clear();
  user_.clear();
  state_ = State::authorization;
}

void Session::quit() {
  if (state_ != State::transaction) {
    ok("Bye");
    state_ = State::closed;
    return;
  }
  // The UPDATE state (RFC 1939 6): the marked messages go, as one event.
  std::vector<std::uint32_t> uids;
  for (const auto& m : messages_) {
    if (m.deleted) uids.push_back(m.uid);
  }
  if (uids.empty()) {
    release();
    return ok("Bye");
  }
  update_count_ = uids.size();
  const schemas::Actor actor{schemas::Protocol::pop3, account_, info_.remote_ip, info_.session_id};
  pending_update_ =
      schemas::make_event(account_, actor, schemas::MessagesExpunged{inbox_.id, std::move(uids)});
  state_ = State::updating;
}

std::optional<schemas::Event> Session::take_update() {
  return std::exchange(pending_update_, std::nullopt);
}

void Session::update_done(const boost::system::result<projections::Outcome>& r) {
  if (state_ != State::updating) return;
  release();
  if (!r && r.error() == projections::errc::pending) {
    // Durable in the log, not yet applied: the messages will be deleted.
    return ok(fmt::format("Bye, {} messages deleted", update_count_));
  }
  if (!r || !r->ok()) {
    return err("[SYS/TEMP] The messages could not be deleted; nothing was removed");
  }
  ok(fmt::format("Bye, {} messages deleted", r->uids.size()));
}

// The maildrop is free again once the update is done (RFC 1939 6).
void Session::release() {
  state_ = State::closed;
  maildrops_.unlock(account_);
  account_.clear();
}

}  // namespace a3::pop3
