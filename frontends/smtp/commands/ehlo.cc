// EHLO and HELO: RFC 5321 4.1.1.1 (EHLO resets the transaction, 4.1.4), RFC 1869.
//
// ehlo = "EHLO" SP ( Domain / address-literal ) CRLF
// helo = "HELO" SP Domain CRLF
#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/net/sasl.h"
#include "frontends/smtp/replies.h"
#include "frontends/smtp/session.h"

namespace a3::smtp {

void Session::ehlo(std::string_view arg, bool extended) {
  if (arg.empty())
    return error(fmt::format("501 5.5.4 {} needs a domain", extended ? "EHLO" : "HELO"));
  // A domain or address literal: no spaces or control characters (it ends
  // up in the Received: header).
  for (char c : arg) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return error("501 5.5.4 Invalid domain name");
  }
  // RFC 5321 4.1.4: EHLO resets the transaction.
  reset_transaction();
  env_.helo = std::string(arg);
  have_helo_ = true;
  if (!extended) return reply(fmt::format("250 {}", info_.hostname));
  std::vector<std::string> lines = {
      fmt::format("{} greets {}", info_.hostname, arg),
      "PIPELINING",
      fmt::format("SIZE {}", limits_.max_message_size),
      "8BITMIME",
      "ENHANCEDSTATUSCODES",
      "SMTPUTF8",
      "CHUNKING",
      "DSN",
  };
  if (limits_.enable_vrfy) lines.push_back("VRFY");
  if (auth_offered()) lines.push_back("AUTH PLAIN LOGIN");
  if (info_.tls_available && !info_.tls_active) lines.push_back("STARTTLS");
  for (std::size_t i = 0; i < lines.size(); ++i) {
    reply(fmt::format("250{}{}", i + 1 == lines.size() ? " " : "-", lines[i]));
  }
}

void Session::cmd_ehlo(std::string_view arg) {
  ehlo(arg, true);
}

}  // namespace a3::smtp
