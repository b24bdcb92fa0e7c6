// NAMESPACE: RFC 9051 6.3.10 NAMESPACE.
//
// namespace = "NAMESPACE"

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_namespace(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("NAMESPACE takes no arguments");
  untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
  tagged(tag, "OK", "NAMESPACE completed");
}

}  // namespace a3::imap
