// SASL pieces shared by SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH:
// base64 (RFC 4648) and the PLAIN mechanism's message (RFC 4616).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace a3::net {

// Strict: no whitespace, correct padding, zero pad bits; nullopt otherwise.
std::optional<std::string> base64_decode(std::string_view in);

// A login a session hands to its server: the server serves the IP's
// penalty, checks the password off the I/O threads and answers the session.
struct AuthRequest {
  std::string mechanism;  // as audited: "PLAIN", "LOGIN", POP3's "USER"
  std::string user;       // the authentication identity, as sent
  std::string password;
};

struct PlainCredentials {
  std::string user;
  std::string password;
  // An authorization identity other than the user: acting for another
  // user is not offered, so the login must fail.
  bool other_identity = false;
};

// [authzid] NUL authcid NUL passwd; nullopt if malformed (RFC 4616 2: an
// empty authcid or passwd, or a NUL in passwd, is malformed).
std::optional<PlainCredentials> parse_plain(std::string_view decoded);

}  // namespace a3::net
