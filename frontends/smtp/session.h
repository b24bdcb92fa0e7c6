// The SMTP protocol state machine (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
// ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING, STARTTLS), without I/O: bytes in,
// replies out, so that it is tested over transcripts and fuzzable. The
// network side (Boost.Asio, TLS) feeds it and delivers what it hands over.
//
// Hostile input is bounded here, not in the caller: command lines (512
// octets, RFC 5321 4.5.3.1.4), text lines, message size, recipients, errors
// before disconnect. DATA ends only at <CRLF>.<CRLF>; a bare CR or LF in
// commands or data is refused (configurable), so SMTP smuggling sequences
// ("\n.\n", "\n.\r\n", "\r.\r\n"...) never end a message.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/xtext.h"
#include "frontends/net/sasl.h"
#include "frontends/smtp/address.h"
#include "projections/errors.h"
#include "schemas/event.h"

namespace a3::smtp {

struct Limits {
  std::size_t max_message_size = 50'000'000;
  std::size_t max_recipients = 100;
  std::size_t max_command_line = 512;  // including CRLF
  std::size_t max_text_line = 1000;    // including CRLF
  int max_errors = 20;
  bool reject_bare_lf = true;
  bool enable_vrfy = false;
  // The daemon's rate limit (net::Guard::request): false when the client
  // is over it; the command then gets 451 4.7.0 and is not run. QUIT
  // always runs.
  std::function<bool()> allow_request;
  // The hourly message limits (net::Guard::may_send/sent), by the logged-in
  // user ("" if none): MAIL FROM over the limit gets 451 4.7.0; each
  // accepted message (250) is counted.
  std::function<bool(const std::string& auth_user)> allow_message;
  std::function<void(const std::string& auth_user)> message_accepted;
  // The access lists' sender domains (net::AccessRules::refuses_sender):
  // why MAIL FROM a sender of this domain gets 550 5.7.1, or nullopt.
  // Asked only for clients that have not logged in and are not a
  // trusted relay.
  std::function<std::optional<std::string>(std::string_view domain)> refuses_sender;
};

// What the Policy found out about a recipient's account at RCPT, so that
// delivering the message needs no other lookup.
struct Recipient {
  std::string account;
  schemas::Uuid inbox;            // where the message goes
  schemas::Uuid junk;             // where it goes when DMARC quarantines it (nil: INBOX)
  std::uint64_t quota_bytes = 0;  // 0: unlimited
};

// What the session asks of the store. Implemented over the store API by the
// daemon and by fakes in transcript tests.
class Policy {
 public:
  enum class Rcpt {
    accept,
    unknown_user,
    relay_denied,
    outbound,  // another domain's, and this client may send there (the queue)
    outbound_unavailable,
    temporary_failure,
    mailbox_full,     // over its quota now (RFC 3463 4.2.2)
    exceeds_mailbox,  // the declared size alone is more than its quota
  };
  virtual ~Policy() = default;
  // Whether `to` is deliverable by this client; on accept, the account.
  // `may_relay`: the client authenticated, or is in a trusted network, so
  // other domains may be queued for (never otherwise: no open relay).
  // `declared_size` is MAIL FROM's SIZE= (0 if none): a mailbox it would
  // not fit in refuses the recipient at once.
  virtual Rcpt check_recipient(const Mailbox& to, bool may_relay, std::uint64_t declared_size,
                               Recipient& out) = 0;
  // The last call could not answer without waiting for the disk (see
  // Store::MemoryOnlyReads): the session retries the command later, on a
  // thread that may wait.
  virtual bool would_block() { return false; }
  // Submission: whether the authenticated account may use this sender.
  virtual bool sender_allowed(const std::string& auth_user, const Mailbox& from) {
    (void)auth_user;
    (void)from;
    return true;
  }
};

// A recipient in another domain (RFC 3461 DSN parameters with it).
struct OutboundRecipient {
  Mailbox to;
  std::uint8_t notify = 0;  // schemas::Notify bits; 0: not given
  std::string orcpt;        // "rfc822;bob@example.net" (xtext decoded), "" if none
};

struct Envelope {
  std::string helo;
  std::optional<Path> mail_from;
  std::vector<Mailbox> rcpt_to;
  std::vector<std::string> accounts;      // deduplicated, in the order accepted
  std::vector<Recipient> recipients;      // one per account, in the same order
  std::vector<std::size_t> rcpt_account;  // for each rcpt_to: its index in accounts
  bool smtputf8 = false;
  bool eight_bit = false;
  std::uint64_t declared_size = 0;          // MAIL FROM SIZE= (RFC 1870), 0 if none
  std::vector<OutboundRecipient> outbound;  // other domains' recipients, for the queue
  // Local recipients that asked for NOTIFY=SUCCESS: a "delivered" report
  // goes to the sender with the message (RFC 3461 6.2).
  std::vector<OutboundRecipient> success_reports;
  std::string envid;         // RFC 3461 ENVID (xtext decoded)
  bool ret_headers = false;  // RFC 3461 RET=HDRS
};

struct Message {
  Envelope envelope;
  // Exactly the bytes received (dot-unstuffed), CRLF lines; without what the
  // caller took with take_data() while the message came in.
  std::string data;
};

struct SessionInfo {
  std::string hostname = "localhost";
  std::string remote_ip;
  bool tls_available = false;  // a certificate is configured
  bool tls_active = false;     // implicit TLS, or after STARTTLS
  bool require_auth = false;   // submission: MAIL needs an authenticated client (RFC 6409 4.3)
  bool allow_plaintext_auth = false;  // AUTH without TLS
  bool trusted_relay = false;         // a trusted network: may send to other domains without AUTH
  // Why the client may not use this server (the access lists' countries):
  // it is greeted with 554 and that reason, and every command but QUIT is
  // answered 503 (RFC 5321 3.1). Empty: a normal session.
  std::string refused{};
};

using a3::xtext_decode;
using a3::xtext_encode;

// A SASL exchange the caller must verify (it is slow: Argon2id), after
// which it calls auth_result().
using net::AuthRequest;

class Session {
 public:
  Session(SessionInfo info, Limits limits, Policy& policy);

