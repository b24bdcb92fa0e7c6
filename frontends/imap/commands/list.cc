// LIST: RFC 9051 6.3.9 LIST, RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS; LSUB (RFC 3501 6.3.9).
//
// list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]
#include <map>
#include <set>

#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/imap/mailbox_names.h"
#include "frontends/imap/session.h"

namespace a3::imap {

using projections::MailboxRecord;

void Session::list_mailboxes(const std::string& tag, Parser& p, bool lsub) {
  p.sp();
  bool sel_subscribed = false, recursive = false, special_only = false;
  bool ret_subscribed = false, ret_children = true, ret_special = true;
  std::vector<std::string> status;
  bool extended = false;
  if (!lsub && p.peek() == '(') {
    // RFC 5258 selection options
    extended = true;
    p.expect('(');
    while (!p.consume(')')) {
      p.consume(' ');
      const std::string opt = ascii::upper(p.atom());
      if (opt == "SUBSCRIBED") {
        sel_subscribed = true;
      } else if (opt == "RECURSIVEMATCH") {
        recursive = true;
      } else if (opt == "SPECIAL-USE") {
        special_only = true;  // RFC 6154 5.1: only mailboxes with a special use
      } else if (opt != "REMOTE") {
        throw ParseError("Unknown LIST selection option");
      }
    }
    p.sp();
  }
  if (recursive && !sel_subscribed) throw ParseError("RECURSIVEMATCH needs another option");
  const std::string reference = decode_name(p.astring());
  p.sp();
  std::vector<std::string> patterns;
  if (!lsub && p.peek() == '(') {
    extended = true;
    p.expect('(');
    do {
      patterns.push_back(p.list_mailbox());
    } while (p.consume(' '));
    p.expect(')');
  } else {
    patterns.push_back(p.list_mailbox());
  }
  if (!lsub && p.consume(' ')) {
    extended = true;
    if (!p.keyword("RETURN")) throw ParseError("Expected RETURN");
    p.sp();
    p.expect('(');
    while (!p.consume(')')) {
      p.consume(' ');
      const std::string opt = ascii::upper(p.atom());
      if (opt == "SUBSCRIBED") {
        ret_subscribed = true;
      } else if (opt == "CHILDREN") {
        ret_children = true;
      } else if (opt == "SPECIAL-USE") {
        ret_special = true;
      } else if (opt == "STATUS") {
        p.sp();
        p.expect('(');
        do {
          status.push_back(ascii::upper(p.atom()));
        } while (p.consume(' '));
        p.expect(')');
      } else {
        throw ParseError("Unknown LIST return option");
      }
    }
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  (void)extended;

  if (patterns.size() == 1 && patterns[0].empty() && !lsub) {
    // RFC 9051 6.3.9: the delimiter and root of the reference.
    untagged("LIST (\\Noselect) \"/\" \"\"");
    return tagged(tag, "OK", "LIST completed");
  }
  const auto boxes = store_.mailboxes(account_);
  const auto subs_list = store_.subscriptions(account_);
  const std::set<std::string> subs(subs_list.begin(), subs_list.end());
  std::map<std::string, const MailboxRecord*> by_name;
  for (const auto& b : boxes)
    by_name[b.name] = &b;
  // Every name and its superiors (which may not exist: \NonExistent).
  std::set<std::string> names;
  for (const auto& b : boxes)
    names.insert(b.name);
  if (sel_subscribed || lsub) {
    for (const auto& s : subs)
      names.insert(s);
  }
  for (const auto& n : std::set<std::string>(names)) {
    for (auto slash = n.find('/'); slash != std::string::npos; slash = n.find('/', slash + 1))
      names.insert(n.substr(0, slash));
  }
  auto has_children = [&](const std::string& n) {
    auto it = names.upper_bound(n + "/");
    if (it != names.end() && it->starts_with(n + "/")) return true;
    return names.contains(n + "/");
  };
  // The patterns as full names: reference + pattern, INBOX in any case
  // folded as the store folds it.
  std::vector<std::string> full_patterns;
  for (const auto& pat : patterns) {
    if (pat.size() > 1024) throw ParseError("Pattern too long");
    std::string full = reference + decode_name(pat);
    if (ascii::istarts_with(full, "INBOX") && (full.size() == 5 || full[5] == '/'))
      full.replace(0, 5, "INBOX");
    full_patterns.push_back(std::move(full));
  }
  auto matches_pattern = [&](const std::string& n) {
    for (const auto& full : full_patterns) {
      if (wildcard(full, n)) return true;
    }
    return false;
  };
  // RFC 5258 3.5: a subscribed descendant that the patterns do not match
  // themselves (with RECURSIVEMATCH); for LSUB, any subscribed descendant.
  auto child_subscribed = [&](const std::string& n) {
    for (const auto& s : subs) {
      if (s.starts_with(n + "/") && (!recursive || !matches_pattern(s))) return true;
    }
    return false;
  };
  static const std::set<std::string> kStatusItems = {
      "MESSAGES",      "UIDNEXT",     "UIDVALIDITY", "UNSEEN", "SIZE",
      "HIGHESTMODSEQ", "APPENDLIMIT", "DELETED",     "RECENT", "DELETED-STORAGE"};
  for (const auto& item : status) {
    if (!kStatusItems.contains(item)) throw ParseError("Unknown STATUS item " + item);
  }
  for (const auto& name : names) {
    if (!matches_pattern(name)) continue;
    const auto* box = by_name.contains(name) ? by_name[name] : nullptr;
    const bool subscribed = subs.contains(name);
    std::vector<std::string> attrs;
    if (lsub) {
      if (!subscribed) {
        // RFC 3501 6.3.9: a superior of a subscribed name is \Noselect
        if (!child_subscribed(name)) continue;
        attrs.push_back("\\Noselect");
      }
    } else if (sel_subscribed) {
      if (!subscribed) {
        if (!recursive || !child_subscribed(name)) continue;
      }
      if (!box) attrs.push_back("\\NonExistent");
      if (subscribed) attrs.push_back("\\Subscribed");
    } else {
      if (!box) attrs.push_back("\\Noselect");
      if (ret_subscribed && subscribed) attrs.push_back("\\Subscribed");
    }
    if (special_only && !(box && !box->special_use.empty())) continue;
    if (!lsub && ret_children && (box || !sel_subscribed))
      attrs.push_back(has_children(name) ? "\\HasChildren" : "\\HasNoChildren");
    if (ret_special && box && !box->special_use.empty()) attrs.push_back(box->special_use);
    if (recursive && sel_subscribed && !subscribed && child_subscribed(name))
      attrs.push_back("");  // CHILDINFO below
    std::string attr_text;
    bool childinfo = false;
    for (const auto& a : attrs) {
      if (a.empty()) {
        childinfo = true;
        continue;
      }
      if (!attr_text.empty()) attr_text += ' ';
      attr_text += a;
    }
    std::string line =
        fmt::format("{} ({}) \"/\" {}", lsub ? "LSUB" : "LIST", attr_text, encode_name(name));
    if (childinfo) line += " (\"CHILDINFO\" (\"SUBSCRIBED\"))";
    untagged(line);
    if (!status.empty() && box) {
      try {
        untagged(fmt::format("STATUS {} ({})", encode_name(name), status_items(*box, status)));
      } catch (const ParseError&) {
        return bad(tag, "Unknown STATUS item");
      }
    }
  }
  tagged(tag, "OK", lsub ? "LSUB completed" : "LIST completed");
}

void Session::cmd_list(const std::string& tag, Parser& p) {
  list_mailboxes(tag, p, false);
}

}  // namespace a3::imap
