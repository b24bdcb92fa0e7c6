// IDLE: RFC 9051 6.3.13 IDLE (RFC 2177).
//
// idle = "IDLE" CRLF "DONE"

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_idle(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("IDLE takes no arguments");
  if (sel_) report_changes(true);
  out_ += "+ idling\r\n";
  idling_ = true;
  idle_tag_ = tag;
}

}  // namespace a3::imap