  std::string greeting() const;  // "220 <host> ESMTP A3Mailer"

  // Feeds received bytes; replies become available from take_output().
  void receive(std::string_view bytes);
  std::string take_output();

  // After the end of a message the session waits (pipelined commands stay
  // buffered) until the caller has made it durable, or failed to.
  std::optional<Message> take_message();

  // While a message comes in (DATA or BDAT), its bytes so far: the caller
  // may take them to stream a large message (Message::data then holds only
  // the rest). Not worth taking once data_refused(): the message will be
  // refused at its end.
  bool receiving_data() const { return state_ == State::data || state_ == State::bdat; }
  // In DATA, reading lines up to the final "." (and then waiting for the
  // delivery): nothing it does until then consults the Policy.
  bool in_data() const { return state_ == State::data; }
  // A command needed a lookup that would have waited for the disk: it is
  // still buffered, and receive("") on a thread that may wait runs it.
  bool retry_elsewhere() const { return retry_; }
  // Bytes received and not processed yet (pipelined commands waiting).
  bool has_pending_input() const { return !in_.empty(); }
  // Client bytes held and not yet answered, and the message so far: bounded
  // by the line limits and the message size limit.
  std::size_t buffered_input() const { return in_.size() + data_.size(); }
  // A message is being received: in DATA, or between BDAT chunks.
  bool in_message() const { return receiving_data() || chunking_; }
  // Between commands and not inside a message: a stopping server may say
  // 421 now (RFC 5321 3.8) and lose nothing a client was told was taken.
  bool between_commands() const {
    return state_ == State::command && !receiving_data() && in_.empty();
  }
  // A command (or SASL response) line is incomplete, or an over-long one
  // is being skipped; message data is not a command line.
  // Complete lines taken from the input so far.
  std::uint64_t lines_received() const { return lines_; }
  bool partial_line() const { return !receiving_data() && (!in_.empty() || skipping_long_line_); }
  // Changes whenever a transaction ends (delivered, refused, RSET...): what
  // was taken from an earlier one is never part of the next message.
  std::uint64_t transaction() const { return transaction_; }
  std::size_t buffered_data() const { return data_.size(); }
  std::string take_data();
  bool data_refused() const;
  const Envelope& envelope() const { return env_; }
  void delivered(bool durable);
  // The message was not delivered, for this reason (smtp/replies.h).
  void not_delivered(projections::errc why);
  // The message was refused by a policy, with this reply ("550 5.7.1 ...").
  // `reason` is the metrics' class of the refusal (a3_smtp_messages_total).
  void refused(std::string_view reply_line, std::string_view reason = "policy");

  // After "220 Ready to start TLS" the caller handshakes; everything received
  // after the STARTTLS line was discarded (RFC 3207 4.2).
  bool starttls_requested() const { return state_ == State::tls_pending; }
  void tls_established();

  void set_authenticated(std::string user) { auth_user_ = std::move(user); }

