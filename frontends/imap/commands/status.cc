// STATUS: RFC 9051 6.3.11 STATUS.
//
// status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"

#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_status(const std::string& tag, Parser& p) {
  p.sp();
  const std::string wire = p.mailbox();
  const std::string name = decode_name(wire);
  p.sp();
  p.expect('(');
  std::vector<std::string> items;
  do {
    items.push_back(ascii::upper(p.atom()));
  } while (p.consume(' '));
  p.expect(')');
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  auto box = find_mailbox(name);
  if (!box) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  untagged(fmt::format("STATUS {} ({})", encode_name(name), status_items(*box, items)));
  tagged(tag, "OK", "STATUS completed");
}

}  // namespace a3::imap
