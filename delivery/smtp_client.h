// The SMTP client of outbound delivery (RFC 5321, with RFC 3207 STARTTLS,
// RFC 4954 AUTH PLAIN to a relay, RFC 2920 PIPELINING, RFC 1870 SIZE,
// RFC 6152 8BITMIME, RFC 6531 SMTPUTF8): one transaction to one server
// address, every step under a deadline, every reply bounded.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "delivery/resolver.h"

namespace a3::delivery {

struct Server {
  std::string host;     // the name connected to (MX host, relay), for SNI and logs
  std::string address;  // IP literal
  std::uint16_t port = 25;
  // DANE (RFC 7672), from DNSSEC-validated TLSA records of the host: TLS is
  // then mandatory, and the certificate must match one of `tlsa` (DANE-TA
  // or DANE-EE); records present but none usable: TLS, unauthenticated.
  bool dane = false;
  std::vector<Tlsa> tlsa{};   // the usable ones (usages 2 and 3)
  std::string label() const;  // "mx.example.net[192.0.2.1]:25"
};

struct ClientOptions {
  std::string helo;  // our hostname
  int connect_timeout_s = 30;
  int command_timeout_s = 300;
  int data_timeout_s = 600;  // the final reply (RFC 5321 4.5.3.2.6: 10 minutes)
  bool require_tls = false;
  // AUTH PLAIN after STARTTLS (a relay); never over plaintext.
  std::string auth_user, auth_password;
};

struct Outgoing {
  std::string mail_from;  // "" for <>
  std::vector<std::string> recipients;
  const std::string* body = nullptr;  // the message, CRLF lines, not dot-stuffed
  bool eightbit = false;
  bool smtputf8 = false;
  // RFC 3461, passed on to a server that offers DSN (it reports from then
  // on): per recipient, in the order of `recipients`.
  std::vector<std::uint8_t> notify{};  // schemas::Notify bits; 0 or missing: not given
  std::vector<std::string> orcpt{};    // "rfc822;bob@example.net" (decoded); "": none
  std::string envid{};                 // decoded; "": none
  bool ret_headers = false;            // RET=HDRS
};

// The outcome for one recipient, or for all of them when the transaction
// did not get as far as its RCPT (then `session_failed`).
struct Reply {
  int code = 0;      // 2xx, 4xx, 5xx; 0 when no server answered
  std::string text;  // the reply as received (lines joined by " / ", at most 1 KiB), or why none
  std::vector<std::string> lines{};  // every line (EHLO's extensions)
  bool permanent() const { return code >= 500; }
  bool ok() const { return code >= 200 && code < 300; }
};

struct TransactionResult {
  // The server could not take the message at all (no connection, greeting
  // or EHLO refused, TLS required and missing, MAIL refused...): `session`
  // says why, and the next server may be tried.
  bool session_failed = false;
  Reply session;
  // The failure is this server's (no connection, greeting, TLS, EHLO...):
  // another server may do better. Otherwise (MAIL refused, too large, no
  // SMTPUTF8) it is the message's, and `session` answers every recipient.
  bool try_next = true;
  std::vector<Reply> recipients;  // one per Outgoing::recipients, when !session_failed
  bool dsn = false;               // the server offered DSN: the parameters went with the message
};

// Sends `message` to `server` on a connection of its own, closed after.
// `tls`: the client context for STARTTLS (opportunistic unless
// require_tls; peers are not verified: RFC 7435).
boost::asio::awaitable<TransactionResult> send_message(const Server& server,
                                                       const ClientOptions& options,
                                                       boost::asio::ssl::context& tls,
                                                       const Outgoing& message);

// How long connections are kept for the next message to the same server
// (Postfix's connection cache: a few seconds idle, a bounded age and count).
struct CacheLimits {
  int idle_s = 5;                       // closed after this long without a message
  int max_messages = 100;               // then a new connection
  int max_age_s = 300;                  // then a new connection
  std::size_t max_idle_per_server = 4;  // idle connections kept per server
};

// Connections kept between transactions, one io_context's (not
// thread-safe): a message to a server with an idle connection goes on it
// (RFC 5321 4.1.1.4: after the reply to the end of data, the next MAIL), with
// no new TCP, TLS or AUTH. A kept connection that the server closed
// meanwhile is replaced transparently: nothing was delivered on it.
class ConnectionCache {
 public:
  explicit ConnectionCache(CacheLimits limits = {});
  ~ConnectionCache();
  ConnectionCache(const ConnectionCache&) = delete;
  ConnectionCache& operator=(const ConnectionCache&) = delete;

  boost::asio::awaitable<TransactionResult> send(const Server& server, const ClientOptions& options,
                                                 boost::asio::ssl::context& tls,
                                                 const Outgoing& message);
  std::size_t idle() const;
  void close_all();

 private:
  struct Idle;
  static std::string key(const Server& server, const ClientOptions& options);
  CacheLimits limits_;
  std::vector<Idle> idle_;
  bool closed_ = false;  // close_all(): nothing is kept any more
};

// The body as DATA sends it: dot-stuffed, ending in CRLF "." CRLF.
std::string dot_stuff(const std::string& body);

}  // namespace a3::delivery
