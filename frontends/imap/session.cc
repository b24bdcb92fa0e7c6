#include "frontends/imap/session.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/clock.h"
#include "frontends/net/sasl.h"
#include "frontends/net/staged.h"

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

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 1000 || name.front() == '/' || name.back() == '/') return false;
  std::size_t start = 0;
  for (;;) {
    const auto slash = name.find('/', start);
    const std::string_view part = std::string_view(name).substr(
        start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '%' || c == '*') return false;
  }
  return true;
}

// LIST wildcard match (RFC 9051 6.3.9): '*' matches anything, '%' anything
// but the hierarchy delimiter. Linear in pattern x name (no backtracking).
bool wildcard(std::string_view pattern, std::string_view name) {
  // reach[j]: the pattern so far can match name[0, j).
  std::vector<char> reach(name.size() + 1, 0), next(name.size() + 1, 0);
  reach[0] = 1;
  for (const char p : pattern) {
    std::fill(next.begin(), next.end(), 0);
    if (p == '*' || p == '%') {
      bool open = false;
      for (std::size_t j = 0; j <= name.size(); ++j) {
        open = open || reach[j];
        next[j] = open;
        // '%' does not cross a delimiter.
        if (p == '%' && j < name.size() && name[j] == '/') open = false;
      }
    } else {
      for (std::size_t j = 0; j < name.size(); ++j)
        next[j + 1] = reach[j] && name[j] == p;
    }
    reach.swap(next);
  }
  return reach[name.size()];
}

}  // namespace

std::uint32_t Shared::claim_recent(const schemas::Uuid& mailbox, std::uint32_t uidnext) {
  std::lock_guard lock(mu_);
  auto [it, fresh] = claimed_.try_emplace(mailbox, uidnext);
  // Unknown since start-up: nothing is recent (RFC 3501 leaves the server
  // free to say less rather than announce old mail as new).
  const std::uint32_t from = fresh ? uidnext : it->second;
  it->second = std::max(it->second, uidnext);
  return from;
}

const projections::MessageRecord* MessageIndex::find(std::uint32_t uid) const {
  const auto it = std::lower_bound(
      messages.begin(), messages.end(), uid,
      [](const projections::MessageRecord& m, std::uint32_t u) { return m.uid < u; });
  return it != messages.end() && it->uid == uid ? &*it : nullptr;
}

std::shared_ptr<const MessageIndex> Shared::messages(const projections::Store& store,
                                                     const MailboxRecord& box) {
  std::shared_ptr<const MessageIndex> cached;
  {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(box.id); it != cache_.end()) {
      it->second.used = ++clock_;
      cached = it->second.index;
    }
  }
  if (cached && cached->modseq >= box.highestmodseq) return cached;
  auto next = std::make_shared<MessageIndex>();
  if (cached) {
    // Only what changed since: the CONDSTORE index says which UIDs.
    *next = *cached;
    auto& v = next->messages;
    for (const auto& c : store.changes_since(box.id, cached->modseq)) {
      next->modseq = std::max(next->modseq, c.modseq);
      const auto it = std::lower_bound(
          v.begin(), v.end(), c.uid,
          [](const projections::MessageRecord& m, std::uint32_t u) { return m.uid < u; });
      const bool present = it != v.end() && it->uid == c.uid;
      auto record = c.expunged ? std::nullopt : store.message(box.id, c.uid);
      if (!record) {
        if (present) v.erase(it);
      } else if (present) {
        *it = std::move(*record);
      } else {
        v.insert(it, std::move(*record));
      }
    }
  } else {
    next->messages = store.messages(box.id);
  }
  next->modseq = std::max(next->modseq, box.highestmodseq);
  std::lock_guard lock(mu_);
  auto& slot = cache_[box.id];
  if (!slot.index || slot.index->modseq <= next->modseq) slot.index = next;
  slot.used = ++clock_;
  if (cache_.size() > kCachedMailboxes) {
    // The least recently used half goes.
    std::vector<std::uint64_t> uses;
    for (const auto& [id, c] : cache_)
      uses.push_back(c.used);
    std::nth_element(uses.begin(), uses.begin() + uses.size() / 2, uses.end());
    const std::uint64_t cut = uses[uses.size() / 2];
    std::erase_if(cache_, [&](const auto& kv) { return kv.second.used < cut; });
  }
  return next;
}

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
  c += " CONDSTORE QRESYNC UTF8=ACCEPT MULTIAPPEND CREATE-SPECIAL-USE";
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

