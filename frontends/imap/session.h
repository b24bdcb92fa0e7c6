// One IMAP connection as a state machine with no I/O (RFC 9051 and RFC 3501
// with the extensions listed in CAPABILITY): bytes in, responses out.
// Commands read the store; a mutation hands its events to the caller
// (take_write) and the session waits, pipelined commands buffered, until
// the caller brings the result back (write_done): the command is answered
// only once its events are applied (read-your-writes), and no thread waits
// meanwhile (ADR 0010).
//
// The caller (server.cc) runs the session on a strand of a pool, never on
// an I/O thread (its reads touch RocksDB), awaits the writes, performs
// STARTTLS and the password check (penalty first, then Argon2id
// off-thread), and calls idle_poll() when the selected mailbox changed
// during IDLE.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/imap/parser.h"
#include "frontends/net/sasl.h"
#include "projections/store.h"

namespace a3::imap {

struct Limits {
  std::size_t max_line_before_auth = 8 * 1024;
  std::size_t max_line_after_auth = 64 * 1024;
  std::size_t append_limit = 50'000'000;
  int max_bad_commands = 20;  // then BYE
  // A SEARCH still running after this gives up (NO [LIMIT]); 0: never.
  std::chrono::seconds search_timeout{0};
  // The daemon's rate limit (net::Guard::request): false when the client
  // is over it; the command then gets NO [LIMIT] and is not run. LOGOUT
  // always runs.
  std::function<bool()> allow_request;
};

struct SessionInfo {
  std::string hostname = "localhost";
  std::string remote_ip;
  std::string session_id;
  bool tls_available = false;  // a certificate is configured (STARTTLS offered)
  bool tls_active = false;     // implicit TLS, or after STARTTLS
  bool allow_plaintext_auth = false;
};

// One mailbox's messages (flags, MODSEQ, sizes...) as of `modseq`, by UID.
struct MessageIndex {
  std::uint64_t modseq = 0;
  std::vector<projections::MessageRecord> messages;
  const projections::MessageRecord* find(std::uint32_t uid) const;
};

// State shared by the sessions of one server: which messages were already
// announced as \Recent (RFC 3501 2.3.2: to one session only), and the
// message indexes of the mailboxes in use, kept up to date from the view's
// CONDSTORE index (only what changed since is read).
class Shared {
 public:
  std::shared_ptr<const MessageIndex> messages(const projections::Store& store,
                                               const projections::MailboxRecord& box);

  // Claims for the caller the UIDs of `mailbox` not claimed before, up to
  // `uidnext`: returns the first of them (the caller's recent UIDs are
  // [first, uidnext); empty if first == uidnext).
  std::uint32_t claim_recent(const schemas::Uuid& mailbox, std::uint32_t uidnext);

 private:
  static constexpr std::size_t kCachedMailboxes = 1024;
  std::mutex mu_;
  std::map<schemas::Uuid, std::uint32_t> claimed_;  // mailbox -> next UID not yet claimed
  struct Cached {
    std::shared_ptr<const MessageIndex> index;
    std::uint64_t used = 0;
  };
  std::map<schemas::Uuid, Cached> cache_;  // guarded by mu_
  std::uint64_t clock_ = 0;
};

using net::AuthRequest;

class Session {
 public:
  Session(SessionInfo info, Limits limits, projections::Store& store, Shared& shared);

  std::string greeting() const;

  // Feeds bytes; receive("") goes on with pipelined commands that waited
  // while much output was unsent (has_buffered_commands()).
  void receive(std::string_view bytes);
  std::string take_output() { return std::exchange(out_, std::string()); }
  bool has_buffered_commands() const { return held_back_; }
  // Client bytes held and not yet answered (the line or command being
  // assembled, pipelined input): bounded by the limits.
  std::size_t buffered_input() const { return in_.size() + command_.size(); }

  // A login waiting for its password check; the session waits (pipelined
  // commands stay buffered) until auth_result().
  std::optional<AuthRequest> take_auth();
  void auth_result(const std::optional<std::string>& account);
  // The login could not be logged (the store is unavailable): a temporary
  // failure, never a success.
  void auth_unavailable();
  // Valid credentials, but the account has all the sessions it may have.
  void auth_over_limit();

  // The events a command waits for, in order. The caller appends them
  // (Store::execute, with `wait`) and hands the result to write_done(),
  // which answers the command and goes on with pipelined ones; a command
  // may need several writes in turn (APPEND's messages), each taken once
  // the one before is done.
  struct Write {
    std::vector<schemas::Event> events;
    projections::Store::Wait wait = projections::Store::Wait::applied;
  };
  std::optional<Write> take_write();
  void write_done(const projections::Store::Executed& result);

  // After "OK Begin TLS negotiation now" the caller handshakes; input after
  // the STARTTLS line was discarded (RFC 9051 6.2.1).
  bool starttls_requested() const { return state_ == State::tls_pending; }
  void tls_established();

