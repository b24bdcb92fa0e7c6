// APPEND: RFC 9051 6.3.12 APPEND, RFC 3502 MULTIAPPEND, RFC 4315 APPENDUID.
//
// append = "APPEND" SP mailbox 1*append-message

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/clock.h"
#include "frontends/imap/replies.h"
#include "frontends/imap/session.h"
#include "frontends/net/staged.h"

namespace a3::imap {

using projections::OutcomeCode;

// One APPEND's messages, appended one write each, in order.
struct Session::AppendJob {
  struct One {
    std::vector<std::string> flags;
    std::int64_t date = 0;
    std::string raw;
  };
  std::string tag;
  schemas::Uuid mailbox;
  std::vector<One> messages;
  std::size_t next = 0;             // the message to append now
  std::vector<std::uint32_t> uids;  // of those appended
  std::uint32_t uidvalidity = 0;
};

void Session::cmd_append(const std::string& tag, Parser& p) {
  p.sp();
  const std::string name = decode_name(p.mailbox());
  auto job = std::make_shared<AppendJob>();
  job->tag = tag;
  std::size_t total = 0;
  do {
    p.sp();
    AppendJob::One m;
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
    job->messages.push_back(std::move(m));
  } while (!p.at_end() && p.peek() == ' ');  // RFC 3502 MULTIAPPEND
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (total > limits_.append_limit) return tagged(tag, "NO", "[TOOBIG] Message too large");
  auto box = find_mailbox(name);
  if (!box) return tagged(tag, "NO", "[TRYCREATE] No such mailbox");
  // Refused before any byte goes to the log (RFC 9208 4.3: OVERQUOTA).
  if (auto quota = store_.check_quota(account_, total); !quota)
    return tagged(tag, "NO", no_text(projections::to_errc(quota.error())));
  job->mailbox = box->id;
  job->uidvalidity = box->uidvalidity;
  append_next(std::move(job));
}

void Session::append_next(std::shared_ptr<AppendJob> job) {
  if (job->next == job->messages.size()) {
    return tagged(job->tag, "OK",
                  fmt::format("[APPENDUID {} {}] APPEND completed", job->uidvalidity,
                              SequenceSet::format(job->uids)));
  }
  auto& m = job->messages[job->next++];
  schemas::MessageAppended appended{job->mailbox, std::move(m.raw), m.date, std::move(m.flags),
                                    std::nullopt};
  std::vector<schemas::Event> events;
  if (appended.raw.size() > net::StagedStream::kChunkBytes) {
    // Large: the body goes ahead in chunks (ADR 0006), as SMTP sends it,
    // in the same write (one partition: the chunks are applied first).
    net::StagedStream stream;
    const std::string raw = std::exchange(appended.raw, std::string());
    for (std::size_t pos = 0; pos < raw.size(); pos += net::StagedStream::kChunkBytes) {
      for (auto& chunk :
           net::chunk_events(stream, {account_},
                             std::string_view(raw).substr(pos, net::StagedStream::kChunkBytes),
                             actor(), now_ms()))
        events.push_back(std::move(chunk));
    }
    appended.staged = schemas::StagedBody{
        stream.blob_id, stream.started_ms, stream.size, stream.chunks, true, stream.message_id};
  }
  events.push_back(schemas::make_event(account_, actor(), std::move(appended)));
  write(
      std::move(events), projections::Store::Wait::applied,
      [this, job](const Outcomes& outcomes) {
        const auto& o = outcomes.back();
        if (o.code == OutcomeCode::mailbox_missing)
          return append_failed(job, "[TRYCREATE] No such mailbox");
        if (!o.ok()) return append_failed(job, "[CANNOT] APPEND failed: " + o.detail);
        job->uids.insert(job->uids.end(), o.uids.begin(), o.uids.end());
        job->uidvalidity = o.uidvalidity;
        append_next(job);
      },
      [this, job](projections::errc e) { append_failed(job, no_text(e)); });
}

// RFC 3502: all or nothing. If one message fails, those already appended
// are expunged again (best effort: the log may be what failed), and then
// the command is answered.
void Session::append_failed(std::shared_ptr<AppendJob> job, std::string_view reply) {
  auto answer = [this, tag = job->tag, text = std::string(reply)] { tagged(tag, "NO", text); };
  if (job->uids.empty()) return answer();
  std::vector<schemas::Event> undo;
  undo.push_back(
      schemas::make_event(account_, actor(), schemas::MessagesExpunged{job->mailbox, job->uids}));
  write(
      std::move(undo), projections::Store::Wait::applied, [answer](const Outcomes&) { answer(); },
      [answer](projections::errc) { answer(); });
}

}  // namespace a3::imap
