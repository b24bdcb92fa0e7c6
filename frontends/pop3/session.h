// One POP3 connection as a state machine with no I/O (RFC 1939, RFC 2449
// CAPA and response codes, RFC 5034 SASL PLAIN, RFC 2595 STLS, RFC 6856
// UTF8): bytes in, responses out.
//
// The maildrop is the account's INBOX, listed once at login: mail arriving
// later does not change the numbering. DELE only marks; QUIT expunges the
// marked messages as one event and answers +OK once it is applied; a
// dropped connection expunges nothing. One POP3 session per maildrop at a
// time ([IN-USE]); IMAP sessions stay consistent because the expunge is an
// ordinary event.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/net/sasl.h"
#include "projections/store.h"

namespace a3::pop3 {

struct Limits {
  std::size_t max_line = 255;  // RFC 2449 4: commands are at most 255 octets
  int max_bad_commands = 10;   // then the connection closes
  // The daemon's rate limit (net::Guard::request): false when the client
  // is over it; the command then gets -ERR [SYS/TEMP] and is not run.
  // QUIT always runs.
  std::function<bool()> allow_request;
};

struct SessionInfo {
  std::string hostname = "localhost";
  std::string remote_ip;
  std::string session_id;
  bool tls_available = false;
  bool tls_active = false;
  bool allow_plaintext_auth = false;
};

// The maildrops in use by a POP3 session, server-wide.
class Maildrops {
 public:
  bool lock(const std::string& account);
  void unlock(const std::string& account);

 private:
  std::mutex mu_;
  std::set<std::string> locked_;
};

using net::AuthRequest;

class Session {
 public:
  Session(SessionInfo info, Limits limits, projections::Store& store, Maildrops& maildrops);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  std::string greeting() const;
  // Feeds bytes (none: go on with buffered commands after the output was
  // sent; commands stop while much output is unsent).
  void receive(std::string_view bytes);
  std::string take_output() { return std::exchange(out_, std::string()); }
  // Whether complete commands wait in the buffer (call receive("") after
  // sending the output).
  bool has_buffered_commands() const { return held_back_; }
  // Client bytes held and not yet answered: bounded by the line limit.
  std::size_t buffered_input() const { return in_.size(); }

  std::optional<AuthRequest> take_auth();

  // QUIT in the TRANSACTION state (RFC 1939 6, UPDATE): the event that
  // expunges the marked messages. The caller executes it (applied, without
  // parking a thread) and hands the result to update_done(), which answers
  // and ends the session; input meanwhile waits.
  std::optional<schemas::Event> take_update();
  void update_done(const boost::system::result<projections::Outcome>& result);
  void auth_result(const std::optional<std::string>& account);
  // The login could not be logged (the store is unavailable): a temporary
  // failure, never a success.
  void auth_unavailable();
  // Valid credentials, but the account has all the sessions it may have.
  void auth_over_limit();
  // No command in hand.
  bool between_commands() const {
    return (state_ == State::authorization || state_ == State::transaction) && in_.empty();
  }

  // A command line is incomplete, or an over-long one is being skipped.
  // Complete lines taken from the input so far.
  std::uint64_t lines_received() const { return lines_; }
  bool partial_line() const { return !in_.empty() || skipping_line_; }

  bool starttls_requested() const { return state_ == State::tls_pending; }
  void tls_established();
  // The verbs of the command table, for tests.
  static std::vector<std::string_view> command_names();

  bool closed() const { return state_ == State::closed; }
  // Commands refused as the client's error so far (for the guard).
  std::uint64_t bad_answers() const { return bad_answers_; }
  bool authenticated() const { return state_ == State::transaction || state_ == State::updating; }

 private:
  enum class State {
    authorization,
    sasl,
    awaiting_auth,
    transaction,
    updating,  // QUIT's expunge is with the caller
    tls_pending,
    closed
  };
  struct Message {
    std::uint32_t uid = 0;
    std::uint64_t size = 0;
    Sha256 blob{};
    bool deleted = false;
  };

  void process();
  // The command table (commands.cc): the state each command is valid in,
  // checked once by command().
  enum class When { any, authorization, transaction };
  struct Args {
    std::string verb;  // upper case
    std::string_view line;
    std::vector<std::string_view> args;
  };
  struct Command {
    std::string_view name;  // the keyword
    void (Session::*run)(const Args& a);
    When when;
  };
  static const Command kCommands[];
  void command(std::string_view line);
  void cmd_capa(const Args& a);
  void cmd_quit(const Args& a);
  void cmd_stls(const Args& a);
  void cmd_utf8(const Args& a);
  void cmd_user(const Args& a);
  void cmd_pass(const Args& a);
  void cmd_auth(const Args& a);
  void cmd_apop(const Args& a);
  void cmd_noop(const Args& a);
  void cmd_stat(const Args& a);
  void cmd_list(const Args& a);
  void cmd_retr(const Args& a);
  void cmd_dele(const Args& a);
  void cmd_rset(const Args& a);
  void ok(std::string_view text) { status("+OK", text); }
  void err(std::string_view text) { status("-ERR", text); }
  // A status line: the answer to the command being metered, if any.
  void status(std::string_view status, std::string_view text);
  struct Metered {
    std::string_view command;  // a name in the command table, never the client's text
    std::chrono::steady_clock::time_point start;
  } metered_;
  void bad(std::string_view text);
  static std::string fmt_line(std::string_view status, std::string_view text);
  std::string capabilities() const;
  bool plaintext_ok() const { return info_.tls_active || info_.allow_plaintext_auth; }
  // The message a number argument names, or nullptr with -ERR sent.
  Message* message(std::string_view arg);
  std::optional<std::string> body(const Message& m);
  void quit();
  void release();  // closes the session and frees the maildrop

  SessionInfo info_;
  Limits limits_;
  projections::Store& store_;
  Maildrops& maildrops_;
  State state_ = State::authorization;
  std::string in_;
  std::string out_;
  bool skipping_line_ = false;
  std::uint64_t lines_ = 0;
  bool held_back_ = false;  // commands wait for the output to be sent
  int bad_commands_ = 0;
  std::uint64_t bad_answers_ = 0;
  std::string user_;  // from USER, waiting for PASS
  std::optional<AuthRequest> pending_auth_;
  std::optional<schemas::Event> pending_update_;
  std::size_t update_count_ = 0;  // messages the update removes
  std::string account_;           // once in TRANSACTION (and the maildrop is locked)
  projections::MailboxRecord inbox_;
  std::vector<Message> messages_;
};

}  // namespace a3::pop3
