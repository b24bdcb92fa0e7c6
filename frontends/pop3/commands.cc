// The POP3 commands (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034
// AUTH, RFC 6856 UTF8) as one table: the state each is valid in and its
// handler. The dispatcher checks the state once.
#include <fmt/format.h>

#include "common/ascii.h"
#include "common/command_table.h"
#include "frontends/net/sasl.h"
#include "frontends/pop3/replies.h"
#include "frontends/pop3/session.h"

namespace a3::pop3 {

namespace {

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

// clang-format off
const Session::Command Session::kCommands[] = {
    // verb     handler                 state
    {"CAPA",    &Session::cmd_capa,     When::any},
    {"QUIT",    &Session::cmd_quit,     When::any},
    {"STLS",    &Session::cmd_stls,     When::authorization},
    {"UTF8",    &Session::cmd_utf8,     When::authorization},
    {"USER",    &Session::cmd_user,     When::authorization},
    {"PASS",    &Session::cmd_pass,     When::authorization},
    {"AUTH",    &Session::cmd_auth,     When::authorization},
    {"APOP",    &Session::cmd_apop,     When::authorization},
    {"NOOP",    &Session::cmd_noop,     When::transaction},
    {"STAT",    &Session::cmd_stat,     When::transaction},
    {"LIST",    &Session::cmd_list,     When::transaction},
    {"UIDL",    &Session::cmd_list,     When::transaction},
    {"RETR",    &Session::cmd_retr,     When::transaction},
    {"TOP",     &Session::cmd_retr,     When::transaction},
    {"DELE",    &Session::cmd_dele,     When::transaction},
    {"RSET",    &Session::cmd_rset,     When::transaction},
};
// clang-format on

std::vector<std::string_view> Session::command_names() {
  return a3::command_names(kCommands);
}

// command = keyword *(SP argument) CRLF (RFC 1939 3; RFC 2449 3)
void Session::command(std::string_view line) {
  const auto space = line.find(' ');
  Args a;
  a.verb = ascii::upper(line.substr(0, space));
  a.line = line;
  if (space != std::string_view::npos) {
    std::string_view rest = line.substr(space + 1);
    while (!rest.empty()) {
      const auto sp = rest.find(' ');
      a.args.push_back(rest.substr(0, sp));
      if (sp == std::string_view::npos) break;
      rest.remove_prefix(sp + 1);
    }
  }
  const Command* c = find_command(kCommands, a.verb);
  metered_ = {c ? c->name : std::string_view("unknown"), std::chrono::steady_clock::now()};
  if (a.verb != "QUIT" && limits_.allow_request && !limits_.allow_request())
    return err("[SYS/TEMP] Too many requests from your address; slow down");
  if (state_ == State::authorization) {
    if (!c || c->when == When::transaction)
      return bad("Unknown command or not allowed before login");
  } else if (!c || c->when == When::authorization) {
    return bad("Unknown command");
  }
  (this->*(c->run))(a);
}

void Session::cmd_capa(const Args&) {
  ok("Capability list follows");
  out_ += capabilities() + ".\r\n";
}

void Session::cmd_quit(const Args&) {
  quit();
}

// RFC 2595 4
void Session::cmd_stls(const Args&) {
  if (!info_.tls_available || info_.tls_active) return bad("STLS not available");
  ok("Begin TLS negotiation");
  state_ = State::tls_pending;
}

// RFC 6856 3: names may be UTF-8.
void Session::cmd_utf8(const Args&) {
  ok("UTF8 enabled");
}

// RFC 1939 7: USER name
void Session::cmd_user(const Args& a) {
  if (!plaintext_ok()) return err("[AUTH] Use STLS before sending a password");
  if (a.line.size() <= 5) return bad("USER needs a name");
  user_ = std::string(a.line.substr(5));
  ok("Send your password");
}

// RFC 1939 7: PASS string (the rest of the line: it may contain spaces)
void Session::cmd_pass(const Args& a) {
  if (user_.empty()) return bad("USER first");
  if (!plaintext_ok()) return err("[AUTH] Use STLS before sending a password");
  pending_auth_ = AuthRequest{"USER", std::exchange(user_, {}),
                              std::string(a.line.size() > 5 ? a.line.substr(5) : "")};
  state_ = State::awaiting_auth;
}

// RFC 5034 4: AUTH mechanism [initial-response]
void Session::cmd_auth(const Args& a) {
  const auto& args = a.args;
  if (args.empty()) {
    ok("Mechanisms follow");
    out_ += plaintext_ok() ? "PLAIN\r\n.\r\n" : ".\r\n";
    return;
  }
  if (!ascii::iequals(args[0], "PLAIN")) return err("Unsupported mechanism");
  if (!plaintext_ok()) return err("[AUTH] Use STLS first");
  if (args.size() >= 2) {
    // RFC 5034 4: initial response; "=" is an empty one.
    auto decoded = args[1] == "=" ? std::optional<std::string>("") : net::base64_decode(args[1]);
    auto plain = decoded ? net::parse_plain(*decoded) : std::nullopt;
    if (!plain) return bad("Malformed SASL response");
    if (plain->other_identity) return err("[AUTH] Cannot act for another user");
    pending_auth_ = AuthRequest{"PLAIN", std::move(plain->user), std::move(plain->password)};
    state_ = State::awaiting_auth;
    return;
  }
  out_ += "+ \r\n";
  state_ = State::sasl;
}

void Session::cmd_apop(const Args&) {
  err("APOP is not offered");
}

void Session::cmd_noop(const Args&) {
  ok("");
}

void Session::cmd_stat(const Args&) {
  std::size_t n = 0;
  std::uint64_t size = 0;
  for (const auto& m : messages_) {
    if (m.deleted) continue;
    ++n;
    size += m.size;
  }
  ok(fmt::format("{} {}", n, size));
}

// LIST [msg], UIDL [msg] (RFC 1939 7: unique ids are UIDVALIDITY.UID)
void Session::cmd_list(const Args& a) {
  const auto& args = a.args;
  const bool uidl = a.verb == "UIDL";
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
  ok("Listing follows");
  for (std::size_t i = 0; i < messages_.size(); ++i) {
    if (!messages_[i].deleted) out_ += line_for(i) + "\r\n";
  }
  out_ += ".\r\n";
}

// RETR msg, TOP msg n (RFC 1939 7)
void Session::cmd_retr(const Args& a) {
  const auto& args = a.args;
  const std::string& verb = a.verb;
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
  ok(verb == "RETR" ? fmt::format("{} octets", m->size) : std::string("Top follows"));
  append_stuffed(out_, text);
  out_ += ".\r\n";
}

// DELE msg: marked now, expunged at QUIT (RFC 1939 6, UPDATE state)
void Session::cmd_dele(const Args& a) {
  const auto& args = a.args;
  if (args.empty()) return bad("Missing message number");
  Message* m = message(args[0]);
  if (!m) return;
  m->deleted = true;
  ok("Marked for deletion");
}

void Session::cmd_rset(const Args&) {
  for (auto& m : messages_)
    m.deleted = false;
  ok("Nothing will be deleted");
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

}  // namespace a3::pop3
