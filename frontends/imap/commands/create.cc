// CREATE: RFC 9051 6.3.4 CREATE, RFC 6154 CREATE-SPECIAL-USE.
//
// create = "CREATE" SP mailbox [create-params]

#include "common/ascii.h"
#include "frontends/imap/mailbox_names.h"
#include "frontends/imap/session.h"

namespace a3::imap {

using projections::OutcomeCode;

void Session::cmd_create(const std::string& tag, Parser& p) {
  p.sp();
  std::string name = decode_name(p.mailbox());
  std::string special_use;
  if (p.consume(' ')) {
    // RFC 6154 CREATE-SPECIAL-USE: (USE (\Sent))
    p.expect('(');
    if (!p.keyword("USE")) throw ParseError("Unknown CREATE parameter");
    p.sp();
    const auto uses = p.flag_list();
    p.expect(')');
    static const char* known[] = {"\\All",  "\\Archive", "\\Drafts", "\\Flagged",
                                  "\\Junk", "\\Sent",    "\\Trash"};
    for (const auto& u : uses) {
      bool ok = false;
      for (const char* k : known)
        ok = ok || ascii::iequals(u, k);
      if (!ok) return tagged(tag, "NO", "[USEATTR] Unsupported special-use attribute");
    }
    if (uses.size() > 1) return tagged(tag, "NO", "[USEATTR] One special-use attribute at most");
    if (!uses.empty()) special_use = uses[0];
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (!name.empty() && name.back() == '/') name.pop_back();  // RFC 9051 6.3.4
  if (name == "INBOX") return tagged(tag, "NO", "[ALREADYEXISTS] INBOX exists");
  if (!valid_name(name)) return tagged(tag, "NO", "[CANNOT] Invalid mailbox name");
  if (find_mailbox(name)) return tagged(tag, "NO", "[ALREADYEXISTS] Mailbox exists");
  // Superior names are created as needed (RFC 9051 6.3.4), in the same
  // write, before the mailbox itself.
  std::vector<schemas::Body> events;
  for (std::size_t slash = name.find('/'); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    const std::string parent = name.substr(0, slash);
    if (find_mailbox(parent) || ascii::iequals(parent, "INBOX")) continue;
    events.emplace_back(schemas::MailboxCreated{schemas::Uuid::v7(), parent, ""});
  }
  events.emplace_back(schemas::MailboxCreated{schemas::Uuid::v7(), name, special_use});
  execute(tag, std::move(events), [this, tag](const Outcomes& outcomes) {
    const auto& o = outcomes.back();
    if (o.code == OutcomeCode::mailbox_exists)
      return tagged(tag, "NO", "[ALREADYEXISTS] Mailbox exists");
    if (!o.ok()) return tagged(tag, "NO", "[CANNOT] " + o.detail);
    tagged(tag, "OK", "CREATE completed");
  });
}

}  // namespace a3::imap
