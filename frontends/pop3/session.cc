#include "frontends/pop3/session.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/net/sasl.h"
#include "frontends/pop3/replies.h"

namespace a3::pop3 {

namespace {

// Pipelined RETRs wait while this much output is unsent.
constexpr std::size_t kMaxPendingOutput = 1 << 20;

// RFC 1939 3: CRLF line endings, and a leading "." doubled; the caller adds
// the terminating ".\r\n". A bare CR or LF becomes CRLF.
void append_stuffed(std::string& out, std::string_view text) {
  bool line_start = true;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (line_start && c == '.') out.push_back('.');
    if (c == '\r') {
      out += "\r\n";
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
      line_start = true;
    } else if (c == '\n') {
      out += "\r\n";
      line_start = true;
    } else {
      out.push_back(c);
      line_start = false;
    }
  }
  if (!line_start) out += "\r\n";
}

std::optional<std::uint32_t> number(std::string_view s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  std::uint32_t n = 0;
  for (char c : s) {
    if (!ascii::is_digit(c)) return std::nullopt;
    n = n * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return n;
}

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

void Session::bad(std::string_view text) {
  err(text);
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

void Session::command(std::string_view line) {
  const auto space = line.find(' ');
  const std::string verb = ascii::upper(line.substr(0, space));
  std::vector<std::string_view> args;
  if (space != std::string_view::npos) {
    std::string_view rest = line.substr(space + 1);
    while (!rest.empty()) {
      const auto sp = rest.find(' ');
      args.push_back(rest.substr(0, sp));
      if (sp == std::string_view::npos) break;
      rest.remove_prefix(sp + 1);
    }
  }
  if (verb == "CAPA") {
    out_ += "+OK Capability list follows\r\n" + capabilities() + ".\r\n";
    return;
  }
  if (verb == "QUIT") return quit();
  if (state_ == State::authorization) {
    if (verb == "STLS") {
      if (!info_.tls_available || info_.tls_active) return bad("STLS not available");
      ok("Begin TLS negotiation");
      state_ = State::tls_pending;
      return;
    }
    if (verb == "UTF8") return ok("UTF8 enabled");  // RFC 6856: names may be UTF-8
    if (verb == "USER") {
      if (!plaintext_ok()) return err("[AUTH] Use STLS before sending a password");
      if (line.size() <= 5) return bad("USER needs a name");
      user_ = std::string(line.substr(5));
      return ok("Send your password");
    }
    if (verb == "PASS") {
      if (user_.empty()) return bad("USER first");
      if (!plaintext_ok()) return err("[AUTH] Use STLS before sending a password");
      // The password is the rest of the line: it may contain spaces.
      pending_auth_ = AuthRequest{"USER", std::exchange(user_, {}),
                                  std::string(line.size() > 5 ? line.substr(5) : "")};
      state_ = State::awaiting_auth;
      return;
    }
    if (verb == "AUTH") {
      if (args.empty()) {
        out_ += plaintext_ok() ? "+OK Mechanisms follow\r\nPLAIN\r\n.\r\n"
                               : "+OK Mechanisms follow\r\n.\r\n";
        return;
      }
      if (!ascii::iequals(args[0], "PLAIN")) return err("Unsupported mechanism");
      if (!plaintext_ok()) return err("[AUTH] Use STLS first");
      if (args.size() >= 2) {
        // RFC 5034 4: initial response; "=" is an empty one.
        auto decoded =
            args[1] == "=" ? std::optional<std::string>("") : net::base64_decode(args[1]);
        auto plain = decoded ? net::parse_plain(*decoded) : std::nullopt;
        if (!plain) return bad("Malformed SASL response");
        if (plain->other_identity) return err("[AUTH] Cannot act for another user");
        pending_auth_ = AuthRequest{"PLAIN", std::move(plain->user), std::move(plain->password)};
        state_ = State::awaiting_auth;
        return;
      }
      out_ += "+ \r\n";
      state_ = State::sasl;
      return;
    }
    if (verb == "APOP") return err("APOP is not offered");
    return bad("Unknown command or not allowed before login");
  }
  // TRANSACTION
  if (verb == "NOOP") return ok("");
  if (verb == "STAT") {
    std::size_t n = 0;
    std::uint64_t size = 0;
    for (const auto& m : messages_) {
      if (m.deleted) continue;
      ++n;
      size += m.size;
    }
    return ok(fmt::format("{} {}", n, size));
  }
  if (verb == "LIST" || verb == "UIDL") {
    const bool uidl = verb == "UIDL";
    auto line_for = [&](std::size_t i) {
      const auto& m = messages_[i];
      return uidl ? fmt::format("{} {}.{}", i + 1, inbox_.uidvalidity, m.uid)
                  : fmt::format("{} {}", i + 1, m.size);
    };
    if (!args.empty()) {
      Message* m = message(args[0]);
      if (!m) return;
      return ok(line_for(static_cast<std::size_t>(m - messages_.data())));
    }
    out_ += "+OK Listing follows\r\n";
    for (std::size_t i = 0; i < messages_.size(); ++i) {
      if (!messages_[i].deleted) out_ += line_for(i) + "\r\n";
    }
    out_ += ".\r\n";
    return;
  }
  if (verb == "RETR" || verb == "TOP") {
    if (args.empty() || (verb == "TOP" && args.size() < 2)) return bad("Missing arguments");
    Message* m = message(args[0]);
    if (!m) return;
    std::optional<std::uint32_t> lines;
    if (verb == "TOP") {
      lines = number(args[1]);
      if (!lines) return bad("Invalid line count");
    }
    auto raw = body(*m);
    if (!raw) return err("[SYS/TEMP] The message was removed by another client");
    std::string_view text(*raw);
    if (lines) {
      // The header, the blank line, then at most `lines` lines of the body.
      std::size_t end = text.find("\r\n\r\n");
      std::size_t sep = 4;
      if (const auto lf = text.find("\n\n"); lf != std::string_view::npos && lf < end) {
        end = lf;
        sep = 2;
      }
      // An empty header: the message starts with its blank line.
      if (text.starts_with("\r\n")) {
        end = 0;
        sep = 2;
      } else if (text.starts_with("\n")) {
        end = 0;
        sep = 1;
      }
      if (end != std::string_view::npos) {
        std::size_t cut = end + sep;
        for (std::uint32_t n = 0; n < *lines && cut < text.size(); ++n) {
          const auto nl = text.find('\n', cut);
          cut = nl == std::string_view::npos ? text.size() : nl + 1;
        }
        text = text.substr(0, cut);
      }
    }
    out_ += verb == "RETR" ? fmt::format("+OK {} octets\r\n", m->size) : "+OK Top follows\r\n";
    append_stuffed(out_, text);
    out_ += ".\r\n";
    return;
  }
  if (verb == "DELE") {
    if (args.empty()) return bad("Missing message number");
    Message* m = message(args[0]);
    if (!m) return;
    m->deleted = true;
    return ok("Marked for deletion");
  }
  if (verb == "RSET") {
    for (auto& m : messages_)
      m.deleted = false;
    return ok("Nothing will be deleted");
  }
  bad("Unknown command");
}

Session::Message* Session::message(std::string_view arg) {
  const auto n = number(arg);
  if (!n || *n == 0 || *n > messages_.size()) {
    err("No such message");
    return nullptr;
  }
  Message& m = messages_[*n - 1];
  if (m.deleted) {
    err("Message is marked for deletion");
    return nullptr;
  }
  return &m;
}

std::optional<std::string> Session::body(const Message& m) {
  // The message must still be in INBOX: another client may have expunged it.
  if (!store_.message(inbox_.id, m.uid)) return std::nullopt;
  return store_.body(m.blob);
}

std::optional<AuthRequest> Session::take_auth() {
  if (state_ != State::awaiting_auth || !pending_auth_) return std::nullopt;
  return std::exchange(pending_auth_, std::nullopt);
}

void Session::auth_unavailable() {
  if (state_ != State::awaiting_auth) return;
  state_ = State::authorization;
  err(err_text(projections::errc::unavailable));
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
  state_ = State::closed;
  // The maildrop is free again once the update is done (RFC 1939 6).
  struct Unlock {
    Session& s;
    ~Unlock() {
      s.maildrops_.unlock(s.account_);
      s.account_.clear();
    }
  } unlock{*this};
  if (uids.empty()) return ok("Bye");
  const schemas::Actor actor{schemas::Protocol::pop3, account_, info_.remote_ip, info_.session_id};
  auto r = store_.execute_blocking(
      schemas::make_event(account_, actor, schemas::MessagesExpunged{inbox_.id, uids}));
  if (!r && r.error() == projections::errc::pending) {
    // Durable in the log, not yet applied: the messages will be deleted.
    return ok(fmt::format("Bye, {} messages deleted", uids.size()));
  }
  if (!r || !r->ok()) {
    return err("[SYS/TEMP] The messages could not be deleted; nothing was removed");
  }
  ok(fmt::format("Bye, {} messages deleted", r->uids.size()));
}

}  // namespace a3::pop3
