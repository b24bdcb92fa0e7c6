#include "frontends/smtp/delivery.h"

#include <condition_variable>
#include <mutex>
#include <set>

#include <openssl/evp.h>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/ascii.h"
#include "common/sha256.h"
#include "mime/mime.h"
#include "schemas/codec.h"

namespace a3::smtp {

StorePolicy::StorePolicy(const projections::Store& store, std::vector<std::string> local_domains)
    : store_(store) {
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

Policy::Rcpt StorePolicy::check_recipient(const Mailbox& to, const std::string& auth_user,
                                          std::string& account) {
  bool local = false;
  for (const auto& d : local_domains_)
    local = local || d == to.domain;
  // Never a relay: other domains only for authenticated users, and outbound
  // delivery does not exist yet.
  if (!local) return auth_user.empty() ? Rcpt::relay_denied : Rcpt::outbound_unavailable;
  // A quoted local part is never one of our addresses ("a@b"@local is a
  // relay attempt, not a user).
  if (to.quoted) return Rcpt::unknown_user;
  auto owner = store_.account_for_address(ascii::lower(to.local) + "@" + to.domain);
  if (!owner) return Rcpt::unknown_user;
  account = *owner;
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
  return fmt::format(
      "Received: from {} ([{}]){}{}\r\n\tby {} (A3Mailer) with {} id {}\r\n\tfor <{}>; "
      "{:%a, %d %b %Y %H:%M:%S} +0000\r\n",
      env.helo.empty() ? "unknown" : env.helo, ctx.remote_ip, tls, auth, ctx.hostname, with,
      ctx.session_id, for_rcpt, t);
}

std::vector<schemas::Event> delivery_events(
    const projections::Store& store, const Message& msg, const DeliveryContext& ctx,
    StagedStream* staged, const std::function<std::int32_t(std::string_view)>& partition) {
  std::vector<schemas::Event> out;
  const auto body_hash = staged ? staged->hash.final() : sha256(msg.data);
  const std::string from = msg.envelope.mail_from && !msg.envelope.mail_from->null
                               ? msg.envelope.mail_from->mailbox.str()
                               : "";
  for (const auto& account : msg.envelope.accounts) {
    const auto inbox = store.mailbox(account, "INBOX");
    if (!inbox) continue;  // the account went away since RCPT: nothing to deliver to
    schemas::SmtpEnvelope env;
    env.mail_from = from;
    for (const auto& r : msg.envelope.rcpt_to) {
      if (store.account_for_address(ascii::lower(r.local) + "@" + r.domain) == account) {
        env.rcpt_to.push_back(r.str());
      }
    }
    env.helo = msg.envelope.helo;
    env.remote_ip = ctx.remote_ip;
    env.tls = ctx.tls;
    env.auth_user = ctx.auth_user;
    const std::string first_rcpt = env.rcpt_to.empty() ? account : env.rcpt_to.front();
    std::string raw = received_header(msg.envelope, ctx, first_rcpt);
    if (!staged) raw += msg.data;
    schemas::MessageAppended body{inbox->id, std::move(raw), ctx.now_ms, {}, env, std::nullopt};
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
    const auto h = sha256(fmt::format(
        "smtp\n{}\n{}\n{}", account, from,
        std::string_view(reinterpret_cast<const char*>(body_hash.data()), body_hash.size())));
    std::copy(h.begin(), h.begin() + 16, e.id.bytes.begin());
    e.id.bytes[6] = static_cast<std::uint8_t>(0x80 | (e.id.bytes[6] & 0x0f));  // UUIDv8 (RFC 9562)
    e.id.bytes[8] = static_cast<std::uint8_t>(0x80 | (e.id.bytes[8] & 0x3f));
    out.push_back(std::move(e));
  }
  if (staged) {
    // The staged chunks are released by the last event of each partition
    // that names them (events of one partition are applied in append order).
    std::set<std::int32_t> released;
    for (auto it = out.rbegin(); it != out.rend(); ++it) {
      if (released.insert(partition ? partition(it->account) : 0).second)
        std::get<schemas::MessageAppended>(it->body).staged->last_use = true;
    }
  }
  return out;
}

bool append_all(eventlog::EventLog& log, const std::vector<schemas::Event>& events) {
  std::mutex mu;
  std::condition_variable cv;
  std::size_t pending = events.size();
  bool ok = true;
  for (const auto& e : events) {
    log.append_async(e.account, schemas::encode(e), [&](eventlog::AppendResult r) {
      std::lock_guard lock(mu);
      ok = ok && static_cast<bool>(r);
      if (--pending == 0) cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return pending == 0; });
  return ok;
}

}  // namespace a3::smtp
