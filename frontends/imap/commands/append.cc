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
  // Refused before any byte goes to the log (RFC 9208 4.3: OVERQUOTA).
  if (auto quota = store_.check_quota(account_, total); !quota)
    return tagged(tag, "NO", no_text(projections::to_errc(quota.error())));
  std::vector<std::uint32_t> uids;
  std::uint32_t uidvalidity = box->uidvalidity;
  const schemas::Actor actor{schemas::Protocol::imap, account_, info_.remote_ip, info_.session_id};
  // RFC 3502: all or nothing. If one message fails, those already appended
  // are expunged again (best effort: the log may be what failed).
  auto undo = [&] {
    if (!uids.empty())
      (void)store_.execute_blocking(
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
          if (!store_.execute_blocking(chunk, projections::Store::Wait::durable)) {
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

}  // namespace a3::imap
