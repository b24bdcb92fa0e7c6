#include "schemas/codec.h"

#include <stdexcept>
#include <type_traits>

#include <fmt/format.h>

#include "schemas/events_generated.h"

namespace a3::schemas {

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

namespace {

// ---- encoding ----
// Strings go in with their length (CreateString of a std::string), never as
// C strings: client input may hold NUL bytes.

Offset<flatbuffers::Vector<std::uint8_t>> bytes(FlatBufferBuilder& b, const Uuid& id) {
  return b.CreateVector(id.bytes.data(), id.bytes.size());
}

Offset<flatbuffers::Vector<Offset<flatbuffers::String>>> strings(
    FlatBufferBuilder& b, const std::vector<std::string>& v) {
  return b.CreateVectorOfStrings(v);
}

Offset<flatbuffers::Vector<std::uint32_t>> uids(FlatBufferBuilder& b,
                                                const std::vector<std::uint32_t>& v) {
  return b.CreateVector(v);
}

struct BodyEncoder {
  FlatBufferBuilder& b;

  Offset<void> operator()(const AccountCreated& e) {
    auto name = b.CreateString(e.name);
    auto hash = b.CreateString(e.password_hash);
    auto addresses = strings(b, e.addresses);
    return fb::CreateAccountCreated(b, name, hash, addresses, e.quota_bytes).Union();
  }
  Offset<void> operator()(const AccountPasswordChanged& e) {
    return fb::CreateAccountPasswordChanged(b, b.CreateString(e.password_hash)).Union();
  }
  Offset<void> operator()(const AccountDeleted& e) {
    return fb::CreateAccountDeleted(b, b.CreateString(e.reason)).Union();
  }
  Offset<void> operator()(const AccountAddressesChanged& e) {
    return fb::CreateAccountAddressesChanged(b, strings(b, e.addresses)).Union();
  }
  Offset<void> operator()(const AccountQuotaChanged& e) {
    return fb::CreateAccountQuotaChanged(b, e.quota_bytes).Union();
  }
  Offset<void> operator()(const MailboxCreated& e) {
    auto id = bytes(b, e.mailbox_id);
    return fb::CreateMailboxCreated(b, id, b.CreateString(e.name), b.CreateString(e.special_use))
        .Union();
  }
  Offset<void> operator()(const MailboxRenamed& e) {
    auto id = bytes(b, e.mailbox_id);
    return fb::CreateMailboxRenamed(b, id, b.CreateString(e.new_name)).Union();
  }
  Offset<void> operator()(const MailboxDeleted& e) {
    return fb::CreateMailboxDeleted(b, bytes(b, e.mailbox_id)).Union();
  }
  Offset<void> operator()(const MailboxSubscriptionChanged& e) {
    return fb::CreateMailboxSubscriptionChanged(b, b.CreateString(e.name), e.subscribed).Union();
  }
  Offset<void> operator()(const MessageAppended& e) {
    auto id = bytes(b, e.mailbox_id);
    auto raw = b.CreateVector(reinterpret_cast<const std::uint8_t*>(e.raw.data()), e.raw.size());
    auto flags = strings(b, e.flags);
    auto smtp = envelope(e.smtp);
    Offset<fb::StagedBody> staged;
    if (e.staged) {
      const StagedBody& sb = *e.staged;
      staged = fb::CreateStagedBody(b, bytes(b, sb.blob_id), sb.started_ms, sb.size, sb.chunks,
                                    sb.last_use, b.CreateString(sb.message_id));
    }
    return fb::CreateMessageAppended(b, id, raw, e.internal_date_ms, flags, smtp, staged).Union();
  }
  Offset<void> operator()(const MessagesCopied& e) {
    auto from = bytes(b, e.from_mailbox_id);
    auto u = uids(b, e.uids);
    return fb::CreateMessagesCopied(b, from, u, bytes(b, e.to_mailbox_id)).Union();
  }
  Offset<void> operator()(const MessagesMoved& e) {
    auto from = bytes(b, e.from_mailbox_id);
    auto u = uids(b, e.uids);
    return fb::CreateMessagesMoved(b, from, u, bytes(b, e.to_mailbox_id)).Union();
  }
  Offset<void> operator()(const FlagsChanged& e) {
    auto id = bytes(b, e.mailbox_id);
    auto u = uids(b, e.uids);
    auto flags = strings(b, e.flags);
    flatbuffers::Optional<std::uint64_t> since;
    if (e.unchanged_since) since = *e.unchanged_since;
    return fb::CreateFlagsChanged(b, id, u, static_cast<fb::FlagOp>(e.op), flags, since).Union();
  }
  Offset<void> operator()(const MessagesExpunged& e) {
    auto id = bytes(b, e.mailbox_id);
    return fb::CreateMessagesExpunged(b, id, uids(b, e.uids)).Union();
  }
  Offset<void> operator()(const AuthSucceeded& e) {
    auto mechanism = b.CreateString(e.mechanism);
    auto user = b.CreateString(e.user);
    return fb::CreateAuthSucceeded(b, mechanism, user).Union();
  }
  Offset<void> operator()(const BanAdded& e) {
    auto network = b.CreateString(e.network);
    auto reason = b.CreateString(e.reason);
    auto rule = b.CreateString(e.rule);
    return fb::CreateBanAdded(b, network, reason, e.expires_ms, rule).Union();
  }
  Offset<void> operator()(const BanLifted& e) {
    auto network = b.CreateString(e.network);
    auto reason = b.CreateString(e.reason);
    return fb::CreateBanLifted(b, network, reason, e.expires_ms).Union();
  }
  Offset<void> operator()(const AuthFailed& e) {
    auto mechanism = b.CreateString(e.mechanism);
    auto user = b.CreateString(e.user);
    auto reason = b.CreateString(e.reason);
    return fb::CreateAuthFailed(b, mechanism, user, reason).Union();
  }
  Offset<void> operator()(const SmtpRejected& e) {
    auto stage = b.CreateString(e.stage);
    auto enhanced = b.CreateString(e.enhanced_code);
    auto reason = b.CreateString(e.reason);
    auto from = b.CreateString(e.mail_from);
    auto to = b.CreateString(e.rcpt_to);
    return fb::CreateSmtpRejected(b, stage, e.code, enhanced, reason, from, to).Union();
  }
  Offset<void> operator()(const BodyChunk& e) {
    auto id = bytes(b, e.blob_id);
    auto data = b.CreateVector(reinterpret_cast<const std::uint8_t*>(e.data.data()), e.data.size());
    return fb::CreateBodyChunk(b, id, e.started_ms, e.seq, data).Union();
  }
  Offset<fb::SmtpEnvelope> envelope(const std::optional<SmtpEnvelope>& e) {
    if (!e) return 0;
    Offset<fb::Authentication> auth;
    if (const auto& a = e->authentication) {
      auth = fb::CreateAuthentication(
          b, b.CreateString(a->spf), b.CreateString(a->spf_domain), b.CreateString(a->dkim),
          strings(b, a->dkim_domains), b.CreateString(a->dmarc), b.CreateString(a->dmarc_policy),
          b.CreateString(a->from_domain), b.CreateString(a->disposition));
    }
    return fb::CreateSmtpEnvelope(b, b.CreateString(e->mail_from), strings(b, e->rcpt_to),
                                  b.CreateString(e->helo), b.CreateString(e->remote_ip),
                                  b.CreateString(e->tls), b.CreateString(e->auth_user), auth);
  }
  Offset<fb::StagedBody> staged(const std::optional<StagedBody>& sb) {
    if (!sb) return 0;
    return fb::CreateStagedBody(b, bytes(b, sb->blob_id), sb->started_ms, sb->size, sb->chunks,
                                sb->last_use, b.CreateString(sb->message_id));
  }
  Offset<void> operator()(const OutboundQueued& e) {
    auto id = bytes(b, e.queue_id);
    auto from = b.CreateString(e.mail_from);
    std::vector<Offset<fb::OutboundRecipient>> rcpts;
    for (const auto& r : e.recipients) {
      rcpts.push_back(fb::CreateOutboundRecipient(b, b.CreateString(r.address), r.notify,
                                                  b.CreateString(r.orcpt)));
    }
    auto recipients = b.CreateVector(rcpts);
    auto raw = b.CreateVector(reinterpret_cast<const std::uint8_t*>(e.raw.data()), e.raw.size());
    auto sb = staged(e.staged);
    auto envid = b.CreateString(e.envid);
    auto smtp = envelope(e.smtp);
    return fb::CreateOutboundQueued(b, id, from, recipients, raw, sb, envid, e.ret_headers,
                                    e.expires_ms, e.smtputf8, e.eightbit, smtp)
        .Union();
  }
  Offset<void> operator()(const DeliveryAttempted& e) {
    auto id = bytes(b, e.queue_id);
    auto r = strings(b, e.recipients);
    return fb::CreateDeliveryAttempted(b, id, r, b.CreateString(e.host), e.attempt).Union();
  }
  Offset<void> operator()(const Delivered& e) {
    auto id = bytes(b, e.queue_id);
    auto r = strings(b, e.recipients);
    auto host = b.CreateString(e.host);
    return fb::CreateDelivered(b, id, r, host, b.CreateString(e.reply)).Union();
  }
  Offset<void> operator()(const Deferred& e) {
    auto id = bytes(b, e.queue_id);
    auto r = strings(b, e.recipients);
    auto host = b.CreateString(e.host);
    return fb::CreateDeferred(b, id, r, host, b.CreateString(e.reply), e.next_attempt_ms,
                              e.delay_reported)
        .Union();
  }
  Offset<void> operator()(const Bounced& e) {
    auto id = bytes(b, e.queue_id);
    auto r = strings(b, e.recipients);
    auto host = b.CreateString(e.host);
    return fb::CreateBounced(b, id, r, host, b.CreateString(e.reply)).Union();
  }
  Offset<void> operator()(const Expired& e) {
    auto id = bytes(b, e.queue_id);
    auto r = strings(b, e.recipients);
    return fb::CreateExpired(b, id, r, b.CreateString(e.reply)).Union();
  }
  Offset<void> operator()(const DeliveryRescheduled& e) {
    return fb::CreateDeliveryRescheduled(b, bytes(b, e.queue_id), e.next_attempt_ms).Union();
  }
  Offset<void> operator()(const OutboundDeleted& e) {
    auto id = bytes(b, e.queue_id);
    return fb::CreateOutboundDeleted(b, id, b.CreateString(e.reason)).Union();
  }
};

// ---- decoding ----

std::string str(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

std::vector<std::string> strs(const flatbuffers::Vector<Offset<flatbuffers::String>>* v) {
  std::vector<std::string> out;
  if (!v) return out;
  out.reserve(v->size());
  for (const auto* s : *v)
    out.push_back(str(s));
  return out;
}

SmtpEnvelope smtp_envelope(const fb::SmtpEnvelope& s) {
  SmtpEnvelope out{str(s.mail_from()), strs(s.rcpt_to()), str(s.helo()),
                   str(s.remote_ip()), str(s.tls()),      str(s.auth_user())};
  if (const auto* a = s.authentication()) {
    out.authentication = Authentication{
        str(a->spf()),   str(a->spf_domain()),   str(a->dkim()),        strs(a->dkim_domains()),
        str(a->dmarc()), str(a->dmarc_policy()), str(a->from_domain()), str(a->disposition())};
  }
  return out;
}

std::vector<std::uint32_t> u32s(const flatbuffers::Vector<std::uint32_t>* v) {
  if (!v) return {};
  return {v->begin(), v->end()};
}

using DecodeResult = boost::system::result<Event, DecodeError>;

DecodeError fail(decode_errc code, std::string detail) {
  return {code, std::move(detail)};
}

// A missing or wrongly sized id is invalid data, not something to guess at.
bool uuid(const flatbuffers::Vector<std::uint8_t>* v, Uuid& out) {
  if (!v || v->size() != out.bytes.size()) return false;
  std::copy(v->begin(), v->end(), out.bytes.begin());
  return true;
}

struct BodyDecoder {
  const fb::Event& ev;
  Event& out;
  std::string error;  // set when a field is invalid

  bool need_uuid(const flatbuffers::Vector<std::uint8_t>* v, Uuid& id, const char* field) {
    if (uuid(v, id)) return true;
    error = fmt::format("{} must be 16 bytes", field);
    return false;
  }

  bool decode() {
    switch (ev.body_type()) {
      case fb::Body::AccountCreated: {
        auto* e = ev.body_as_AccountCreated();
        out.body = AccountCreated{str(e->name()), str(e->password_hash()), strs(e->addresses()),
                                  e->quota_bytes()};
        return true;
      }
      case fb::Body::AccountPasswordChanged:
        out.body =
            AccountPasswordChanged{str(ev.body_as_AccountPasswordChanged()->password_hash())};
        return true;
      case fb::Body::AccountDeleted:
        out.body = AccountDeleted{str(ev.body_as_AccountDeleted()->reason())};
        return true;
      case fb::Body::AccountAddressesChanged:
        out.body = AccountAddressesChanged{strs(ev.body_as_AccountAddressesChanged()->addresses())};
        return true;
      case fb::Body::MailboxCreated: {
        auto* e = ev.body_as_MailboxCreated();
        MailboxCreated m{{}, str(e->name()), str(e->special_use())};
        if (!need_uuid(e->mailbox_id(), m.mailbox_id, "MailboxCreated.mailbox_id")) return false;
        out.body = std::move(m);
        return true;
      }
      case fb::Body::MailboxRenamed: {
        auto* e = ev.body_as_MailboxRenamed();
        MailboxRenamed m{{}, str(e->new_name())};
        if (!need_uuid(e->mailbox_id(), m.mailbox_id, "MailboxRenamed.mailbox_id")) return false;
        out.body = std::move(m);
        return true;
      }
      case fb::Body::MailboxDeleted: {
        MailboxDeleted m;
        if (!need_uuid(ev.body_as_MailboxDeleted()->mailbox_id(), m.mailbox_id,
                       "MailboxDeleted.mailbox_id"))
          return false;
        out.body = m;
        return true;
      }
      case fb::Body::MailboxSubscriptionChanged: {
        auto* e = ev.body_as_MailboxSubscriptionChanged();
        out.body = MailboxSubscriptionChanged{str(e->name()), e->subscribed()};
        return true;
      }
      case fb::Body::MessageAppended: {
        auto* e = ev.body_as_MessageAppended();
        MessageAppended m;
        if (!need_uuid(e->mailbox_id(), m.mailbox_id, "MessageAppended.mailbox_id")) return false;
        if (e->raw())
          m.raw.assign(reinterpret_cast<const char*>(e->raw()->data()), e->raw()->size());
        m.internal_date_ms = e->internal_date_ms();
        m.flags = strs(e->flags());
        if (const auto* s = e->smtp()) m.smtp = smtp_envelope(*s);
        if (const auto* sb = e->staged()) {
          StagedBody staged{{},           sb->started_ms(), sb->size(),
                            sb->chunks(), sb->last_use(),   str(sb->message_id())};
          if (!need_uuid(sb->blob_id(), staged.blob_id, "StagedBody.blob_id")) return false;
          m.staged = std::move(staged);
        }
        out.body = std::move(m);
        return true;
      }
      case fb::Body::MessagesCopied: {
        auto* e = ev.body_as_MessagesCopied();
        MessagesCopied m{{}, u32s(e->uids()), {}};
        if (!need_uuid(e->from_mailbox_id(), m.from_mailbox_id, "MessagesCopied.from_mailbox_id") ||
            !need_uuid(e->to_mailbox_id(), m.to_mailbox_id, "MessagesCopied.to_mailbox_id"))
          return false;
        out.body = std::move(m);
        return true;
      }
      case fb::Body::MessagesMoved: {
        auto* e = ev.body_as_MessagesMoved();
        MessagesMoved m{{}, u32s(e->uids()), {}};
        if (!need_uuid(e->from_mailbox_id(), m.from_mailbox_id, "MessagesMoved.from_mailbox_id") ||
            !need_uuid(e->to_mailbox_id(), m.to_mailbox_id, "MessagesMoved.to_mailbox_id"))
          return false;
        out.body = std::move(m);
        return true;
      }
      case fb::Body::FlagsChanged: {
        auto* e = ev.body_as_FlagsChanged();
        if (e->op() > fb::FlagOp::MAX) {
          error =
              fmt::format("FlagsChanged.op {} is not a known operation", static_cast<int>(e->op()));
          return false;
        }
        FlagsChanged m{{}, u32s(e->uids()), static_cast<FlagOp>(e->op()), strs(e->flags()), {}};
        if (e->unchanged_since()) m.unchanged_since = *e->unchanged_since();
        if (!need_uuid(e->mailbox_id(), m.mailbox_id, "FlagsChanged.mailbox_id")) return false;
        out.body = std::move(m);
        return true;
      }
      case fb::Body::MessagesExpunged: {
        auto* e = ev.body_as_MessagesExpunged();
        MessagesExpunged m{{}, u32s(e->uids())};
        if (!need_uuid(e->mailbox_id(), m.mailbox_id, "MessagesExpunged.mailbox_id")) return false;
        out.body = std::move(m);
        return true;
      }
      case fb::Body::AuthSucceeded: {
        auto* e = ev.body_as_AuthSucceeded();
        out.body = AuthSucceeded{str(e->mechanism()), str(e->user())};
        return true;
      }
      case fb::Body::BanAdded: {
        auto* e = ev.body_as_BanAdded();
        out.body = BanAdded{str(e->network()), str(e->reason()), e->expires_ms(), str(e->rule())};
        return true;
      }
      case fb::Body::BanLifted: {
        auto* e = ev.body_as_BanLifted();
        out.body = BanLifted{str(e->network()), str(e->reason()), e->expires_ms()};
        return true;
      }
      case fb::Body::AuthFailed: {
        auto* e = ev.body_as_AuthFailed();
        out.body = AuthFailed{str(e->mechanism()), str(e->user()), str(e->reason())};
        return true;
      }
      case fb::Body::SmtpRejected: {
        auto* e = ev.body_as_SmtpRejected();
        out.body = SmtpRejected{str(e->stage()),  e->code(),           str(e->enhanced_code()),
                                str(e->reason()), str(e->mail_from()), str(e->rcpt_to())};
        return true;
      }
      case fb::Body::BodyChunk: {
        auto* e = ev.body_as_BodyChunk();
        BodyChunk c;
        if (!need_uuid(e->blob_id(), c.blob_id, "BodyChunk.blob_id")) return false;
        c.started_ms = e->started_ms();
        c.seq = e->seq();
        if (e->data())
          c.data.assign(reinterpret_cast<const char*>(e->data()->data()), e->data()->size());
        out.body = std::move(c);
        return true;
      }
      case fb::Body::AccountQuotaChanged:
        out.body = AccountQuotaChanged{ev.body_as_AccountQuotaChanged()->quota_bytes()};
        return true;
      case fb::Body::OutboundQueued: {
        auto* e = ev.body_as_OutboundQueued();
        OutboundQueued q;
        if (!need_uuid(e->queue_id(), q.queue_id, "OutboundQueued.queue_id")) return false;
        q.mail_from = str(e->mail_from());
        if (const auto* rs = e->recipients()) {
          for (const auto* r : *rs)
            q.recipients.push_back({str(r->address()), r->notify(), str(r->orcpt())});
        }
        if (e->raw())
          q.raw.assign(reinterpret_cast<const char*>(e->raw()->data()), e->raw()->size());
        if (const auto* sb = e->staged()) {
          StagedBody st{{},           sb->started_ms(), sb->size(),
                        sb->chunks(), sb->last_use(),   str(sb->message_id())};
          if (!need_uuid(sb->blob_id(), st.blob_id, "StagedBody.blob_id")) return false;
          q.staged = std::move(st);
        }
        q.envid = str(e->envid());
        q.ret_headers = e->ret_headers();
        q.expires_ms = e->expires_ms();
        q.smtputf8 = e->smtputf8();
        q.eightbit = e->eightbit();
        if (const auto* s = e->smtp()) q.smtp = smtp_envelope(*s);
        out.body = std::move(q);
        return true;
      }
      case fb::Body::DeliveryAttempted: {
        auto* e = ev.body_as_DeliveryAttempted();
        DeliveryAttempted d{{}, strs(e->recipients()), str(e->host()), e->attempt()};
        if (!need_uuid(e->queue_id(), d.queue_id, "DeliveryAttempted.queue_id")) return false;
        out.body = std::move(d);
        return true;
      }
      case fb::Body::Delivered: {
        auto* e = ev.body_as_Delivered();
        Delivered d{{}, strs(e->recipients()), str(e->host()), str(e->reply())};
        if (!need_uuid(e->queue_id(), d.queue_id, "Delivered.queue_id")) return false;
        out.body = std::move(d);
        return true;
      }
      case fb::Body::Deferred: {
        auto* e = ev.body_as_Deferred();
        Deferred d{{},
                   strs(e->recipients()),
                   str(e->host()),
                   str(e->reply()),
                   e->next_attempt_ms(),
                   e->delay_reported()};
        if (!need_uuid(e->queue_id(), d.queue_id, "Deferred.queue_id")) return false;
        out.body = std::move(d);
        return true;
      }
      case fb::Body::Bounced: {
        auto* e = ev.body_as_Bounced();
        Bounced d{{}, strs(e->recipients()), str(e->host()), str(e->reply())};
        if (!need_uuid(e->queue_id(), d.queue_id, "Bounced.queue_id")) return false;
        out.body = std::move(d);
        return true;
      }
      case fb::Body::Expired: {
        auto* e = ev.body_as_Expired();
        Expired d{{}, strs(e->recipients()), str(e->reply())};
        if (!need_uuid(e->queue_id(), d.queue_id, "Expired.queue_id")) return false;
        out.body = std::move(d);
        return true;
      }
      case fb::Body::DeliveryRescheduled: {
        auto* e = ev.body_as_DeliveryRescheduled();
        DeliveryRescheduled d{{}, e->next_attempt_ms()};
        if (!need_uuid(e->queue_id(), d.queue_id, "DeliveryRescheduled.queue_id")) return false;
        out.body = d;
        return true;
      }
      case fb::Body::OutboundDeleted: {
        auto* e = ev.body_as_OutboundDeleted();
        OutboundDeleted d{{}, str(e->reason())};
        if (!need_uuid(e->queue_id(), d.queue_id, "OutboundDeleted.queue_id")) return false;
        out.body = std::move(d);
        return true;
      }
      case fb::Body::NONE:
        break;
    }
    error = "unreachable";
    return false;
  }
};

}  // namespace

std::string encode(const Event& event) {
  std::size_t payload = 0;
  if (const auto* m = std::get_if<MessageAppended>(&event.body)) payload = m->raw.size();
  if (const auto* c = std::get_if<BodyChunk>(&event.body)) payload = c->data.size();
  if (const auto* q = std::get_if<OutboundQueued>(&event.body)) payload = q->raw.size();
  FlatBufferBuilder b(256 + payload);
  auto body = std::visit(BodyEncoder{b}, event.body);
  auto id = bytes(b, event.id);
  auto account = b.CreateString(event.account);
  const Actor& a = event.actor;
  auto actor = fb::CreateActor(b, static_cast<fb::Protocol>(a.protocol), b.CreateString(a.user),
                               b.CreateString(a.remote_ip), b.CreateString(a.session_id));
  auto type = static_cast<fb::Body>(event.body.index() + 1);
  b.Finish(fb::CreateEvent(b, id, event.at_ms, account, actor, type, body), fb::EventIdentifier());
  return {reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize()};
}

DecodeResult decode(std::string_view bytes_in) {
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes_in.data());
  if (bytes_in.size() < 8) {
    return fail(decode_errc::too_short, fmt::format("{} bytes is too short", bytes_in.size()));
  }
  if (!fb::EventBufferHasIdentifier(data)) {
    return fail(decode_errc::bad_identifier, "not an A3 event (file identifier is not A3EV)");
  }
  // The Verifier asserts on buffers past FlatBuffers' 2 GiB limit: refuse
  // them first. Its default depth (64) and table count (1M) bound the work
  // done on hostile input.
  if (bytes_in.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return fail(decode_errc::verify_failed, "buffer exceeds the FlatBuffers size limit");
  }
  flatbuffers::Verifier verifier(data, bytes_in.size());
  if (!fb::VerifyEventBuffer(verifier)) {
    return fail(decode_errc::verify_failed, "FlatBuffers verification failed");
  }
  const fb::Event* ev = fb::GetEvent(data);
  if (ev->body_type() == fb::Body::NONE || ev->body() == nullptr) {
    return fail(decode_errc::missing_field, "event has no body");
  }
  if (ev->body_type() > fb::Body::MAX) {
    return fail(decode_errc::unknown_body,
                fmt::format("unknown body kind {} (written by a newer version?)",
                            static_cast<int>(ev->body_type())));
  }
  Event out;
  if (!uuid(ev->id(), out.id)) return fail(decode_errc::bad_field, "event id must be 16 bytes");
  out.at_ms = ev->at_ms();
  out.account = str(ev->account());
  if (const auto* a = ev->actor()) {
    if (a->protocol() > fb::Protocol::MAX) {
      return fail(decode_errc::bad_field,
                  fmt::format("unknown protocol {}", static_cast<int>(a->protocol())));
    }
    out.actor = Actor{static_cast<Protocol>(a->protocol()), str(a->user()), str(a->remote_ip()),
                      str(a->session_id())};
  }
  BodyDecoder d{*ev, out, {}};
  if (!d.decode()) return fail(decode_errc::bad_field, d.error);
  return out;
}

std::size_t max_encoded_size(std::size_t raw_size) {
  // Envelope, SMTP envelope with up to a few hundred recipients, flags: the
  // 64 KiB margin is generous; vtables and alignment add a few bytes.
  return raw_size + 64 * 1024;
}

}  // namespace a3::schemas

namespace a3::schemas {
void throw_exception_from_error(const DecodeError& e, const boost::source_location&) {
  throw std::runtime_error("event decode: " + e.detail);
}
}  // namespace a3::schemas