  bool idling() const { return idling_; }
  // No command in hand (an IDLE counts as none: BYE may end it).
  bool between_commands() const {
    return state_ == State::command && in_.empty() && command_.empty();
  }
  // A command line is incomplete (not a literal's octets), or an over-long
  // one is being skipped.
  // Complete lines taken from the input so far.
  std::uint64_t lines_received() const { return lines_; }
  bool partial_line() const { return state_ != State::literal && (!in_.empty() || skipping_line_); }
  // During IDLE: untagged responses for changes since the last report.
  void idle_poll();

  bool closed() const { return state_ == State::closed; }
  // Commands answered BAD so far (for the guard).
  std::uint64_t bad_answers() const { return bad_answers_; }
  bool authenticated() const { return !account_.empty(); }
  const std::string& account() const { return account_; }
  // The selected mailbox, if any (for change notifications).
  std::optional<schemas::Uuid> selected_mailbox() const;

 private:
  enum class State { command, literal, sasl, awaiting_auth, awaiting_store, tls_pending, closed };

  struct Selected {
    projections::MailboxRecord box;
    bool read_only = false;
    std::vector<std::uint32_t> uids;  // sequence number - 1 -> UID
    std::uint64_t modseq = 0;         // changes up to here were reported
    std::uint32_t uidnext = 1;
    // UID ranges [first, last) claimed as \Recent by this session (rev1).
    std::vector<std::pair<std::uint32_t, std::uint32_t>> recent;
    bool is_recent(std::uint32_t uid) const {
      for (const auto& [a, b] : recent) {
        if (uid >= a && uid < b) return true;
      }
      return false;
    }
    std::set<std::uint64_t> own_modseqs;  // our own changes, already answered
    std::vector<std::uint32_t> saved;     // SEARCHRES "$", as UIDs
    std::set<std::string> keywords;       // announced in FLAGS
    bool expunges_pending = false;        // held back during FETCH/STORE/SEARCH
  };

  // Framing
  void process();
  void dispatch(const std::string& command);
  std::size_t max_line() const;

  // Responses
  void untagged(std::string_view text);
  void tagged(const std::string& tag, std::string_view status, std::string_view text);
  std::string capabilities() const;
  void bad(const std::string& tag, std::string_view text);

  // The command table (dispatch.cc): one entry per command, checked once
  // by the dispatcher. Each handler is in commands/<verb>.cc.
 public:
  enum class When { any, not_authenticated, authenticated, selected };
  struct Command {
    std::string_view name;  // upper case; "UID FETCH" for the UID forms
    void (Session::*run)(const std::string& tag, Parser& p);
    When when;
    // The changes other sessions made are reported before the tagged reply.
    bool reports_changes;
    // No EXPUNGE may be sent while it runs (RFC 9051 7.5.1).
    bool holds_expunges;
  };
  static std::vector<std::string_view> command_names();

 private:
  static const Command kCommands[];

  void cmd_capability(const std::string& tag, Parser& p);
  void cmd_noop(const std::string& tag, Parser& p);
  void cmd_logout(const std::string& tag, Parser& p);
  void cmd_id(const std::string& tag, Parser& p);
  void cmd_starttls(const std::string& tag, Parser& p);
  void cmd_login(const std::string& tag, Parser& p);
  void cmd_authenticate(const std::string& tag, Parser& p);
  void sasl_plain(const std::string& response);
  void cmd_enable(const std::string& tag, Parser& p);
  void cmd_select(const std::string& tag, Parser& p);
  void cmd_examine(const std::string& tag, Parser& p);
  void cmd_create(const std::string& tag, Parser& p);
  void cmd_delete(const std::string& tag, Parser& p);
  void cmd_rename(const std::string& tag, Parser& p);
  void cmd_subscribe(const std::string& tag, Parser& p);
  void cmd_unsubscribe(const std::string& tag, Parser& p);
  void cmd_list(const std::string& tag, Parser& p);
  void cmd_lsub(const std::string& tag, Parser& p);
  void cmd_namespace(const std::string& tag, Parser& p);
  void cmd_status(const std::string& tag, Parser& p);
  void cmd_append(const std::string& tag, Parser& p);
  void cmd_idle(const std::string& tag, Parser& p);
  void cmd_getquota(const std::string& tag, Parser& p);
  void cmd_getquotaroot(const std::string& tag, Parser& p);
  void cmd_setquota(const std::string& tag, Parser& p);
  void cmd_check(const std::string& tag, Parser& p);
  void cmd_close(const std::string& tag, Parser& p);
  void cmd_unselect(const std::string& tag, Parser& p);
  void cmd_expunge(const std::string& tag, Parser& p);
  void cmd_uid_expunge(const std::string& tag, Parser& p);
  void cmd_search(const std::string& tag, Parser& p);
  void cmd_uid_search(const std::string& tag, Parser& p);
  void cmd_fetch(const std::string& tag, Parser& p);
  void cmd_uid_fetch(const std::string& tag, Parser& p);
  void cmd_store(const std::string& tag, Parser& p);
  void cmd_uid_store(const std::string& tag, Parser& p);
  void cmd_copy(const std::string& tag, Parser& p);
  void cmd_uid_copy(const std::string& tag, Parser& p);
  void cmd_move(const std::string& tag, Parser& p);
  void cmd_uid_move(const std::string& tag, Parser& p);

