#include "projections/audit/audit_projector.h"

#include <arpa/inet.h>

#include <chrono>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/ascii.h"
#include "common/json.h"
#include "mime/mime.h"
#include "projections/audit/pg.h"
#include "projections/mailbox_projector.h"
#include "schemas/codec.h"
#include "schemas/event_json.h"

namespace a3::projections::audit {

namespace {

using namespace schemas;
using std::chrono::milliseconds;

// Versioned migrations: append new ones, never edit an applied one.
struct Migration {
  int version;
  const char* sql;
};
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE audit_events (
  partition      integer     NOT NULL,
  log_offset     bigint      NOT NULL,
  event_id       uuid        NOT NULL,
  at             timestamptz NOT NULL,
  kind           text        NOT NULL,
  account        text        NOT NULL,
  protocol       text        NOT NULL,
  actor_user     text,
  remote_ip      inet,
  session_id     text,
  mailbox_id     uuid,
  message_id     text,
  envelope_from  text,
  envelope_to    text[],
  size           bigint,
  flags          text[],
  uids           bigint[],
  details        jsonb       NOT NULL,
  PRIMARY KEY (partition, log_offset)
);
CREATE INDEX audit_events_account_at ON audit_events (account, at);
CREATE INDEX audit_events_kind_at ON audit_events (kind, at);
CREATE INDEX audit_events_remote_ip_at ON audit_events (remote_ip, at);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_message_id ON audit_events (message_id);
-- Mailbox names as events last named them, to show names in audit queries.
CREATE TABLE audit_mailboxes (
  mailbox_id uuid PRIMARY KEY,
  account    text NOT NULL,
  name       text NOT NULL,
  deleted    boolean NOT NULL DEFAULT false
);
-- The next log offset to project, per partition; moves in the same
-- transaction as the rows.
CREATE TABLE audit_positions (
  partition   integer PRIMARY KEY,
  next_offset bigint  NOT NULL
);
)sql"},
    // Timelines (docs/recovery.md): a restore starts the next one where it
    // cut the log. Rows of a discarded history stay, marked superseded_by
    // the timeline that replaced them; the rows of the new history reuse
    // their offsets.
    {2, R"sql(
ALTER TABLE audit_events ADD COLUMN timeline integer NOT NULL DEFAULT 1;
ALTER TABLE audit_events ADD COLUMN superseded_by integer;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
ALTER TABLE audit_events ADD PRIMARY KEY (timeline, partition, log_offset);
CREATE INDEX audit_events_current ON audit_events (partition, log_offset)
  WHERE superseded_by IS NULL;
CREATE TABLE audit_timelines (
  timeline    integer     PRIMARY KEY,
  branched_at jsonb       NOT NULL,  -- {"partition": offset} where the log was cut
  began       timestamptz NOT NULL,
  noted       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO audit_timelines VALUES (1, '{}', now(), now());
)sql"},
};

std::optional<std::string> ip_or_null(const std::string& ip) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, ip.c_str(), buf) == 1 || inet_pton(AF_INET6, ip.c_str(), buf) == 1) {
    return ip;
  }
  return std::nullopt;
}

std::string timestamp(std::int64_t ms) {
  const std::chrono::sys_time<milliseconds> t{milliseconds(ms)};
  return fmt::format("{:%Y-%m-%d %H:%M:%S}+00", t);
}

std::vector<std::string> uid_strings(const std::vector<std::uint32_t>& uids) {
  std::vector<std::string> out;
  for (auto u : uids)
    out.push_back(std::to_string(u));
  return out;
}

std::vector<std::string> clean(const std::vector<std::string>& v) {
  std::vector<std::string> out;
  for (const auto& s : v)
    out.push_back(sanitize_utf8(s));
  return out;
}

// One row of audit_events in COPY text format, ending with a newline.
struct Row {
  std::optional<std::string> mailbox_id, message_id, envelope_from, envelope_to, size, flags, uids;
};

