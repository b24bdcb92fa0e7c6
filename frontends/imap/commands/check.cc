// CHECK: RFC 3501 6.4.1 CHECK (IMAP4rev1; a NOOP here).
//
// command-select = "CHECK" / ...

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_check(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("CHECK takes no arguments");
  tagged(tag, "OK", "CHECK completed");
}

}  // namespace a3::imap
