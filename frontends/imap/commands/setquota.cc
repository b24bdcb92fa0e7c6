// SETQUOTA: RFC 9208 4.1.3. Quotas are the operator's (a3ctl account quota,
// an event like any other change), so QUOTASET is not advertised and a
// well-formed SETQUOTA is refused.
//
// setquota          = "SETQUOTA" SP quota-root-name SP setquota-list
// setquota-list     = "(" [setquota-resource *(SP setquota-resource)] ")"
// setquota-resource = resource-name SP resource-limit
#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_setquota(const std::string& tag, Parser& p) {
  p.sp();
  p.astring();
  p.sp();
  p.expect('(');
  for (bool first = true; !p.consume(')'); first = false) {
    if (!first) p.sp();
    p.atom();
    p.sp();
    p.number64();
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  tagged(tag, "NO", "[NOPERM] Quotas are set by the administrator");
}

}  // namespace a3::imap
