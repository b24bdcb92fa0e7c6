#include "frontends/imap/session.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/metrics.h"
#include "frontends/imap/replies.h"
#include "frontends/net/sasl.h"

namespace a3::imap {

using projections::MailboxRecord;
using projections::OutcomeCode;

namespace {

constexpr std::size_t kMaxNonSyncBeforeAuth = 4096;  // RFC 7888 LITERAL-
constexpr std::size_t kMaxPendingOutput = 1 << 20;   // then pipelined commands wait

// "{123}" or "{123+}" at the end of a line: its size and whether it is
// non-synchronising.
std::optional<std::pair<std::uint64_t, bool>> trailing_literal(std::string_view line) {
  if (line.empty() || line.back() != '}') return std::nullopt;
  const auto open = line.rfind('{');
  if (open == std::string_view::npos) return std::nullopt;
  std::string_view inner = line.substr(open + 1, line.size() - open - 2);
  bool nonsync = false;
  if (!inner.empty() && (inner.back() == '+' || inner.back() == '-')) {
    nonsync = inner.back() == '+';
    inner.remove_suffix(1);
  }
  if (inner.empty() || inner.size() > 19) return std::nullopt;
  std::uint64_t n = 0;
  for (char c : inner) {
    if (!ascii::is_digit(c)) return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return std::pair{n, nonsync};
}

// The tag of a (possibly incomplete) command, for error responses.
std::string tag_of(std::string_view command) {
  std::size_t n = 0;
  while (n < command.size() && (is_atom_char(command[n]) || command[n] == ']') && command[n] != '+')
    ++n;
  return n == 0 ? "*" : std::string(command.substr(0, n));
}

}  // namespace

std::shared_ptr<const MessageIndex> Session::current() {
  if (auto box = store_.mailbox(sel_->box.id)) sel_->box = *box;
  return shared_.messages(store_, sel_->box);
}

Session::Session(SessionInfo info, Limits limits, projections::Store& store, Shared& shared)
    : info_(std::move(info)), limits_(limits), store_(store), shared_(shared) {}

std::string Session::greeting() const {
  return fmt::format("* OK [CAPABILITY {}] {} A3Mailer IMAP ready\r\n", capabilities(),
                     info_.hostname);
}

std::string Session::capabilities() const {
  std::string c = "IMAP4rev1 IMAP4rev2";
  const bool plaintext_ok = info_.tls_active || info_.allow_plaintext_auth;
  if (!authenticated()) {
    if (info_.tls_available && !info_.tls_active) c += " STARTTLS";
    c += plaintext_ok ? " AUTH=PLAIN SASL-IR" : " LOGINDISABLED";
    c += " LITERAL- ID ENABLE";
    return c;
  }
  c += " LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN LIST-EXTENDED"
       " LIST-STATUS SPECIAL-USE STATUS=SIZE ESEARCH SEARCHRES BINARY";
  c += fmt::format(" APPENDLIMIT={}", limits_.append_limit);
  c += " CONDSTORE QRESYNC UTF8=ACCEPT MULTIAPPEND CREATE-SPECIAL-USE QUOTA QUOTA=RES-STORAGE"
       " SAVEDATE";
  return c;
}

std::size_t Session::max_line() const {
  return authenticated() ? limits_.max_line_after_auth : limits_.max_line_before_auth;
}

std::optional<schemas::Uuid> Session::selected_mailbox() const {
  if (!sel_) return std::nullopt;
  return sel_->box.id;
}

void Session::untagged(std::string_view text) {
  out_ += "* ";
  out_ += text;
  out_ += "\r\n";
}

void Session::tagged(const std::string& tag, std::string_view status, std::string_view text) {
  if (status == "OK") bad_commands_ = 0;  // only consecutive errors end a session
  if (!metered_.command.empty() && tag == metered_.tag) {
    // IDLE's time is the client's, not ours: counted, not timed.
    const bool idle = metered_.command == "IDLE";
    metrics::command_done("imap", metered_.command, ascii::lower(status),
                          idle ? -1 : metrics::seconds_since(metered_.start));
    metered_.command = {};
  }
  if (status == "BAD") ++bad_answers_;
  if (status != "BAD" && sel_ && report_after_) report_changes(expunge_ok_);
  out_ += fmt::format("{} {} {}\r\n", tag, status, text);
}

void Session::bad(const std::string& tag, std::string_view text) {
  tagged(tag, "BAD", text);
  if (++bad_commands_ >= limits_.max_bad_commands) {
    untagged("BYE Too many invalid commands");
    state_ = State::closed;
  }
}

// ---- framing ----

void Session::receive(std::string_view bytes) {
  held_back_ = false;
  if (state_ == State::closed || state_ == State::tls_pending) return;
  in_.append(bytes);
  process();
}

void Session::process() {
  std::size_t pos = 0;
  while (state_ == State::command || state_ == State::literal || state_ == State::sasl) {
    if (state_ == State::literal) {
      const std::size_t n = std::min(literal_left_, in_.size() - pos);
      command_.append(in_, pos, n);
      pos += n;
      literal_left_ -= n;
      if (literal_left_ > 0) break;
      state_ = State::command;  // the rest of the command's line follows
      continue;
    }
    const std::size_t lf = in_.find('\n', pos);
    if (lf == std::string::npos) {
      if (in_.size() - pos > max_line()) {
        if (!skipping_line_) {
          bad(tag_of(command_.empty() ? std::string_view(in_).substr(pos) : command_),
              "Line too long");
        }
        skipping_line_ = true;
        command_.clear();
        pos = in_.size();
      }
      break;
    }
    std::string_view line(in_.data() + pos, lf - pos);
    pos = lf + 1;
    ++lines_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // A refused line that announced a non-synchronising literal: its bytes
    // are on their way and cannot be told from commands, so the
    // connection ends (RFC 7888 4).
    auto refuse_nonsync = [&](std::string_view refused) {
      const auto lit = state_ == State::command ? trailing_literal(refused) : std::nullopt;
      if (!lit || !lit->second) return false;
      untagged("BYE [TOOBIG] Literal too large");
      state_ = State::closed;
      return true;
    };
    if (skipping_line_) {
      skipping_line_ = false;
      if (refuse_nonsync(line)) break;
      if (state_ == State::sasl) state_ = State::command;
      continue;
    }
    if (line.size() > max_line()) {
      bad(tag_of(command_.empty() ? line : std::string_view(command_)), "Line too long");
      command_.clear();
      if (refuse_nonsync(line)) break;
      if (state_ == State::sasl) state_ = State::command;
      continue;
    }
    if (state_ == State::sasl) {
      state_ = State::command;
      if (line == "*") {
        tagged(sasl_tag_, "BAD", "Authentication cancelled");
      } else if (auto decoded = net::base64_decode(line)) {
        pending_tag_ = sasl_tag_;
        sasl_plain(*decoded);
      } else {
        tagged(sasl_tag_, "BAD", "Invalid base64");
      }
      continue;
    }
    if (idling_) {
      idling_ = false;
      if (ascii::iequals(line, "DONE")) {
        tagged(idle_tag_, "OK", "IDLE terminated");
      } else {
        bad(idle_tag_, "Expected DONE");
      }
      continue;
    }
    // Only APPEND carries messages; other literals are names and strings,
    // so other commands are bounded by a few lines' worth.
    bool is_append = false;
    {
      Parser peek_cmd(command_.empty() ? line : std::string_view(command_));
      try {
        peek_cmd.tag();
        peek_cmd.sp();
        is_append = ascii::iequals(peek_cmd.atom(), "APPEND");
      } catch (const ParseError&) {
      }
    }
    const std::size_t max_command = !authenticated() ? 2 * limits_.max_line_before_auth
                                    : is_append ? limits_.append_limit + limits_.max_line_after_auth
                                                : 4 * limits_.max_line_after_auth;
    if (command_.size() + line.size() > max_command) {
      tagged(tag_of(command_.empty() ? line : std::string_view(command_)), "BAD",
             "[TOOBIG] Command too large");
      command_.clear();
      if (refuse_nonsync(line)) break;
      continue;
    }
    command_.append(line);
    if (auto lit = trailing_literal(line)) {
      const auto [n, nonsync] = *lit;
      const std::string tag = tag_of(command_);
      const std::size_t limit = authenticated() && is_append ? limits_.append_limit : max_line();
      if (n > limit || (nonsync && !authenticated() && n > kMaxNonSyncBeforeAuth)) {
        command_.clear();
        if (nonsync) {
          // Its bytes are on their way and cannot be told from commands.
          untagged("BYE [TOOBIG] Literal too large");
          tagged(tag, "BAD", "[TOOBIG] Literal too large");
          state_ = State::closed;
          break;
        }
        tagged(tag, is_append ? "NO" : "BAD", "[TOOBIG] Literal too large");
        continue;
      }
      command_ += "\r\n";
      if (!nonsync) out_ += "+ Ready for literal data\r\n";
      literal_left_ = static_cast<std::size_t>(n);
      state_ = State::literal;
      continue;
    }
    std::string command = std::exchange(command_, std::string());
    dispatch(command);
    if (out_.size() > kMaxPendingOutput && state_ == State::command) {
      held_back_ = true;  // pipelined commands wait until this is sent
      break;
    }
    if (state_ == State::tls_pending) {
      pos = in_.size();  // RFC 9051 6.2.1: nothing sent before TLS counts
      break;
    }
  }
  in_.erase(0, std::min(pos, in_.size()));
}

// ---- not authenticated ----

void Session::tls_established() {
  info_.tls_active = true;
  in_.clear();
  command_.clear();
  state_ = State::command;
}

std::optional<AuthRequest> Session::take_auth() {
  if (state_ != State::awaiting_auth || !pending_auth_) return std::nullopt;
  return std::exchange(pending_auth_, std::nullopt);
}

void Session::auth_result(const std::optional<std::string>& account) {
  if (state_ != State::awaiting_auth) return;
  state_ = State::command;
  if (account) {
    account_ = *account;
    tagged(pending_tag_, "OK", fmt::format("[CAPABILITY {}] Logged in", capabilities()));
  } else {
    tagged(pending_tag_, "NO", "[AUTHENTICATIONFAILED] Invalid credentials");
  }
  process();  // pipelined commands waited for this
}

void Session::auth_unavailable() {
  if (state_ != State::awaiting_auth) return;
  state_ = State::command;
  tagged(pending_tag_, "NO", no_text(projections::errc::unavailable));
  process();
}

void Session::auth_over_limit() {
  if (state_ != State::awaiting_auth) return;
  state_ = State::command;
  // RFC 5530 LIMIT: an administrative limit, not the credentials.
  tagged(pending_tag_, "NO", "[LIMIT] Too many sessions for this account");
  process();
}

// ---- authenticated ----

schemas::Actor Session::actor() const {
  return {schemas::Protocol::imap, account_, info_.remote_ip, info_.session_id};
}

void Session::write(std::vector<schemas::Event> events, projections::Store::Wait wait,
                    std::function<void(const Outcomes&)> then,
                    std::function<void(projections::errc)> failed) {
  pending_write_ = Write{std::move(events), wait};
  then_ = std::move(then);
  failed_ = std::move(failed);
  state_ = State::awaiting_store;  // the rest of the input waits
}

void Session::execute(const std::string& tag, std::vector<schemas::Body> bodies,
                      std::function<void(const Outcomes&)> then) {
  std::vector<schemas::Event> events;
  for (auto& body : bodies)
    events.push_back(schemas::make_event(account_, actor(), std::move(body)));
  write(std::move(events), projections::Store::Wait::applied, std::move(then),
        [this, tag](projections::errc e) { tagged(tag, "NO", no_text(e)); });
}

void Session::execute(const std::string& tag, schemas::Body body,
                      std::function<void(const projections::Outcome&)> then) {
  std::vector<schemas::Body> bodies;
  bodies.push_back(std::move(body));
  execute(tag, std::move(bodies),
          [then = std::move(then)](const Outcomes& outcomes) { then(outcomes.back()); });
}

std::optional<Session::Write> Session::take_write() {
  if (state_ != State::awaiting_store || write_taken_ || !pending_write_) return std::nullopt;
  write_taken_ = true;
  return std::exchange(pending_write_, std::nullopt);
}

void Session::write_done(const projections::Store::Executed& result) {
  if (state_ != State::awaiting_store || !write_taken_) return;
  write_taken_ = false;
  state_ = State::command;
  auto then = std::exchange(then_, nullptr);
  auto failed = std::exchange(failed_, nullptr);
  if (!result) {
    failed(projections::to_errc(result.error()));
  } else {
    // Our own changes were answered with the command: not reported again.
    if (sel_) {
      for (const auto& o : *result)
        if (o.modseq > 0) sel_->own_modseqs.insert(o.modseq);
    }
    then(*result);
  }
  // The command may have asked for its next write; if not, it is answered
  // and the pipelined commands go on.
  if (state_ == State::command) process();
}

}  // namespace a3::imap
