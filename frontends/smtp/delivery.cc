#include "frontends/smtp/delivery.h"

#include <set>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/ascii.h"
#include "common/clock.h"
#include "common/sha256.h"
#include "delivery/dsn.h"
#include "mime/mime.h"
#include "schemas/codec.h"

namespace a3::smtp {

StorePolicy::StorePolicy(const projections::Store& store, std::vector<std::string> local_domains,
                         bool outbound)
    : store_(store), outbound_(outbound) {
  for (auto& d : local_domains)
    local_domains_.push_back(ascii::lower(d));
}

bool StorePolicy::sender_allowed(const std::string& auth_user, const Mailbox& from) {
  const auto account = store_.account(auth_user);
  if (!account || from.quoted) return false;
  const std::string address = ascii::lower(from.local) + "@" + from.domain;
  for (const auto& a : account->addresses) {
    if (a == address) return true;
  }
  return false;
}

Policy::Rcpt StorePolicy::check_recipient(const Mailbox& to, bool may_relay,
                                          std::uint64_t declared_size, Recipient& out) {
  bool local = false;
  for (const auto& d : local_domains_)
    local = local || d == to.domain;
  // Never an open relay: other domains only for clients that may relay.
  if (!local) {
    if (!may_relay) return Rcpt::relay_denied;
    return outbound_ ? Rcpt::outbound : Rcpt::outbound_unavailable;
  }
  // A quoted local part is never one of our addresses ("a@b"@local is a
  // relay attempt, not a user).
  if (to.quoted) return Rcpt::unknown_user;
  auto owner = store_.account_for_address(ascii::lower(to.local) + "@" + to.domain);
  if (!owner) return Rcpt::unknown_user;
  const std::string& account = *owner;
  const auto record = store_.account(account);
  const auto inbox = store_.mailbox(account, "INBOX");
  // Just created or being deleted: the view is catching up.
  if (!record || !inbox) return Rcpt::temporary_failure;
  const auto junk = store_.mailbox(account, "Junk");
  out = Recipient{account, inbox->id, junk ? junk->id : schemas::Uuid{}, record->quota_bytes};
  // Quotas are checked per recipient here, so one full mailbox does not
  // refuse the message for the others: a full one (or one the declared
  // size would overflow) gets 452, one smaller than the declared size 552.
  if (auto q = record->quota_bytes == 0
                   ? boost::system::result<void>()
                   : store_.check_quota(account, std::max<std::uint64_t>(1, declared_size));
      !q) {
    return q.error() == projections::errc::exceeds_quota ? Rcpt::exceeds_mailbox
                                                         : Rcpt::mailbox_full;
  }
  return Rcpt::accept;
}

std::string received_header(const Envelope& env, const DeliveryContext& ctx,
                            std::string_view for_rcpt) {
  std::string with = env.smtputf8 ? "UTF8SMTP" : "ESMTP";
  if (!ctx.tls.empty()) with += "S";
  if (!ctx.auth_user.empty()) with += "A";
  const std::chrono::sys_seconds t{std::chrono::seconds(ctx.now_ms / 1000)};
  std::string tls = ctx.tls.empty() ? "" : fmt::format("\r\n\t(using {})", ctx.tls);
  std::string auth =
      ctx.auth_user.empty() ? "" : fmt::format("\r\n\t(authenticated as {})", ctx.auth_user);
  const std::string for_clause =
      for_rcpt.empty() ? std::string() : fmt::format("\r\n\tfor <{}>", for_rcpt);
  return fmt::format(
      "Received: from {} ([{}]){}{}\r\n\tby {} (A3Mailer) with {} id {}{}; "
      "{:%a, %d %b %Y %H:%M:%S} +0000\r\n",
      env.helo.empty() ? "unknown" : env.helo, ctx.remote_ip, tls, auth, ctx.hostname, with,
      ctx.session_id, for_clause, t);
}

namespace {

// RFC 3461 6.2: local recipients that asked for NOTIFY=SUCCESS; never to
// the null sender. Its id derives from the message's, so that a client's
// retry reports once.
std::optional<schemas::Event> delivered_report(const Message& msg, const DeliveryContext& ctx,
                                               const Sha256& body_hash) {
  const auto& env = msg.envelope;
  if (env.success_reports.empty() || !env.mail_from || env.mail_from->null) return std::nullopt;
  if (!ctx.success_reports_allowed) return std::nullopt;
  const std::string sender = env.mail_from->mailbox.str();
  delivery::Dsn d;
  d.reporting_mta = ctx.hostname;
  d.to = sender;
  d.envid = env.envid;
  d.arrival_ms = ctx.now_ms;
  d.now_ms = ctx.now_ms;
  d.headers_only = true;  // RFC 3461 4.3: the header only, but for failures
  d.original = msg.data.empty() ? nullptr : &msg.data;
  std::string recipients;
  for (const auto& r : env.success_reports) {
    d.recipients.push_back(
        {r.to.str(), r.orcpt, "delivered", "2.0.0", "", "delivered to the mailbox"});
    recipients += r.to.str() + "\n";
  }
  const std::string dsn = delivery::make_dsn(d);
  const auto id = schemas::Uuid::derived(fmt::format(
      "dsn-delivered\n{}\n{}\n{}", sender, recipients,
      std::string_view(reinterpret_cast<const char*>(body_hash.data()), body_hash.size())));
  const schemas::Actor actor{schemas::Protocol::system, "", "", "dsn"};
  if (ctx.sender_inbox) {
    schemas::Event e = schemas::make_event(
        ctx.sender_inbox->account, actor,
        schemas::MessageAppended{ctx.sender_inbox->inbox, dsn, ctx.now_ms, {}, {}, std::nullopt});
    e.id = id;
    e.at_ms = ctx.now_ms;
    return e;
  }
  schemas::OutboundQueued q;
  q.queue_id = id;
  q.mail_from = "";
  q.recipients.push_back({sender, schemas::notify_never, ""});
  q.raw = dsn;
  q.eightbit = env.eight_bit;
  q.smtputf8 = env.smtputf8;
  q.expires_ms = ctx.now_ms + ctx.queue_lifetime_ms;
  schemas::Event e = schemas::make_event(outbound_account(ctx), actor, std::move(q));
  e.id = id;
  e.at_ms = ctx.now_ms;
  return e;
}

}  // namespace

std::vector<schemas::Event> delivery_events(
    const Message& msg, const DeliveryContext& ctx, StagedStream* staged,
    const std::function<std::int32_t(std::string_view)>& partition) {
  std::vector<schemas::Event> out;
  const auto body_hash = staged ? staged->hash.final() : sha256(msg.data);
  const std::string from = msg.envelope.mail_from && !msg.envelope.mail_from->null
                               ? msg.envelope.mail_from->mailbox.str()
                               : "";
  const auto& envelope = msg.envelope;
  for (std::size_t a = 0; a < envelope.recipients.size(); ++a) {
    const auto& account = envelope.recipients[a].account;
    schemas::SmtpEnvelope env;
    env.mail_from = from;
    for (std::size_t r = 0; r < envelope.rcpt_to.size() && r < envelope.rcpt_account.size(); ++r) {
      if (envelope.rcpt_account[r] == a) env.rcpt_to.push_back(envelope.rcpt_to[r].str());
    }
    env.helo = msg.envelope.helo;
    env.remote_ip = ctx.remote_ip;
    env.tls = ctx.tls;
    env.auth_user = ctx.auth_user;
    env.authentication = ctx.authentication;
    const std::string first_rcpt = env.rcpt_to.empty() ? account : env.rcpt_to.front();
    // RFC 8601 5: the results go above the trace field that names us.
    std::string raw = ctx.authentication_results + received_header(msg.envelope, ctx, first_rcpt);
    if (!staged) raw += msg.data;
    // Quarantined by DMARC: into Junk, marked as such (RFC 5788 $Junk).
    const auto& r = envelope.recipients[a];
    const bool junk = ctx.quarantine;
    schemas::MessageAppended body{
        junk && !r.junk.is_nil() ? r.junk : r.inbox,
        std::move(raw),
        ctx.now_ms,
        junk ? std::vector<std::string>{"$Junk"} : std::vector<std::string>{},
        env,
        std::nullopt};
    if (staged) {
      body.staged =
          schemas::StagedBody{staged->blob_id, staged->started_ms, staged->size, staged->chunks,
                              false,           staged->message_id};
    }
    schemas::Event e = schemas::make_event(
        account, {ctx.protocol, ctx.auth_user, ctx.remote_ip, ctx.session_id}, std::move(body));
    e.at_ms = ctx.now_ms;
    // Deterministic id: the same message for the same account from the same
    // sender is the same event, whatever session carries it.
    e.id = schemas::Uuid::derived(fmt::format(
        "smtp\n{}\n{}\n{}", account, from,
        std::string_view(reinterpret_cast<const char*>(body_hash.data()), body_hash.size())));
    out.push_back(std::move(e));
  }
  if (!envelope.outbound.empty()) {
    const std::string account = outbound_account(ctx);
    schemas::OutboundQueued q;
    q.mail_from = from;
    for (const auto& r : envelope.outbound)
      q.recipients.push_back({r.to.str(), r.notify, r.orcpt});
    // "for" names the recipient only when there is one (RFC 5321 7.2: a
    // copy must not show the others, Bcc included).
    q.raw = received_header(
        msg.envelope, ctx, envelope.outbound.size() == 1 ? envelope.outbound.front().to.str() : "");
    // RFC 6376: signed once, here, so that every retry sends the same bytes.
    if (staged) {
      if (ctx.staged_signature) q.raw += *ctx.staged_signature;
    } else if (ctx.dkim) {
      if (auto sig = ctx.dkim->sign(signing_domain(envelope), msg.data)) q.raw += *sig;
    }
    if (!staged) q.raw += msg.data;
    if (staged) {
      q.staged =
          schemas::StagedBody{staged->blob_id, staged->started_ms, staged->size, staged->chunks,
                              false,           staged->message_id};
    }
    q.envid = envelope.envid;
    q.ret_headers = envelope.ret_headers;
    q.expires_ms = ctx.now_ms + ctx.queue_lifetime_ms;
    q.smtputf8 = envelope.smtputf8;
    q.eightbit = envelope.eight_bit;
    schemas::SmtpEnvelope env;
    env.mail_from = from;
    for (const auto& r : envelope.outbound)
      env.rcpt_to.push_back(r.to.str());
    env.helo = envelope.helo;
    env.remote_ip = ctx.remote_ip;
    env.tls = ctx.tls;
    env.auth_user = ctx.auth_user;
    q.smtp = std::move(env);
    schemas::Event e = schemas::make_event(
        account, {ctx.protocol, ctx.auth_user, ctx.remote_ip, ctx.session_id}, schemas::Body{});
    e.at_ms = ctx.now_ms;
    // Deterministic, as above: a client's retry queues the message once.
    std::string recipients;
    for (const auto& r : q.recipients)
      recipients += r.address + "\n";
    e.id = schemas::Uuid::derived(fmt::format(
        "outbound\n{}\n{}\n{}\n{}", account, from, recipients,
        std::string_view(reinterpret_cast<const char*>(body_hash.data()), body_hash.size())));
    q.queue_id = e.id;
    e.body = std::move(q);
    out.push_back(std::move(e));
  }
  if (staged) {
    // The staged chunks are released by the last event of each partition
    // that names them (events of one partition are applied in append order).
    std::set<std::int32_t> released;
    for (auto it = out.rbegin(); it != out.rend(); ++it) {
      if (!released.insert(partition ? partition(it->account) : 0).second) continue;
      if (auto* m = std::get_if<schemas::MessageAppended>(&it->body)) m->staged->last_use = true;
      if (auto* q = std::get_if<schemas::OutboundQueued>(&it->body)) q->staged->last_use = true;
    }
  }
  // After the staged bodies' last uses are marked: the report names none.
  if (auto report = delivered_report(msg, ctx, body_hash)) out.push_back(std::move(*report));
  return out;
}

std::string signing_domain(const Envelope& env) {
  if (!env.mail_from || env.mail_from->null) return "";
  return ascii::lower(env.mail_from->mailbox.domain);
}

std::string outbound_account(const DeliveryContext& ctx) {
  return ctx.auth_user.empty() ? "relay" : ctx.auth_user;
}

boost::asio::awaitable<void> stream_chunk(projections::Store& store, StagedStream& stream,
                                          const std::vector<std::string>& keys, std::string data,
                                          DeliveryContext& ctx) {
  if (stream.failed || data.empty()) co_return;  // the message gets 451 anyway
  ctx.now_ms = now_ms();
  if (stream.chunks > 0 && ctx.now_ms - stream.started_ms > StagedStream::kMaxAgeMs) {
    stream.failed = true;  // too slow: 451 at its end, nothing more logged
    co_return;
  }
  auto events = chunk_events(
      stream, keys, data, {ctx.protocol, ctx.auth_user, ctx.remote_ip, ctx.session_id}, ctx.now_ms);
  data = std::string();
  auto appended = store.execute(std::move(events), projections::Store::Wait::durable);
  if (!co_await std::move(appended)) stream.failed = true;
}

boost::asio::awaitable<std::optional<projections::errc>> deliver(projections::Store& store,
                                                                 const Message& msg,
                                                                 DeliveryContext& ctx,
                                                                 StagedStream* staged) {
  if (staged && ctx.now_ms - staged->started_ms > StagedStream::kMaxAgeMs) staged->failed = true;
  if (staged && staged->failed) co_return projections::errc::unavailable;
  auto events = delivery_events(msg, ctx, staged,
                                [&store](std::string_view k) { return store.partition_for(k); });
  // No event at all: not delivered, so not 250.
  if (events.empty()) co_return projections::errc::unavailable;
  // Quotas were checked per recipient at RCPT. Here the message is refused
  // only when it alone is larger than every recipient's whole quota;
  // otherwise it is delivered, even if it takes a mailbox over its quota (a
  // soft quota: one reply cannot refuse some recipients and not others, and
  // the next RCPT to that mailbox gets 452).
  const std::uint64_t size = staged ? staged->size : msg.data.size();
  std::size_t too_small = 0;
  for (const auto& r : msg.envelope.recipients)
    too_small += r.quota_bytes > 0 && size > r.quota_bytes ? 1 : 0;
  if (!msg.envelope.recipients.empty() && msg.envelope.outbound.empty() &&
      too_small == msg.envelope.recipients.size())
    co_return projections::errc::exceeds_quota;
  // 250 means durable (RFC 5321 6.1), never "visible": the session does not
  // wait for the view.
  auto appended =
      store.execute(std::move(events), projections::Store::Wait::durable, /*check_quota=*/false);
  const auto r = co_await std::move(appended);
  if (!r) co_return projections::to_errc(r.error());
  co_return std::nullopt;
}

}  // namespace a3::smtp
