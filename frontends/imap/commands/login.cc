// LOGIN: RFC 9051 6.2.3 LOGIN.
//
// login = "LOGIN" SP userid SP password
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/clock.h"
#include "frontends/imap/mailbox_names.h"
#include "frontends/imap/message_text.h"
#include "frontends/imap/replies.h"
#include "frontends/imap/session.h"
#include "frontends/net/sasl.h"
#include "frontends/net/staged.h"
#include "mime/mime.h"

namespace a3::imap {

using projections::MailboxRecord;
using projections::MessageRecord;
using projections::OutcomeCode;

void Session::cmd_login(const std::string& tag, Parser& p) {
  p.sp();
  std::string user = p.astring();
  p.sp();
  std::string password = p.astring();
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (!info_.tls_active && !info_.allow_plaintext_auth) {
    return tagged(tag, "NO", "[PRIVACYREQUIRED] Use STARTTLS first");
  }
  pending_tag_ = tag;
  pending_auth_ = AuthRequest{"LOGIN", std::move(user), std::move(password)};
  state_ = State::awaiting_auth;
}

}  // namespace a3::imap
