// The SMTP client of outbound delivery (RFC 5321, with RFC 3207 STARTTLS,
// RFC 4954 AUTH PLAIN to a relay, RFC 2920 PIPELINING, RFC 1870 SIZE,
// RFC 6152 8BITMIME, RFC 6531 SMTPUTF8): one transaction to one server
// address, every step under a deadline, every reply bounded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

namespace a3::delivery {

struct Server {
  std::string host;     // the name connected to (MX host, relay), for SNI and logs
  std::string address;  // IP literal
  std::uint16_t port = 25;
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
};

// Sends `message` to `server`. `tls`: the client context for STARTTLS
// (opportunistic unless require_tls; peers are not verified: RFC 7435).
boost::asio::awaitable<TransactionResult> send_message(const Server& server,
                                                       const ClientOptions& options,
                                                       boost::asio::ssl::context& tls,
                                                       const Outgoing& message);

// The body as DATA sends it: dot-stuffed, ending in CRLF "." CRLF.
std::string dot_stuff(const std::string& body);

}  // namespace a3::delivery
