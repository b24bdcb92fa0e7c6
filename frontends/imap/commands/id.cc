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
    // RFC 2971 3.3: at most 30 pairs, fields of at most 30 octets, values
    // of at most 1024; only beyond that is the command refused.
    int fields = 0;
    while (!p.consume(')')) {
      if (fields > 0) p.sp();
      if (p.string().size() > 30) throw ParseError("ID field name longer than 30 octets");
      p.sp();
      const auto value = p.nstring();
      if (value && value->size() > 1024) throw ParseError("ID value longer than 1024 octets");
      if (++fields > 30) throw ParseError("More than 30 ID fields");
    }
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  untagged("ID (\"name\" \"A3Mailer\" \"version\" \"0.1.0\")");
  tagged(tag, "OK", "ID completed");
}

}  // namespace a3::imap
