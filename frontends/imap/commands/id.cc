// ID: RFC 2971 3.1 ID.
//
// id = "ID" SP id-params-list
// id-params-list = "(" *(string SP nstring) ")" / nil

#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_id(const std::string& tag, Parser& p) {
  // RFC 2971: the client's fields are read and ignored.
  p.sp();
  if (!p.keyword("NIL")) {
    p.expect('(');
    int fields = 0;
    while (!p.consume(')')) {
      if (fields > 0) p.sp();
      p.string();
      p.sp();
      p.nstring();
      if (++fields > 30) throw ParseError("Too many ID fields");
    }
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  untagged("ID (\"name\" \"A3Mailer\" \"version\" \"0.1.0\")");
  tagged(tag, "OK", "ID completed");
}

}  // namespace a3::imap