void Session::dispatch(const std::string& command) {
  Parser p(command);
  std::string tag = "*";
  report_after_ = false;
  expunge_ok_ = true;
  try {
    tag = p.tag();
    p.sp();
    const std::string name = ascii::upper(p.atom());
    // Any state
    if (name == "CAPABILITY") return cmd_capability(tag, p);
    if (name == "NOOP") {
      report_after_ = true;
      return cmd_noop(tag, p);
    }
    if (name == "LOGOUT") return cmd_logout(tag, p);
    if (name == "ID") return cmd_id(tag, p);
    if (!authenticated()) {
      if (name == "STARTTLS") return cmd_starttls(tag, p);
      if (name == "LOGIN") return cmd_login(tag, p);
      if (name == "AUTHENTICATE") return cmd_authenticate(tag, p);
      if (name == "ENABLE" || name == "SELECT" || name == "EXAMINE" || name == "LIST" ||
          name == "CREATE" || name == "STATUS" || name == "APPEND")
        return bad(tag, "Log in first");
      return bad(tag, "Unknown command");
    }
    report_after_ = true;
    if (name == "LOGIN" || name == "AUTHENTICATE" || name == "STARTTLS")
      return bad(tag, "Already authenticated");
    if (name == "ENABLE") return cmd_enable(tag, p);
    if (name == "SELECT") return cmd_select(tag, p, false);
    if (name == "EXAMINE") return cmd_select(tag, p, true);
    if (name == "CREATE") return cmd_create(tag, p);
    if (name == "DELETE") return cmd_delete(tag, p);
    if (name == "RENAME") return cmd_rename(tag, p);
    if (name == "SUBSCRIBE") return cmd_subscribe(tag, p, true);
    if (name == "UNSUBSCRIBE") return cmd_subscribe(tag, p, false);
    if (name == "LIST") return cmd_list(tag, p, false);
    if (name == "LSUB") return cmd_list(tag, p, true);
    if (name == "NAMESPACE") return cmd_namespace(tag, p);
    if (name == "STATUS") return cmd_status(tag, p);
    if (name == "APPEND") return cmd_append(tag, p);
    if (name == "IDLE") return cmd_idle(tag, p);
    const bool selected_command = name == "CHECK" || name == "CLOSE" || name == "UNSELECT" ||
                                  name == "EXPUNGE" || name == "SEARCH" || name == "FETCH" ||
                                  name == "STORE" || name == "COPY" || name == "MOVE" ||
                                  name == "UID";
    if (!selected_command) return bad(tag, "Unknown command");
    if (!sel_) return bad(tag, "No mailbox selected");
    if (name == "CHECK") return cmd_check(tag, p);
    if (name == "CLOSE") return cmd_close(tag, p, true);
    if (name == "UNSELECT") return cmd_close(tag, p, false);
    if (name == "EXPUNGE") return cmd_expunge(tag, p, false);
    // RFC 9051 7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH.
    expunge_ok_ = false;
    if (name == "SEARCH") return cmd_search(tag, p, false);
    if (name == "FETCH") return cmd_fetch(tag, p, false);
    if (name == "STORE") return cmd_store(tag, p, false);
    expunge_ok_ = true;
    if (name == "COPY") return cmd_copy(tag, p, false, false);
    if (name == "MOVE") return cmd_copy(tag, p, false, true);
    // UID commands
    p.sp();
    const std::string sub = ascii::upper(p.atom());
    if (sub == "FETCH") return cmd_fetch(tag, p, true);
    if (sub == "SEARCH") return cmd_search(tag, p, true);
    if (sub == "STORE") return cmd_store(tag, p, true);
    if (sub == "COPY") return cmd_copy(tag, p, true, false);
    if (sub == "MOVE") return cmd_copy(tag, p, true, true);
    if (sub == "EXPUNGE") return cmd_expunge(tag, p, true);
    return bad(tag, "Unknown UID command");
  } catch (const ParseError& e) {
    bad(tag, e.what());
  }
}

// ---- any state ----

void Session::cmd_capability(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("CAPABILITY takes no arguments");
  untagged("CAPABILITY " + capabilities());
  tagged(tag, "OK", "CAPABILITY completed");
}

