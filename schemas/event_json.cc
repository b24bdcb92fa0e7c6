#include "schemas/event_json.h"

#include <chrono>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/json.h"
#include "common/sha256.h"

namespace a3::schemas {

namespace {

std::string sha256_hex(std::string_view data) {
  return hex(sha256(data));
}

std::string iso_time(std::int64_t ms) {
  const std::chrono::sys_time<std::chrono::milliseconds> t{std::chrono::milliseconds(ms)};
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", t);
}

// Builds `"key":value` pairs of one JSON object.
class Fields {
 public:
  Fields& str(std::string_view k, std::string_view v) {
    key(k);
    append_json_string(out_, v);
    return *this;
  }
  Fields& num(std::string_view k, std::int64_t v) {
    key(k);
    fmt::format_to(std::back_inserter(out_), "{}", v);
    return *this;
  }
  Fields& boolean(std::string_view k, bool v) {
    key(k);
    out_ += v ? "true" : "false";
    return *this;
  }
  Fields& strs(std::string_view k, const std::vector<std::string>& v) {
    key(k);
    out_.push_back('[');
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i) out_.push_back(',');
      append_json_string(out_, v[i]);
    }
    out_.push_back(']');
    return *this;
  }
  Fields& uids(std::string_view k, const std::vector<std::uint32_t>& v) {
    key(k);
    fmt::format_to(std::back_inserter(out_), "[{}]", fmt::join(v, ","));
    return *this;
  }
  Fields& raw(std::string_view k, std::string_view json) {
    key(k);
    out_ += json;
    return *this;
  }
  std::string done() { return "{" + out_ + "}"; }

 private:
  void key(std::string_view k) {
    if (!out_.empty()) out_.push_back(',');
    append_json_string(out_, k);
    out_.push_back(':');
  }
  std::string out_;
};