struct RowFields {
  Row& r;
  void operator()(const MessageAppended& e) {
    r.mailbox_id = e.mailbox_id.str();
    r.message_id = mime::message_id(e.raw);
    if (!r.message_id && e.staged && !e.staged->message_id.empty())
      r.message_id = sanitize_utf8(e.staged->message_id);
    r.size = std::to_string(e.size());
    r.flags = array_literal(clean(e.flags));
    if (e.smtp) {
      r.envelope_from = sanitize_utf8(e.smtp->mail_from);
      r.envelope_to = array_literal(clean(e.smtp->rcpt_to));
    }
  }
  void operator()(const FlagsChanged& e) {
    r.mailbox_id = e.mailbox_id.str();
    r.flags = array_literal(clean(e.flags));
    r.uids = array_literal(uid_strings(e.uids));
  }
  void operator()(const MessagesExpunged& e) {
    r.mailbox_id = e.mailbox_id.str();
    r.uids = array_literal(uid_strings(e.uids));
  }
  void operator()(const MessagesCopied& e) {
    r.mailbox_id = e.from_mailbox_id.str();
    r.uids = array_literal(uid_strings(e.uids));
  }
  void operator()(const MessagesMoved& e) {
    r.mailbox_id = e.from_mailbox_id.str();
    r.uids = array_literal(uid_strings(e.uids));
  }
  void operator()(const MailboxCreated& e) { r.mailbox_id = e.mailbox_id.str(); }
  void operator()(const MailboxRenamed& e) { r.mailbox_id = e.mailbox_id.str(); }
  void operator()(const MailboxDeleted& e) { r.mailbox_id = e.mailbox_id.str(); }
  void operator()(const SmtpRejected& e) {
    r.envelope_from = sanitize_utf8(e.mail_from);
    if (!e.rcpt_to.empty()) r.envelope_to = array_literal({sanitize_utf8(e.rcpt_to)});
  }
  void operator()(const BodyChunk& e) { r.size = std::to_string(e.data.size()); }
  void operator()(const OutboundQueued& e) {
    r.message_id = mime::message_id(e.raw);
    if (!r.message_id && e.staged && !e.staged->message_id.empty())
      r.message_id = sanitize_utf8(e.staged->message_id);
    r.envelope_from = sanitize_utf8(e.mail_from);
    std::vector<std::string> to;
    for (const auto& rcpt : e.recipients)
      to.push_back(rcpt.address);
    r.envelope_to = array_literal(clean(to));
    r.size = std::to_string(e.raw.size() + (e.staged ? e.staged->size : 0));
  }
  // Attempts and outcomes: who they were for (host and reply are in the
  // event's JSON).
  void operator()(const DeliveryAttempted& e) {
    r.envelope_to = array_literal(clean(e.recipients));
  }
  void operator()(const Delivered& e) { r.envelope_to = array_literal(clean(e.recipients)); }
  void operator()(const Deferred& e) { r.envelope_to = array_literal(clean(e.recipients)); }
  void operator()(const Bounced& e) { r.envelope_to = array_literal(clean(e.recipients)); }
  void operator()(const Expired& e) { r.envelope_to = array_literal(clean(e.recipients)); }
  template <typename T>
  void operator()(const T&) {}
};

void append_row(std::string& out, const Event& e, eventlog::Position pos, int timeline) {
  Row r;
  std::visit(RowFields{r}, e.body);
  const std::optional<std::string> fields[] = {
      std::to_string(pos.partition),
      std::to_string(pos.offset),
      e.id.str(),
      timestamp(e.at_ms),
      std::string(kind_name(e.body)),
      sanitize_utf8(e.account),
      std::string(to_string(e.actor.protocol)),
      e.actor.user.empty() ? std::nullopt : std::optional(sanitize_utf8(e.actor.user)),
      ip_or_null(e.actor.remote_ip),
      e.actor.session_id.empty() ? std::nullopt : std::optional(sanitize_utf8(e.actor.session_id)),
      r.mailbox_id,
      r.message_id,
      r.envelope_from,
      r.envelope_to,
      r.size,
      r.flags,
      r.uids,
      to_json(e),  // already valid UTF-8 JSON; hashes and bodies left out
      std::to_string(timeline),
      std::nullopt,  // superseded_by
  };
  for (std::size_t i = 0; i < std::size(fields); ++i) {
    if (i) out.push_back('\t');
    copy_field(out, fields[i]);
  }
  out.push_back('\n');
}

}  // namespace