  // What the commands and their variants share.
  void select_mailbox(const std::string& tag, Parser& p, bool read_only);
  void change_subscription(const std::string& tag, Parser& p, bool subscribe);
  void list_mailboxes(const std::string& tag, Parser& p, bool lsub);
  void close_mailbox(const std::string& tag, Parser& p, bool expunge);
  void expunge_messages(const std::string& tag, Parser& p, bool uid);
  void search_messages(const std::string& tag, Parser& p, bool uid);
  void fetch_messages(const std::string& tag, Parser& p, bool uid);
  void store_flags(const std::string& tag, Parser& p, bool uid);
  void copy_messages(const std::string& tag, Parser& p, bool uid, bool move);
  // RFC 9208 quota resources of the account, as "STORAGE used limit" in KiB.
  std::string quota_resources() const;

  // Helpers
  std::string decode_name(const std::string& wire) const;  // client's name -> stored UTF-8
  std::string encode_name(const std::string& name) const;  // stored -> client's form
  std::optional<projections::MailboxRecord> find_mailbox(const std::string& name) const;
  // Appends `bodies` as events by the logged-in user, in order (one
  // partition: each is applied after the one before), and once all are
  // applied runs `then` with their outcomes. If the store cannot take them,
  // `tag` is answered NO with the reason (RFC 5530 codes).
  using Outcomes = std::vector<projections::Outcome>;
  void execute(const std::string& tag, std::vector<schemas::Body> bodies,
               std::function<void(const Outcomes&)> then);
  void execute(const std::string& tag, schemas::Body body,
               std::function<void(const projections::Outcome&)> then);
  // The write underneath: `failed` runs instead of `then` on an error.
  void write(std::vector<schemas::Event> events, projections::Store::Wait wait,
             std::function<void(const Outcomes&)> then,
             std::function<void(projections::errc)> failed);
  schemas::Actor actor() const;
  // STORE's untagged FETCH and tagged reply, once the change is applied.
  void answer_store(const std::string& tag, const projections::Outcome& outcome,
                    const std::vector<std::uint32_t>& uids, bool uid, bool silent);
  // APPEND's messages, one write each (RFC 3502: all or nothing).
  struct AppendJob;
  void append_next(std::shared_ptr<AppendJob> job);
  void append_failed(std::shared_ptr<AppendJob> job, std::string_view reply);
  // Untagged EXISTS/RECENT/EXPUNGE/VANISHED/FETCH for changes by others.
  // Expunges are held back while `allow_expunge` is false (RFC 9051 7.5.1).
  void report_changes(bool allow_expunge);
  // The UIDs a set names (sequence numbers or UIDs), in ascending order.
  std::vector<std::uint32_t> resolve(const SequenceSet& set, bool uid) const;
  std::uint32_t seq_of(std::uint32_t uid) const;  // 0 if unknown
  void announce_flags();
  void note_flags(const std::vector<std::string>& flags);
  void enable_condstore();
  // The selected mailbox's messages as they are now.
  std::shared_ptr<const MessageIndex> current();
  void expunged(const std::vector<std::uint32_t>& uids);  // announce and forget
  std::string status_items(const projections::MailboxRecord& box,
                           const std::vector<std::string>& items);

  SessionInfo info_;
  Limits limits_;
  projections::Store& store_;
  Shared& shared_;

  State state_ = State::command;
  std::string in_;
  std::string out_;
  std::string command_;  // the command being assembled (lines and literals)
  std::size_t literal_left_ = 0;
  bool skipping_line_ = false;  // the rest of an over-long line is dropped
  std::uint64_t lines_ = 0;
  bool held_back_ = false;  // pipelined commands wait for the output
  std::string sasl_tag_;
  std::optional<AuthRequest> pending_auth_;
  std::string pending_tag_;
  int bad_commands_ = 0;
  std::uint64_t bad_answers_ = 0;
  // The write the running command waits for, and what follows it.
  std::optional<Write> pending_write_;
  bool write_taken_ = false;
  std::function<void(const Outcomes&)> then_;
  std::function<void(projections::errc)> failed_;

  std::string account_;
  bool rev2_ = false, utf8_ = false, condstore_ = false, qresync_ = false;
  std::optional<Selected> sel_;
  bool idling_ = false;
  std::string idle_tag_;
  // Whether the tagged response of the running command is preceded by
  // the changes other sessions made, and whether expunges may be among
  // them (RFC 9051 7.5.1).
  bool report_after_ = false, expunge_ok_ = true;
  // The command being answered, for the metrics: a name from the command
  // table (never the client's text), when it arrived, and its tag.
  struct Metered {
    std::string_view command;
    std::chrono::steady_clock::time_point start;
    std::string tag;
  } metered_;
};

}  // namespace a3::imap