struct BodyFields {
  Fields& f;
  void operator()(const AccountCreated& e) {
    f.str("name", e.name)
        .strs("addresses", e.addresses)
        .num("quota_bytes", static_cast<std::int64_t>(e.quota_bytes));
  }
  void operator()(const AccountPasswordChanged&) {}
  void operator()(const AccountDeleted& e) { f.str("reason", e.reason); }
  void operator()(const AccountAddressesChanged& e) { f.strs("addresses", e.addresses); }
  void operator()(const AccountQuotaChanged& e) {
    f.num("quota_bytes", static_cast<std::int64_t>(e.quota_bytes));
  }
  void operator()(const MailboxCreated& e) {
    f.str("mailbox_id", e.mailbox_id.str()).str("name", e.name).str("special_use", e.special_use);
  }
  void operator()(const MailboxRenamed& e) {
    f.str("mailbox_id", e.mailbox_id.str()).str("new_name", e.new_name);
  }
  void operator()(const MailboxDeleted& e) { f.str("mailbox_id", e.mailbox_id.str()); }
  void operator()(const MailboxSubscriptionChanged& e) {
    f.str("name", e.name).boolean("subscribed", e.subscribed);
  }
  void operator()(const MessageAppended& e) {
    f.str("mailbox_id", e.mailbox_id.str())
        .num("size", static_cast<std::int64_t>(e.raw.size()))
        .str("sha256", sha256_hex(e.raw))
        .str("internal_date", iso_time(e.internal_date_ms))
        .strs("flags", e.flags);
    if (e.smtp) {
      Fields s;
      s.str("mail_from", e.smtp->mail_from)
          .strs("rcpt_to", e.smtp->rcpt_to)
          .str("helo", e.smtp->helo)
          .str("remote_ip", e.smtp->remote_ip)
          .str("tls", e.smtp->tls)
          .str("auth_user", e.smtp->auth_user);
      if (const auto& a = e.smtp->authentication) {
        Fields r;
        r.str("spf", a->spf)
            .str("spf_domain", a->spf_domain)
            .str("dkim", a->dkim)
            .strs("dkim_domains", a->dkim_domains)
            .str("dmarc", a->dmarc)
            .str("dmarc_policy", a->dmarc_policy)
            .str("from_domain", a->from_domain)
            .str("disposition", a->disposition);
        s.raw("authentication", r.done());
      }
      f.raw("smtp", s.done());
    }
    if (e.staged) {
      // "size" and "sha256" above cover only `raw`, the start of the message.
      Fields s;
      s.str("blob_id", e.staged->blob_id.str())
          .num("started_ms", e.staged->started_ms)
          .num("size", static_cast<std::int64_t>(e.staged->size))
          .num("chunks", e.staged->chunks)
          .boolean("last_use", e.staged->last_use)
          .str("message_id", e.staged->message_id);
      f.raw("staged", s.done());
    }
  }
  void operator()(const MessagesCopied& e) {
    f.str("from_mailbox_id", e.from_mailbox_id.str())
        .uids("uids", e.uids)
        .str("to_mailbox_id", e.to_mailbox_id.str());
  }
  void operator()(const MessagesMoved& e) {
    f.str("from_mailbox_id", e.from_mailbox_id.str())
        .uids("uids", e.uids)
        .str("to_mailbox_id", e.to_mailbox_id.str());
  }
  void operator()(const FlagsChanged& e) {
    f.str("mailbox_id", e.mailbox_id.str())
        .uids("uids", e.uids)
        .str("op", to_string(e.op))
        .strs("flags", e.flags);
    if (e.unchanged_since) f.num("unchanged_since", static_cast<std::int64_t>(*e.unchanged_since));
  }
  void operator()(const MessagesExpunged& e) {
    f.str("mailbox_id", e.mailbox_id.str()).uids("uids", e.uids);
  }
  void operator()(const AuthSucceeded& e) { f.str("mechanism", e.mechanism).str("user", e.user); }
  void operator()(const BanAdded& e) {
    f.str("network", e.network)
        .str("reason", e.reason)
        .num("expires_ms", e.expires_ms)
        .str("rule", e.rule);
  }
  void operator()(const BanLifted& e) {
    f.str("network", e.network).str("reason", e.reason).num("expires_ms", e.expires_ms);
  }
  void operator()(const AuthFailed& e) {
    f.str("mechanism", e.mechanism).str("user", e.user).str("reason", e.reason);
  }
  void operator()(const SmtpRejected& e) {
    f.str("stage", e.stage)
        .num("code", e.code)
        .str("enhanced_code", e.enhanced_code)
        .str("reason", e.reason)
        .str("mail_from", e.mail_from)
        .str("rcpt_to", e.rcpt_to);
  }
  void operator()(const OutboundQueued& e) {
    std::vector<std::string> to;
    for (const auto& r : e.recipients)
      to.push_back(r.address);
    f.str("queue_id", e.queue_id.str())
        .str("mail_from", e.mail_from)
        .strs("recipients", to)
        .num("size", static_cast<std::int64_t>(e.raw.size() + (e.staged ? e.staged->size : 0)))
        .str("envid", e.envid)
        .boolean("ret_headers", e.ret_headers)
        .str("expires", iso_time(e.expires_ms))
        .boolean("smtputf8", e.smtputf8)
        .boolean("eightbit", e.eightbit);
    if (e.smtp) f.str("auth_user", e.smtp->auth_user).str("remote_ip", e.smtp->remote_ip);
  }
  void operator()(const DeliveryAttempted& e) {
    f.str("queue_id", e.queue_id.str())
        .strs("recipients", e.recipients)
        .str("host", e.host)
        .num("attempt", e.attempt);
  }
  void operator()(const Delivered& e) {
    f.str("queue_id", e.queue_id.str())
        .strs("recipients", e.recipients)
        .str("host", e.host)
        .str("reply", e.reply);
  }
  void operator()(const Deferred& e) {
    f.str("queue_id", e.queue_id.str())
        .strs("recipients", e.recipients)
        .str("host", e.host)
        .str("reply", e.reply)
        .str("next_attempt", iso_time(e.next_attempt_ms))
        .boolean("delay_reported", e.delay_reported);
  }
  void operator()(const Bounced& e) {
    f.str("queue_id", e.queue_id.str())
        .strs("recipients", e.recipients)
        .str("host", e.host)
        .str("reply", e.reply);
  }
  void operator()(const Expired& e) {
    f.str("queue_id", e.queue_id.str()).strs("recipients", e.recipients).str("reply", e.reply);
  }
  void operator()(const DeliveryRescheduled& e) {
    f.str("queue_id", e.queue_id.str()).str("next_attempt", iso_time(e.next_attempt_ms));
  }
  void operator()(const OutboundDeleted& e) {
    f.str("queue_id", e.queue_id.str()).str("reason", e.reason);
  }
  void operator()(const BodyChunk& e) {
    f.str("blob_id", e.blob_id.str())
        .num("started_ms", e.started_ms)
        .num("seq", e.seq)
        .num("size", static_cast<std::int64_t>(e.data.size()))
        .str("sha256", sha256_hex(e.data));
  }
};

std::string body_json(const Body& body) {
  Fields f;
  std::visit(BodyFields{f}, body);
  return f.done();
}

}  // namespace

std::string to_json(const Event& event) {
  Fields actor;
  actor.str("protocol", to_string(event.actor.protocol))
      .str("user", event.actor.user)
      .str("remote_ip", event.actor.remote_ip)
      .str("session_id", event.actor.session_id);
  Fields f;
  f.str("id", event.id.str())
      .str("at", iso_time(event.at_ms))
      .num("at_ms", event.at_ms)
      .str("kind", kind_name(event.body))
      .str("account", event.account)
      .raw("actor", actor.done())
      .raw("body", body_json(event.body));
  return f.done();
}

std::string to_text(const Event& event) {
  std::string who(to_string(event.actor.protocol));
  if (!event.actor.user.empty()) who += " " + event.actor.user;
  if (!event.actor.remote_ip.empty()) who += " from " + event.actor.remote_ip;
  return fmt::format("{} {} account={} by {} {}", iso_time(event.at_ms), kind_name(event.body),
                     json_string(event.account), who, body_json(event.body));
}

}  // namespace a3::schemas