boost::system::result<void, Failure> migrate(Connection& db) {
  if (auto e = db.exec("CREATE TABLE IF NOT EXISTS a3_schema_migrations (version integer PRIMARY "
                       "KEY, applied_at timestamptz NOT NULL DEFAULT now())")) {
    return Failure{*e};
  }
  for (const auto& m : kMigrations) {
    std::string err;
    auto r = db.query("SELECT 1 FROM a3_schema_migrations WHERE version = $1",
                      {std::to_string(m.version)}, &err);
    if (!r) return Failure{err};
    if (PQntuples(r.get()) > 0) continue;
    // Each migration and its record commit together.
    if (auto e = db.exec(fmt::format("BEGIN; {} INSERT INTO a3_schema_migrations (version) VALUES "
                                     "({}); COMMIT;",
                                     m.sql, m.version))) {
      db.exec("ROLLBACK");
      return Failure{fmt::format("migration {}: {}", m.version, *e)};
    }
    spdlog::info("audit: applied migration {}", m.version);
  }
  return {};
}

AuditProjector::AuditProjector(eventlog::EventLog& log, Options options)
    : options_(std::move(options)),
      runner_(
          log, *this,
          RunnerOptions{options_.max_batch, std::chrono::milliseconds(250), options_.max_backoff}) {
}

AuditProjector::~AuditProjector() {
  stop();
}

void AuditProjector::start() {
  runner_.start();
}

void AuditProjector::stop() {
  runner_.stop();
}

boost::system::result<void, Failure> AuditProjector::catch_up() {
  if (auto f = runner_.catch_up()) return *f;
  return {};
}

std::string AuditProjector::status() const {
  return runner_.status();
}

std::map<std::int32_t, std::int64_t> AuditProjector::positions() const {
  return runner_.positions();
}

// (Re)connects, migrates, and reads the committed positions: after an
// outage, whatever was not committed is read again.
boost::system::result<std::map<std::int32_t, std::int64_t>, Failure> AuditProjector::open() {
  db_ = std::make_unique<Connection>(options_.url);
  if (!db_->ok()) return Failure{db_->error()};
  if (auto m = migrate(*db_); !m) return m.error();
  std::string err;
  if (auto t = follow_timeline(); !t) return t.error();
  auto r = db_->query("SELECT partition, next_offset FROM audit_positions", {}, &err);
  if (!r) return Failure{err};
  std::map<std::int32_t, std::int64_t> stored;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    stored[std::atoi(PQgetvalue(r.get(), i, 0))] = std::atoll(PQgetvalue(r.get(), i, 1));
  }
  purge();  // also when nothing new comes: at every (re)connection
  return stored;
}

// The store's timeline, and the trail's: when the store is on a newer one
// (a restore cut the log), the trail notes it, marks the rows of the cut
// history superseded and moves its positions back to the cut, all in one
// transaction; the new history's events are then audited at those offsets.
boost::system::result<void, Failure> AuditProjector::follow_timeline() {
  std::vector<Timeline> history;
  try {
    history = read_timelines(options_.data_dir / "timeline");
  } catch (const std::exception& e) {
    return Failure{e.what()};
  }
  timeline_ = current_timeline(history);
  std::string err;
  auto r = db_->query("SELECT coalesce(max(timeline), 1) FROM audit_timelines", {}, &err);
  if (!r) return Failure{err};
  const int known = std::atoi(PQgetvalue(r.get(), 0, 0));
  if (known > timeline_.id) {
    return Failure{fmt::format(
        "the audit trail is on timeline {} but this store on timeline {}: a store restored from "
        "elsewhere? (data_dir/timeline)",
        known, timeline_.id)};
  }
  // Each timeline the trail does not know yet, oldest first: two restores
  // while PostgreSQL was away are two cuts.
  for (const auto& t : history) {
    if (t.id <= known) continue;
    std::string branch = "{";
    std::string sql = "BEGIN;";
    for (const auto& [p, offset] : t.branched_at) {
      branch += fmt::format("{}\"{}\":{}", branch.size() > 1 ? "," : "", p, offset);
      sql += fmt::format(
          "UPDATE audit_events SET superseded_by = {0} WHERE partition = {1} AND log_offset >= "
          "{2} AND superseded_by IS NULL;"
          "UPDATE audit_positions SET next_offset = LEAST(next_offset, {2}) WHERE partition = {1};",
          t.id, p, offset);
    }
    branch += "}";
    sql += fmt::format(
        "INSERT INTO audit_timelines (timeline, branched_at, began) VALUES ({}, '{}', "
        "to_timestamp({}::double precision / 1000)); COMMIT;",
        t.id, branch, t.at_ms);
    if (auto e = db_->exec(sql)) {
      db_->exec("ROLLBACK");
      return Failure{*e};
    }
    spdlog::info("audit: timeline {} began at {} (a restore); the rows after it are superseded",
                 t.id, branch);
  }
  return {};
}