  // RFC 4954: after AUTH, the session waits for the caller's verdict.
  std::optional<AuthRequest> take_auth();
  void auth_result(bool ok, const std::string& account);
  // The credentials could not be checked or the login not logged: 454.
  void auth_unavailable();
  const std::string& authenticated_user() const { return auth_user_; }

  bool closed() const { return state_ == State::closed; }
  // Offenses so far, for the guard: error replies to the client's
  // commands (5xx) other than failed logins (the guard counts those from
  // the login itself) and RCPT TO an unknown user, and those.
  std::uint64_t protocol_errors() const {
    return static_cast<std::uint64_t>(errors_) - unknown_recipients_ - auth_failures_;
  }
  std::uint64_t unknown_recipients() const { return unknown_recipients_; }

  // The verbs of the command table, for tests.
  static std::vector<std::string_view> command_names();

 private:
  enum class State {
    command,
    data,
    bdat,
    awaiting_delivery,
    tls_pending,
    auth_plain,     // waiting for the PLAIN response line
    auth_user,      // LOGIN: waiting for the user name
    auth_pass,      // LOGIN: waiting for the password
    awaiting_auth,  // the caller verifies
    closed
  };

  void process();
  void command(std::string_view line);
  void data_line(std::string_view line, bool crlf);
  void finish_message();
  void reply(std::string_view text);
  void error(std::string_view text);  // counts toward max_errors
  void reset_transaction();

  // The command table (session.cc): each verb's handler, in
  // commands/<verb>.cc, and what the dispatcher checks before it runs.
  struct Command {
    std::string_view name;  // the verb
    void (Session::*run)(std::string_view arg);
    bool needs_helo;    // 503 before EHLO/HELO (RFC 5321 4.1.4)
    bool needs_mail;    // 503 outside a mail transaction
    bool no_arguments;  // 501 with arguments
  };
  static const Command kCommands[];

  void cmd_ehlo(std::string_view arg);
  void cmd_helo(std::string_view arg);
  void cmd_mail(std::string_view arg);
  void cmd_rcpt(std::string_view arg);
  void cmd_data(std::string_view arg);
  void cmd_bdat(std::string_view arg);
  void cmd_rset(std::string_view arg);
  void cmd_noop(std::string_view arg);
  void cmd_quit(std::string_view arg);
  void cmd_vrfy(std::string_view arg);
  void cmd_expn(std::string_view arg);
  void cmd_help(std::string_view arg);
  void cmd_starttls(std::string_view arg);
  void cmd_auth(std::string_view arg);
  void ehlo(std::string_view arg, bool extended);
  void sasl_line(std::string_view line);
  void plain_response(std::string_view b64);
  bool auth_offered() const;

  SessionInfo info_;
  Limits limits_;
  Policy& policy_;
  State state_ = State::command;
  std::string in_;
  std::string out_;
  int errors_ = 0;
  std::uint64_t unknown_recipients_ = 0;
  std::uint64_t auth_failures_ = 0;
  bool skipping_long_line_ = false;
  std::uint64_t lines_ = 0;
  bool discard_input_ = false;  // STARTTLS: drop the rest of the buffer
  bool retry_ = false;          // the current command waits for a thread that may block
  std::string auth_user_;

  Envelope env_;
  bool have_helo_ = false;
  bool chunking_ = false;  // a BDAT transaction is open
  std::size_t bdat_left_ = 0;
  bool bdat_last_ = false;
  bool bdat_discard_ = false;  // reading a refused chunk to stay in sync
  std::string data_;
  std::size_t data_size_ = 0;  // of the whole message, taken bytes included
  std::uint64_t transaction_ = 0;
  bool data_too_big_ = false, data_bare_lf_ = false, data_long_line_ = false;
  // The header of a DATA message so far: Received: fields counted (a mail
  // loop, RFC 5321 6.3), until the empty line.
  static constexpr int kMaxHops = 100;  // RFC 5321 6.3 suggests 100
  bool data_in_header_ = true;
  int data_hops_ = 0;
  std::string hop_line_;  // the start of the header line being read
  void count_hops(std::string_view bytes);
  bool line_start_ = true;  // the previous data line ended with CRLF
  std::optional<Message> pending_;
  std::size_t pending_bytes_ = 0;
  // The command being answered, for the metrics: its name in the command
  // table (never the client's text) and when it arrived.
  struct Metered {
    std::string_view command;
    std::chrono::steady_clock::time_point start;
  } metered_;
  std::optional<AuthRequest> auth_;
  std::string login_user_;
};

}  // namespace a3::smtp
