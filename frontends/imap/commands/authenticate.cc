// AUTHENTICATE: RFC 9051 6.2.2 AUTHENTICATE, RFC 4959 SASL-IR.
//
// authenticate = "AUTHENTICATE" SP auth-type [SP initial-resp] *(CRLF base64)

#include "common/ascii.h"
#include "frontends/imap/session.h"
#include "frontends/net/sasl.h"

namespace a3::imap {

void Session::cmd_authenticate(const std::string& tag, Parser& p) {
  p.sp();
  const std::string mech = ascii::upper(p.atom());
  if (mech != "PLAIN") {
    if (!p.at_end()) p.sp(), p.atom();
    return tagged(tag, "NO", "[CANNOT] Unsupported mechanism");
  }
  if (!info_.tls_active && !info_.allow_plaintext_auth) {
    return tagged(tag, "NO", "[PRIVACYREQUIRED] Use STARTTLS first");
  }
  if (p.consume(' ')) {
    // RFC 4959 SASL-IR; "=" is an empty initial response.
    const std::string ir = p.atom();
    if (!p.at_end()) throw ParseError("Unexpected arguments");
    auto decoded = ir == "=" ? std::optional<std::string>("") : net::base64_decode(ir);
    if (!decoded) return tagged(tag, "BAD", "Invalid base64");
    pending_tag_ = tag;
    return sasl_plain(*decoded);
  }
  sasl_tag_ = tag;
  out_ += "+ \r\n";
  state_ = State::sasl;
}

// RFC 4616: [authzid] NUL authcid NUL passwd. Acting for another user is not
// offered: an authzid must name the same user.
void Session::sasl_plain(const std::string& response) {
  auto plain = net::parse_plain(response);
  if (!plain) return tagged(pending_tag_, "BAD", "Malformed PLAIN response");
  if (plain->other_identity) {
    return tagged(pending_tag_, "NO", "[AUTHORIZATIONFAILED] Cannot act for another user");
  }
  pending_auth_ = AuthRequest{"PLAIN", std::move(plain->user), std::move(plain->password)};
  state_ = State::awaiting_auth;
}

}  // namespace a3::imap