void Session::cmd_noop(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("NOOP takes no arguments");
  tagged(tag, "OK", "NOOP completed");
}

void Session::cmd_logout(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("LOGOUT takes no arguments");
  untagged("BYE Logging out");
  tagged(tag, "OK", "LOGOUT completed");
  state_ = State::closed;
}

void Session::cmd_id(const std::string& tag, Parser& p) {
  // RFC 2971: the client's fields are read and ignored.
  p.sp();
  if (!p.keyword("NIL")) {
    p.expect('(');
    int fields = 0;
    while (!p.consume(')')) {
      if (fields > 0) p.sp();
      p.string();
      p.sp();
      p.nstring();
      if (++fields > 30) throw ParseError("Too many ID fields");
    }
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  untagged("ID (\"name\" \"A3Mailer\" \"version\" \"0.1.0\")");
  tagged(tag, "OK", "ID completed");
}

// ---- not authenticated ----

void Session::cmd_starttls(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("STARTTLS takes no arguments");
  if (!info_.tls_available || info_.tls_active) return tagged(tag, "BAD", "TLS not available");
  tagged(tag, "OK", "Begin TLS negotiation now");
  state_ = State::tls_pending;
}

void Session::tls_established() {
  info_.tls_active = true;
  in_.clear();
  command_.clear();
  state_ = State::command;
}

void Session::cmd_login(const std::string& tag, Parser& p) {
  p.sp();
  std::string user = p.astring();
  p.sp();
  std::string password = p.astring();
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (!info_.tls_active && !info_.allow_plaintext_auth) {
    return tagged(tag, "NO", "[PRIVACYREQUIRED] Use STARTTLS first");
  }
  pending_tag_ = tag;
  pending_auth_ = AuthRequest{"LOGIN", std::move(user), std::move(password)};
  state_ = State::awaiting_auth;
}

void Session::cmd_authenticate(const std::string& tag, Parser& p) {
  p.sp();
  const std::string mech = ascii::upper(p.atom());
  if (mech != "PLAIN") {
    if (!p.at_end()) p.sp(), p.atom();
    return tagged(tag, "NO", "[CANNOT] Unsupported mechanism");
  }
  if (!info_.tls_active && !info_.allow_plaintext_auth) {
    return tagged(tag, "NO", "[PRIVACYREQUIRED] Use STARTTLS first");
  }
  if (p.consume(' ')) {
    // RFC 4959 SASL-IR; "=" is an empty initial response.
    const std::string ir = p.atom();
    if (!p.at_end()) throw ParseError("Unexpected arguments");
    auto decoded = ir == "=" ? std::optional<std::string>("") : net::base64_decode(ir);
    if (!decoded) return tagged(tag, "BAD", "Invalid base64");
    pending_tag_ = tag;
    return sasl_plain(*decoded);
  }
  sasl_tag_ = tag;
  out_ += "+ \r\n";
  state_ = State::sasl;
}

// RFC 4616: [authzid] NUL authcid NUL passwd. Acting for another user is not
// offered: an authzid must name the same user.
void Session::sasl_plain(const std::string& response) {
  auto plain = net::parse_plain(response);
  if (!plain) return tagged(pending_tag_, "BAD", "Malformed PLAIN response");
  if (plain->other_identity) {
    return tagged(pending_tag_, "NO", "[AUTHORIZATIONFAILED] Cannot act for another user");
  }
  pending_auth_ = AuthRequest{"PLAIN", std::move(plain->user), std::move(plain->password)};
  state_ = State::awaiting_auth;
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

// ---- authenticated ----

void Session::cmd_enable(const std::string& tag, Parser& p) {
  const bool had_condstore = condstore_;
  std::string enabled;
  do {
    p.sp();
    const std::string cap = ascii::upper(p.atom());
    bool now = false;
    if (cap == "IMAP4REV2" && !rev2_) now = rev2_ = true;
    if (cap == "UTF8=ACCEPT" && !utf8_) now = utf8_ = true;
    if (cap == "CONDSTORE" && !condstore_) now = condstore_ = true;
    if (cap == "QRESYNC" && !qresync_) now = qresync_ = condstore_ = true;
    if (now) enabled += " " + cap;
  } while (!p.at_end());
  untagged("ENABLED" + enabled);
  if (!had_condstore && condstore_ && sel_) {
    untagged(fmt::format("OK [HIGHESTMODSEQ {}] Highest",
                         std::max<std::uint64_t>(1, sel_->box.highestmodseq)));
  }
  tagged(tag, "OK", "ENABLE completed");
}

std::string Session::decode_name(const std::string& wire) const {
  if (ascii::iequals(wire, "INBOX")) return "INBOX";
  if (rev2_ || utf8_) return wire;
  // A name that is not valid modified UTF-7 is taken as sent.
  return utf7_decode(wire).value_or(wire);
}

std::string Session::encode_name(const std::string& name) const {
  if (rev2_ || utf8_) return quote(name);
  return quote(utf7_encode(name));
}

std::optional<MailboxRecord> Session::find_mailbox(const std::string& name) const {
  return store_.mailbox(account_, name);
}

std::optional<projections::Outcome> Session::execute(const std::string& tag, schemas::Body body) {
  const schemas::Actor actor{schemas::Protocol::imap, account_, info_.remote_ip, info_.session_id};
  auto r = store_.execute(schemas::make_event(account_, actor, std::move(body)));
  if (!r) {
    tagged(tag, "NO", "[UNAVAILABLE] The mail store cannot take changes now, try again later");
    return std::nullopt;
  }
  if (sel_ && r->modseq > 0) sel_->own_modseqs.insert(r->modseq);
  return *r;
}

void Session::cmd_create(const std::string& tag, Parser& p) {
  p.sp();
  std::string name = decode_name(p.mailbox());
  std::string special_use;
  if (p.consume(' ')) {
    // RFC 6154 CREATE-SPECIAL-USE: (USE (\Sent))
    p.expect('(');
    if (!p.keyword("USE")) throw ParseError("Unknown CREATE parameter");
    p.sp();
    const auto uses = p.flag_list();
    p.expect(')');
    static const char* known[] = {"\\All",  "\\Archive", "\\Drafts", "\\Flagged",
                                  "\\Junk", "\\Sent",    "\\Trash"};
    for (const auto& u : uses) {
      bool ok = false;
      for (const char* k : known)
        ok = ok || ascii::iequals(u, k);
      if (!ok) return tagged(tag, "NO", "[USEATTR] Unsupported special-use attribute");
    }
    if (uses.size() > 1) return tagged(tag, "NO", "[USEATTR] One special-use attribute at most");
    if (!uses.empty()) special_use = uses[0];
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (!name.empty() && name.back() == '/') name.pop_back();  // RFC 9051 6.3.4
  if (name == "INBOX") return tagged(tag, "NO", "[ALREADYEXISTS] INBOX exists");
  if (!valid_name(name)) return tagged(tag, "NO", "[CANNOT] Invalid mailbox name");
  if (find_mailbox(name)) return tagged(tag, "NO", "[ALREADYEXISTS] Mailbox exists");
  // Superior names are created as needed (RFC 9051 6.3.4).
  for (std::size_t slash = name.find('/'); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    const std::string parent = name.substr(0, slash);
    if (find_mailbox(parent) || ascii::iequals(parent, "INBOX")) continue;
    auto o = execute(tag, schemas::MailboxCreated{schemas::Uuid::v7(), parent, ""});
    if (!o) return;
  }
  auto o = execute(tag, schemas::MailboxCreated{schemas::Uuid::v7(), name, special_use});
  if (!o) return;
  if (o->code == OutcomeCode::mailbox_exists)
    return tagged(tag, "NO", "[ALREADYEXISTS] Mailbox exists");
  if (!o->ok()) return tagged(tag, "NO", "[CANNOT] " + o->detail);
  tagged(tag, "OK", "CREATE completed");
}

void Session::cmd_delete(const std::string& tag, Parser& p) {
  p.sp();
  const std::string name = decode_name(p.mailbox());
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (name == "INBOX") return tagged(tag, "NO", "[CANNOT] INBOX cannot be deleted");
  auto box = find_mailbox(name);
  if (!box) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  if (sel_ && sel_->box.id == box->id) sel_.reset();
  auto o = execute(tag, schemas::MailboxDeleted{box->id});
  if (!o) return;
  if (!o->ok()) return tagged(tag, "NO", "[NONEXISTENT] " + o->detail);
  tagged(tag, "OK", "DELETE completed");
}

void Session::cmd_rename(const std::string& tag, Parser& p) {
  p.sp();
  const std::string from = decode_name(p.mailbox());
  p.sp();
  std::string to = decode_name(p.mailbox());
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (!to.empty() && to.back() == '/') to.pop_back();
  auto box = find_mailbox(from);
  if (!box) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  if (to == "INBOX" || !valid_name(to)) return tagged(tag, "NO", "[CANNOT] Invalid target name");
  if (find_mailbox(to)) return tagged(tag, "NO", "[ALREADYEXISTS] Target mailbox exists");
  if (from == "INBOX") {
    // RFC 9051 6.3.6: INBOX's messages move to the new mailbox; INBOX stays.
    const schemas::Uuid id = schemas::Uuid::v7();
    auto created = execute(tag, schemas::MailboxCreated{id, to, ""});
    if (!created) return;
    if (!created->ok()) return tagged(tag, "NO", "[CANNOT] " + created->detail);
    std::vector<std::uint32_t> uids;
    for (const auto& m : store_.messages(box->id))
      uids.push_back(m.uid);
    if (!uids.empty()) {
      auto moved = execute(tag, schemas::MessagesMoved{box->id, uids, id});
      if (!moved) return;
    }
    return tagged(tag, "OK", "RENAME completed");
  }
  for (std::size_t slash = to.find('/'); slash != std::string::npos;
       slash = to.find('/', slash + 1)) {
    const std::string parent = to.substr(0, slash);
    if (find_mailbox(parent) || parent == from) continue;
    auto o = execute(tag, schemas::MailboxCreated{schemas::Uuid::v7(), parent, ""});
    if (!o) return;
  }
  auto o = execute(tag, schemas::MailboxRenamed{box->id, to});
  if (!o) return;
  if (o->code == OutcomeCode::mailbox_exists)
    return tagged(tag, "NO", "[ALREADYEXISTS] " + o->detail);
  if (!o->ok()) return tagged(tag, "NO", "[CANNOT] " + o->detail);
  if (sel_ && sel_->box.id == box->id) sel_->box.name = to;
  tagged(tag, "OK", "RENAME completed");
}

void Session::cmd_subscribe(const std::string& tag, Parser& p, bool subscribe) {
  p.sp();
  const std::string name = decode_name(p.mailbox());
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (!valid_name(name) && name != "INBOX") return tagged(tag, "NO", "[CANNOT] Invalid name");
  auto o = execute(tag, schemas::MailboxSubscriptionChanged{name, subscribe});
  if (!o) return;
  tagged(tag, "OK", subscribe ? "SUBSCRIBE completed" : "UNSUBSCRIBE completed");
}

void Session::cmd_namespace(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("NAMESPACE takes no arguments");
  untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
  tagged(tag, "OK", "NAMESPACE completed");
}

void Session::cmd_list(const std::string& tag, Parser& p, bool lsub) {
  p.sp();
  bool sel_subscribed = false, recursive = false, special_only = false;
  bool ret_subscribed = false, ret_children = true, ret_special = true;
  std::vector<std::string> status;
  bool extended = false;
  if (!lsub && p.peek() == '(') {
    // RFC 5258 selection options
    extended = true;
    p.expect('(');
    while (!p.consume(')')) {
      p.consume(' ');
      const std::string opt = ascii::upper(p.atom());
      if (opt == "SUBSCRIBED") {
        sel_subscribed = true;
      } else if (opt == "RECURSIVEMATCH") {
        recursive = true;
      } else if (opt == "SPECIAL-USE") {
        special_only = true;  // RFC 6154 5.1: only mailboxes with a special use
      } else if (opt != "REMOTE") {
        throw ParseError("Unknown LIST selection option");
      }
    }
    p.sp();
  }
  if (recursive && !sel_subscribed) throw ParseError("RECURSIVEMATCH needs another option");
  const std::string reference = decode_name(p.astring());
  p.sp();
  std::vector<std::string> patterns;
  if (!lsub && p.peek() == '(') {
    extended = true;
    p.expect('(');
    do {
      patterns.push_back(p.list_mailbox());
    } while (p.consume(' '));
    p.expect(')');
  } else {
    patterns.push_back(p.list_mailbox());
  }
  if (!lsub && p.consume(' ')) {
    extended = true;
    if (!p.keyword("RETURN")) throw ParseError("Expected RETURN");
    p.sp();
    p.expect('(');
    while (!p.consume(')')) {
      p.consume(' ');
      const std::string opt = ascii::upper(p.atom());
      if (opt == "SUBSCRIBED") {
        ret_subscribed = true;
      } else if (opt == "CHILDREN") {
        ret_children = true;
      } else if (opt == "SPECIAL-USE") {
        ret_special = true;
      } else if (opt == "STATUS") {
        p.sp();
        p.expect('(');
        do {
          status.push_back(ascii::upper(p.atom()));
        } while (p.consume(' '));
        p.expect(')');
      } else {
        throw ParseError("Unknown LIST return option");
      }
    }
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  (void)extended;

  if (patterns.size() == 1 && patterns[0].empty() && !lsub) {
    // RFC 9051 6.3.9: the delimiter and root of the reference.
    untagged("LIST (\\Noselect) \"/\" \"\"");
    return tagged(tag, "OK", "LIST completed");
  }
  const auto boxes = store_.mailboxes(account_);
  const auto subs_list = store_.subscriptions(account_);
  const std::set<std::string> subs(subs_list.begin(), subs_list.end());
  std::map<std::string, const MailboxRecord*> by_name;
  for (const auto& b : boxes)
    by_name[b.name] = &b;
  // Every name and its superiors (which may not exist: \NonExistent).
  std::set<std::string> names;
  for (const auto& b : boxes)
    names.insert(b.name);
  if (sel_subscribed || lsub) {
    for (const auto& s : subs)
      names.insert(s);
  }
  for (const auto& n : std::set<std::string>(names)) {
    for (auto slash = n.find('/'); slash != std::string::npos; slash = n.find('/', slash + 1))
      names.insert(n.substr(0, slash));
  }
  auto has_children = [&](const std::string& n) {
    auto it = names.upper_bound(n + "/");
    if (it != names.end() && it->starts_with(n + "/")) return true;
    return names.contains(n + "/");
  };
  // The patterns as full names: reference + pattern, INBOX in any case
  // folded as the store folds it.
  std::vector<std::string> full_patterns;
  for (const auto& pat : patterns) {
    if (pat.size() > 1024) throw ParseError("Pattern too long");
    std::string full = reference + decode_name(pat);
    if (ascii::istarts_with(full, "INBOX") && (full.size() == 5 || full[5] == '/'))
      full.replace(0, 5, "INBOX");
    full_patterns.push_back(std::move(full));
  }
  auto matches_pattern = [&](const std::string& n) {
    for (const auto& full : full_patterns) {
      if (wildcard(full, n)) return true;
    }
    return false;
  };
  // RFC 5258 3.5: a subscribed descendant that the patterns do not match
  // themselves (with RECURSIVEMATCH); for LSUB, any subscribed descendant.
  auto child_subscribed = [&](const std::string& n) {
    for (const auto& s : subs) {
      if (s.starts_with(n + "/") && (!recursive || !matches_pattern(s))) return true;
    }
    return false;
  };
  static const std::set<std::string> kStatusItems = {"MESSAGES",    "UIDNEXT", "UIDVALIDITY",
                                                     "UNSEEN",      "SIZE",    "HIGHESTMODSEQ",
                                                     "APPENDLIMIT", "DELETED", "RECENT"};
  for (const auto& item : status) {
    if (!kStatusItems.contains(item)) throw ParseError("Unknown STATUS item " + item);
  }
  for (const auto& name : names) {
    if (!matches_pattern(name)) continue;
    const auto* box = by_name.contains(name) ? by_name[name] : nullptr;
    const bool subscribed = subs.contains(name);
    std::vector<std::string> attrs;
    if (lsub) {
      if (!subscribed) {
        // RFC 3501 6.3.9: a superior of a subscribed name is \Noselect
        if (!child_subscribed(name)) continue;
        attrs.push_back("\\Noselect");
      }
    } else if (sel_subscribed) {
      if (!subscribed) {
        if (!recursive || !child_subscribed(name)) continue;
      }
      if (!box) attrs.push_back("\\NonExistent");
      if (subscribed) attrs.push_back("\\Subscribed");
    } else {
      if (!box) attrs.push_back("\\Noselect");
      if (ret_subscribed && subscribed) attrs.push_back("\\Subscribed");
    }
    if (special_only && !(box && !box->special_use.empty())) continue;
    if (!lsub && ret_children && (box || !sel_subscribed))
      attrs.push_back(has_children(name) ? "\\HasChildren" : "\\HasNoChildren");
    if (ret_special && box && !box->special_use.empty()) attrs.push_back(box->special_use);
    if (recursive && sel_subscribed && !subscribed && child_subscribed(name))
      attrs.push_back("");  // CHILDINFO below
    std::string attr_text;
    bool childinfo = false;
    for (const auto& a : attrs) {
      if (a.empty()) {
        childinfo = true;
        continue;
      }
      if (!attr_text.empty()) attr_text += ' ';
      attr_text += a;
    }
    std::string line =
        fmt::format("{} ({}) \"/\" {}", lsub ? "LSUB" : "LIST", attr_text, encode_name(name));
    if (childinfo) line += " (\"CHILDINFO\" (\"SUBSCRIBED\"))";
    untagged(line);
    if (!status.empty() && box) {
      try {
        untagged(fmt::format("STATUS {} ({})", encode_name(name), status_items(*box, status)));
      } catch (const ParseError&) {
        return bad(tag, "Unknown STATUS item");
      }
    }
  }
  tagged(tag, "OK", lsub ? "LSUB completed" : "LIST completed");
}

std::string Session::status_items(const MailboxRecord& box, const std::vector<std::string>& items) {
  std::string out;
  std::optional<std::vector<projections::MessageRecord>> msgs;
  for (const auto& item : items) {
    if (!out.empty()) out += ' ';
    if (item == "MESSAGES") {
      out += fmt::format("MESSAGES {}", box.messages);
    } else if (item == "UIDNEXT") {
      out += fmt::format("UIDNEXT {}", box.uidnext);
    } else if (item == "UIDVALIDITY") {
      out += fmt::format("UIDVALIDITY {}", box.uidvalidity);
    } else if (item == "UNSEEN") {
      out += fmt::format("UNSEEN {}", box.unseen);
    } else if (item == "SIZE") {
      out += fmt::format("SIZE {}", box.size);
    } else if (item == "HIGHESTMODSEQ") {
      out += fmt::format("HIGHESTMODSEQ {}", std::max<std::uint64_t>(1, box.highestmodseq));
    } else if (item == "APPENDLIMIT") {
      out += fmt::format("APPENDLIMIT {}", limits_.append_limit);
    } else if (item == "DELETED" || item == "RECENT") {
      if (item == "RECENT") {
        // Recent to this session only if it is the one selecting it.
        std::uint32_t n = 0;
        if (sel_ && sel_->box.id == box.id) {
          for (auto u : sel_->uids)
            n += sel_->is_recent(u) ? 1 : 0;
        }
        out += fmt::format("RECENT {}", n);
        continue;
      }
      if (!msgs) msgs = store_.messages(box.id);
      std::uint32_t n = 0;
      for (const auto& m : *msgs) {
        for (const auto& f : m.flags)
          n += f == "\\Deleted" ? 1 : 0;
      }
      out += fmt::format("DELETED {}", n);
    } else {
      throw ParseError("Unknown STATUS item " + item);
    }
  }
  return out;
}

void Session::cmd_status(const std::string& tag, Parser& p) {
  p.sp();
  const std::string wire = p.mailbox();
  const std::string name = decode_name(wire);
  p.sp();
  p.expect('(');
  std::vector<std::string> items;
  do {
    items.push_back(ascii::upper(p.atom()));
  } while (p.consume(' '));
  p.expect(')');
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  auto box = find_mailbox(name);
  if (!box) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  untagged(fmt::format("STATUS {} ({})", encode_name(name), status_items(*box, items)));
  tagged(tag, "OK", "STATUS completed");
}

void Session::cmd_append(const std::string& tag, Parser& p) {
  p.sp();
  const std::string name = decode_name(p.mailbox());
  struct One {
    std::vector<std::string> flags;
    std::int64_t date = 0;
    std::string raw;
  };
  std::vector<One> messages;
  std::size_t total = 0;
  do {
    p.sp();
    One m;
    m.date = now_ms();
    if (p.peek() == '(') {
      m.flags = p.flag_list();
      p.sp();
    }
    if (p.peek() == '"') {
      m.date = p.date_time();
      p.sp();
    }
    if (p.keyword("UTF8")) {
      // RFC 6855 4: UTF8 (~{n}...) carries a message with UTF-8 headers.
      p.sp();
      p.expect('(');
      m.raw = p.string();
      p.expect(')');
    } else {
      m.raw = p.string();
    }
    total += m.raw.size();
    for (const auto& f : m.flags) {
      if (ascii::iequals(f, "\\Recent") || f == "\\*") throw ParseError("Invalid flag in APPEND");
    }
    messages.push_back(std::move(m));
  } while (!p.at_end() && p.peek() == ' ');  // RFC 3502 MULTIAPPEND
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (total > limits_.append_limit) return tagged(tag, "NO", "[TOOBIG] Message too large");
  auto box = find_mailbox(name);
  if (!box) return tagged(tag, "NO", "[TRYCREATE] No such mailbox");
  std::vector<std::uint32_t> uids;
  std::uint32_t uidvalidity = box->uidvalidity;
  const schemas::Actor actor{schemas::Protocol::imap, account_, info_.remote_ip, info_.session_id};
  // RFC 3502: all or nothing. If one message fails, those already appended
  // are expunged again (best effort: the log may be what failed).
  auto undo = [&] {
    if (!uids.empty())
      (void)store_.execute(
          schemas::make_event(account_, actor, schemas::MessagesExpunged{box->id, uids}));
  };
  for (auto& m : messages) {
    schemas::MessageAppended event{box->id, std::move(m.raw), m.date, std::move(m.flags),
                                   std::nullopt};
    if (event.raw.size() > net::StagedStream::kChunkBytes) {
      // Large: the body goes ahead in chunks (ADR 0006), as SMTP sends it.
      net::StagedStream stream;
      const std::string raw = std::exchange(event.raw, std::string());
      for (std::size_t pos = 0; pos < raw.size(); pos += net::StagedStream::kChunkBytes) {
        for (const auto& chunk :
             net::chunk_events(stream, {account_},
                               std::string_view(raw).substr(pos, net::StagedStream::kChunkBytes),
                               actor, now_ms())) {
          if (!store_.append(chunk)) {
            undo();
            return tagged(tag, "NO", "[UNAVAILABLE] The mail store cannot take changes now");
          }
        }
      }
      event.staged = schemas::StagedBody{
          stream.blob_id, stream.started_ms, stream.size, stream.chunks, true, stream.message_id};
    }
    auto o = execute(tag, std::move(event));
    if (!o) {
      undo();
      return;
    }
    if (!o->ok()) {
      undo();
      if (o->code == OutcomeCode::mailbox_missing)
        return tagged(tag, "NO", "[TRYCREATE] No such mailbox");
      return tagged(tag, "NO", "[CANNOT] APPEND failed: " + o->detail);
    }
    uids.insert(uids.end(), o->uids.begin(), o->uids.end());
    uidvalidity = o->uidvalidity;
  }
  tagged(tag, "OK",
         fmt::format("[APPENDUID {} {}] APPEND completed", uidvalidity, SequenceSet::format(uids)));
}

void Session::cmd_idle(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("IDLE takes no arguments");
  if (sel_) report_changes(true);
  out_ += "+ idling\r\n";
  idling_ = true;
  idle_tag_ = tag;
}

void Session::idle_poll() {
  if (idling_ && sel_) report_changes(true);
}

void Session::cmd_check(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("CHECK takes no arguments");
  tagged(tag, "OK", "CHECK completed");
}

void Session::cmd_close(const std::string& tag, Parser& p, bool expunge) {
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (expunge && !sel_->read_only) {
    // RFC 9051 6.4.1: \Deleted messages go, silently.
    std::vector<std::uint32_t> uids;
    const auto index = current();
    for (const auto& m : index->messages) {
      if (std::find(m.flags.begin(), m.flags.end(), "\\Deleted") != m.flags.end())
        uids.push_back(m.uid);
    }
    if (!uids.empty()) {
      report_after_ = false;
      auto o = execute(tag, schemas::MessagesExpunged{sel_->box.id, uids});
      if (!o) return;
    }
  }
  sel_.reset();
  report_after_ = false;
  tagged(tag, "OK", expunge ? "CLOSE completed" : "UNSELECT completed");
}

}  // namespace a3::imap
