// From an accepted SMTP transaction to events: which recipients are ours,
// and the MessageAppended events (one per recipient account, into its INBOX)
// that deliver a message, each with a Received: header (RFC 5321 4.4).
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "delivery/dkim.h"
#include "frontends/net/staged.h"
#include "frontends/smtp/session.h"
#include "projections/store.h"
#include "schemas/event.h"

namespace a3::smtp {

using net::chunk_events;
using net::chunk_keys;
using net::StagedStream;

// Recipients in local domains that deliver to an account; other domains'
// only for clients that may relay (authenticated, or in a trusted network),
// and only with outbound delivery enabled: never an open relay.
class StorePolicy : public Policy {
 public:
  StorePolicy(const projections::Store& store, std::vector<std::string> local_domains,
              bool outbound = false);
  Rcpt check_recipient(const Mailbox& to, bool may_relay, std::uint64_t declared_size,
                       Recipient& out) override;
  bool sender_allowed(const std::string& auth_user, const Mailbox& from) override;
  bool would_block() override { return projections::Store::reads_would_block(); }

 private:
  const projections::Store& store_;
  std::vector<std::string> local_domains_;  // lowercase
  bool outbound_;
};

struct DeliveryContext {
  std::string hostname;  // ours
  std::string remote_ip;
  std::string session_id;
  std::string tls;        // e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"; empty without TLS
  std::string auth_user;  // empty when not authenticated
  schemas::Protocol protocol = schemas::Protocol::smtp;
  std::int64_t now_ms = 0;
  std::int64_t queue_lifetime_ms = 5ll * 86400 * 1000;  // outbound: then Expired
  // Signs what is queued for other domains, when the sender's domain has a
  // key; a staged message's signature is computed while it streams in.
  const delivery::DkimSigner* dkim = nullptr;
  std::optional<std::string> staged_signature{};
  // Mail received on the MX, when it was checked: the Authentication-Results
  // header field (prepended), the results for the event, and whether DMARC
  // files it as junk.
  std::string authentication_results{};
  std::optional<schemas::Authentication> authentication{};
  bool quarantine = false;
  // The envelope sender's INBOX when it is one of ours, for "delivered"
  // reports (RFC 3461); others get theirs through the queue, from <>.
  std::optional<Recipient> sender_inbox{};
  // Whether "delivered" reports may go to the envelope sender: not for
  // an unauthenticated MX client whose MAIL FROM did not pass SPF, nor for
  // quarantined mail (reports to forged senders are backscatter).
  bool success_reports_allowed = true;
};

// The domain whose DKIM key signs a message: the envelope sender's (""
// for the null sender: never signed).
std::string signing_domain(const Envelope& env);

// The partition key of a queued message's events: the submitter's account,
// or "relay" for a trusted network's client that did not authenticate.
std::string outbound_account(const DeliveryContext& ctx);

// RFC 5321 4.4 trace field, with the RFC 3848 / RFC 6531 "with" keyword
// (ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP...).
std::string received_header(const Envelope& env, const DeliveryContext& ctx,
                            std::string_view for_rcpt);

// One MessageAppended per recipient account, and one OutboundQueued for
// the recipients in other domains (last). The event id is derived from
// the account, the envelope sender and the message bytes, so that a client
// retrying after a lost 250 (or after a partial failure) appends events the
// projection recognises as duplicates: delivered once, never zero times.
// With `staged`, the body went ahead as chunks (msg.data is then empty), and
// the last event of each partition (per `partition`) releases them.
std::vector<schemas::Event> delivery_events(
    const Message& msg, const DeliveryContext& ctx, StagedStream* staged = nullptr,
    const std::function<std::int32_t(std::string_view)>& partition = {});

// Appends the next piece of a staged body (one BodyChunk per key) and
// completes once it is durable, so at most one chunk per session is in
// memory. A chunk the log does not take marks the stream failed.
boost::asio::awaitable<void> stream_chunk(projections::Store& store, StagedStream& stream,
                                          const std::vector<std::string>& keys, std::string data,
                                          DeliveryContext& ctx);

// Delivers an accepted message through the store, received at ctx.now_ms
// (the Received: header's time): nullopt once every event
// is durable (the session answers 250), or why not (smtp/replies.h maps it:
// 451 when the log did not take it, 452/552 over quota).
// It reads nothing from the view: what it needs was found at RCPT
// (Recipient), so the caller's thread never waits for the store here.
boost::asio::awaitable<std::optional<projections::errc>> deliver(projections::Store& store,
                                                                 const Message& msg,
                                                                 DeliveryContext& ctx,
                                                                 StagedStream* staged);

}  // namespace a3::smtp