// The guide's audit retention: rows past it go, an hour apart at most. A
// failure is only logged: the next commit tries again.
void AuditProjector::purge() {
  if (options_.retention_days <= 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (last_purge_ != std::chrono::steady_clock::time_point{} &&
      now - last_purge_ < std::chrono::hours(1))
    return;
  if (auto err =
          db_->exec(fmt::format("DELETE FROM audit_events WHERE at < now() - interval '{} days'",
                                options_.retention_days))) {
    spdlog::warn("audit: deleting rows older than {} days failed: {}", options_.retention_days,
                 *err);
    return;  // tried again at the next commit
  }
  last_purge_ = now;
}

// Keeps audit_mailboxes' names current, so queries can show names.
void AuditProjector::mailbox_sql(std::string& out, const schemas::Event& e) {
  if (const auto* c = std::get_if<MailboxCreated>(&e.body)) {
    out += fmt::format(
        "INSERT INTO audit_mailboxes VALUES ('{}', {}, {}, false) ON CONFLICT (mailbox_id) DO "
        "NOTHING;",
        c->mailbox_id.str(), db_->literal(sanitize_utf8(e.account)),
        db_->literal(sanitize_utf8(c->name)));
  } else if (const auto* r = std::get_if<MailboxRenamed>(&e.body)) {
    out += fmt::format("UPDATE audit_mailboxes SET name = {} WHERE mailbox_id = '{}';",
                       db_->literal(sanitize_utf8(r->new_name)), r->mailbox_id.str());
  } else if (const auto* d = std::get_if<MailboxDeleted>(&e.body)) {
    out += fmt::format("UPDATE audit_mailboxes SET deleted = true WHERE mailbox_id = '{}';",
                       d->mailbox_id.str());
  } else if (const auto* a = std::get_if<AccountCreated>(&e.body)) {
    // The default mailboxes the mailbox projection creates with the account.
    for (const char* name : {"INBOX", "Sent", "Drafts", "Trash", "Junk"}) {
      out += fmt::format(
          "INSERT INTO audit_mailboxes VALUES ('{}', {}, '{}', false) ON CONFLICT (mailbox_id) DO "
          "NOTHING;",
          default_mailbox_id(e.id, name).str(), db_->literal(sanitize_utf8(e.account)), name);
    }
    (void)a;
  }
}

Projection::Applied AuditProjector::apply(std::int32_t p, std::vector<eventlog::Record>& records) {
  const std::int64_t from = records.front().position.offset;
  std::string rows, mailboxes;
  std::int64_t next = from;
  std::optional<Failure> corrupt;
  for (const auto& rec : records) {
    auto e = schemas::decode(rec.value);
    if (!e) {
      // Never skip an event: stay here until an operator repairs the log.
      corrupt = Failure{
          fmt::format("the event at {} is corrupt: {}", rec.position.str(), e.error().detail)};
      break;
    }
    append_row(rows, *e, rec.position, timeline_.id);
    mailbox_sql(mailboxes, *e);
    next = rec.position.offset + 1;
  }
  if (next == from) return {from, corrupt};
  // Rows and position in one transaction: all or nothing.
  std::optional<std::string> err = db_->exec("BEGIN");
  if (!err) err = db_->copy_in("COPY audit_events FROM STDIN", rows);
  if (!err && !mailboxes.empty()) err = db_->exec(mailboxes);
  if (!err) {
    err = db_->exec(fmt::format(
        "INSERT INTO audit_positions VALUES ({}, {}) ON CONFLICT (partition) DO UPDATE SET "
        "next_offset = EXCLUDED.next_offset",
        p, next));
  }
  if (!err) err = db_->exec("COMMIT");
  if (!err) purge();
  if (err) {
    // PostgreSQL down or restarting: the mail service goes on; the runner
    // retries later from the last committed position.
    db_->exec("ROLLBACK");
    return {from, Failure{*err}};
  }
  return {next, corrupt};
}

}  // namespace a3::projections::audit
