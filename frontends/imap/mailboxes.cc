// The commands on mailboxes: CREATE, DELETE, RENAME, SUBSCRIBE, LIST/LSUB,
// NAMESPACE, STATUS, APPEND, IDLE, CHECK, CLOSE/UNSELECT, and mailbox names.
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/clock.h"
#include "frontends/imap/session.h"
#include "frontends/net/staged.h"
#include "mime/mime.h"

namespace a3::imap {

using projections::MailboxRecord;
using projections::OutcomeCode;

namespace {

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 1000 || name.front() == '/' || name.back() == '/') return false;
  std::size_t start = 0;
  for (;;) {
    const auto slash = name.find('/', start);
    const std::string_view part = std::string_view(name).substr(
        start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '%' || c == '*') return false;
  }
  return true;
}

// LIST wildcard match (RFC 9051 6.3.9): '*' matches anything, '%' anything
// but the hierarchy delimiter. Linear in pattern x name (no backtracking).
bool wildcard(std::string_view pattern, std::string_view name) {
  // reach[j]: the pattern so far can match name[0, j).
  std::vector<char> reach(name.size() + 1, 0), next(name.size() + 1, 0);
  reach[0] = 1;
  for (const char p : pattern) {
    std::fill(next.begin(), next.end(), 0);
    if (p == '*' || p == '%') {
      bool open = false;
      for (std::size_t j = 0; j <= name.size(); ++j) {
        open = open || reach[j];
        next[j] = open;
        // '%' does not cross a delimiter.
        if (p == '%' && j < name.size() && name[j] == '/') open = false;
      }
    } else {
      for (std::size_t j = 0; j < name.size(); ++j)
        next[j + 1] = reach[j] && name[j] == p;
    }
    reach.swap(next);
  }
  return reach[name.size()];
}

}  // namespace

std::string Session::decode_name(const std::string& wire) const {
  if (ascii::iequals(wire, "INBOX")) return "INBOX";
  if (rev2_ || utf8_) return wire;
  // A name that is not valid modified UTF-7 is taken as sent.
  return utf7_decode(wire).value_or(wire);
}

std::string Session::encode_name(const std::string& name) const {
  if (rev2_ || utf8_) return mime::imap_string(name);
  return mime::imap_string(utf7_encode(name));
}

std::optional<MailboxRecord> Session::find_mailbox(const std::string& name) const {
  return store_.mailbox(account_, name);
}

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
  // Superior names are created as needed (RFC 9051 6.3.4).
  for (std::size_t slash = name.find('/'); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    const std::string parent = name.substr(0, slash);
    if (find_mailbox(parent) || ascii::iequals(parent, "INBOX")) continue;
    auto o = execute(tag, schemas::MailboxCreated{schemas::Uuid::v7(), parent, ""});
    if (!o) return;
  }
  auto o = execute(tag, schemas::MailboxCreated{schemas::Uuid::v7(), name, special_use});
  if (!o) return;
  if (o->code == OutcomeCode::mailbox_exists)
    return tagged(tag, "NO", "[ALREADYEXISTS] Mailbox exists");
  if (!o->ok()) return tagged(tag, "NO", "[CANNOT] " + o->detail);
  tagged(tag, "OK", "CREATE completed");
}

void Session::cmd_delete(const std::string& tag, Parser& p) {
  p.sp();
  const std::string name = decode_name(p.mailbox());
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (name == "INBOX") return tagged(tag, "NO", "[CANNOT] INBOX cannot be deleted");
  auto box = find_mailbox(name);
  if (!box) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  if (sel_ && sel_->box.id == box->id) sel_.reset();
  auto o = execute(tag, schemas::MailboxDeleted{box->id});
  if (!o) return;
  if (!o->ok()) return tagged(tag, "NO", "[NONEXISTENT] " + o->detail);
  tagged(tag, "OK", "DELETE completed");
}

void Session::cmd_rename(const std::string& tag, Parser& p) {
  p.sp();
  const std::string from = decode_name(p.mailbox());
  p.sp();
  std::string to = decode_name(p.mailbox());
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (!to.empty() && to.back() == '/') to.pop_back();
  auto box = find_mailbox(from);
  if (!box) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  if (to == "INBOX" || !valid_name(to)) return tagged(tag, "NO", "[CANNOT] Invalid target name");
  if (find_mailbox(to)) return tagged(tag, "NO", "[ALREADYEXISTS] Target mailbox exists");
  if (from == "INBOX") {
    // RFC 9051 6.3.6: INBOX's messages move to the new mailbox; INBOX stays.
    const schemas::Uuid id = schemas::Uuid::v7();
    auto created = execute(tag, schemas::MailboxCreated{id, to, ""});
    if (!created) return;
    if (!created->ok()) return tagged(tag, "NO", "[CANNOT] " + created->detail);
    std::vector<std::uint32_t> uids;
    for (const auto& m : store_.messages(box->id))
      uids.push_back(m.uid);
    if (!uids.empty()) {
      auto moved = execute(tag, schemas::MessagesMoved{box->id, uids, id});
      if (!moved) return;
    }
    return tagged(tag, "OK", "RENAME completed");
  }
  for (std::size_t slash = to.find('/'); slash != std::string::npos;
       slash = to.find('/', slash + 1)) {
    const std::string parent = to.substr(0, slash);
    if (find_mailbox(parent) || parent == from) continue;
    auto o = execute(tag, schemas::MailboxCreated{schemas::Uuid::v7(), parent, ""});
    if (!o) return;
  }
  auto o = execute(tag, schemas::MailboxRenamed{box->id, to});
  if (!o) return;
  if (o->code == OutcomeCode::mailbox_exists)
    return tagged(tag, "NO", "[ALREADYEXISTS] " + o->detail);
  if (!o->ok()) return tagged(tag, "NO", "[CANNOT] " + o->detail);
  if (sel_ && sel_->box.id == box->id) sel_->box.name = to;
  tagged(tag, "OK", "RENAME completed");
}

void Session::cmd_subscribe(const std::string& tag, Parser& p, bool subscribe) {
  p.sp();
  const std::string name = decode_name(p.mailbox());
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (!valid_name(name) && name != "INBOX") return tagged(tag, "NO", "[CANNOT] Invalid name");
  auto o = execute(tag, schemas::MailboxSubscriptionChanged{name, subscribe});
  if (!o) return;
  tagged(tag, "OK", subscribe ? "SUBSCRIBE completed" : "UNSUBSCRIBE completed");
}

void Session::cmd_namespace(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("NAMESPACE takes no arguments");
  untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
  tagged(tag, "OK", "NAMESPACE completed");
}

void Session::cmd_list(const std::string& tag, Parser& p, bool lsub) {
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
  static const std::set<std::string> kStatusItems = {"MESSAGES",    "UIDNEXT", "UIDVALIDITY",
                                                     "UNSEEN",      "SIZE",    "HIGHESTMODSEQ",
                                                     "APPENDLIMIT", "DELETED", "RECENT"};
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

std::string Session::status_items(const MailboxRecord& box, const std::vector<std::string>& items) {
  std::string out;
  std::optional<std::vector<projections::MessageRecord>> msgs;
  for (const auto& item : items) {
    if (!out.empty()) out += ' ';
    if (item == "MESSAGES") {
      out += fmt::format("MESSAGES {}", box.messages);
    } else if (item == "UIDNEXT") {
      out += fmt::format("UIDNEXT {}", box.uidnext);
    } else if (item == "UIDVALIDITY") {
      out += fmt::format("UIDVALIDITY {}", box.uidvalidity);
    } else if (item == "UNSEEN") {
      out += fmt::format("UNSEEN {}", box.unseen);
    } else if (item == "SIZE") {
      out += fmt::format("SIZE {}", box.size);
    } else if (item == "HIGHESTMODSEQ") {
      out += fmt::format("HIGHESTMODSEQ {}", std::max<std::uint64_t>(1, box.highestmodseq));
    } else if (item == "APPENDLIMIT") {
      out += fmt::format("APPENDLIMIT {}", limits_.append_limit);
    } else if (item == "DELETED" || item == "RECENT") {
      if (item == "RECENT") {
        // Recent to this session only if it is the one selecting it.
        std::uint32_t n = 0;
        if (sel_ && sel_->box.id == box.id) {
          for (auto u : sel_->uids)
            n += sel_->is_recent(u) ? 1 : 0;
        }
        out += fmt::format("RECENT {}", n);
        continue;
      }
      if (!msgs) msgs = store_.messages(box.id);
      std::uint32_t n = 0;
      for (const auto& m : *msgs) {
        for (const auto& f : m.flags)
          n += f == "\\Deleted" ? 1 : 0;
      }
      out += fmt::format("DELETED {}", n);
    } else {
      throw ParseError("Unknown STATUS item " + item);
    }
  }
  return out;
}

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

void Session::cmd_append(const std::string& tag, Parser& p) {
  p.sp();
  const std::string name = decode_name(p.mailbox());
  struct One {
    std::vector<std::string> flags;
    std::int64_t date = 0;
    std::string raw;
  };
  std::vector<One> messages;
  std::size_t total = 0;
  do {
    p.sp();
    One m;
    m.date = now_ms();
    if (p.peek() == '(') {
      m.flags = p.flag_list();
      p.sp();
    }
    if (p.peek() == '"') {
      m.date = p.date_time();
      p.sp();
    }
    if (p.keyword("UTF8")) {
      // RFC 6855 4: UTF8 (~{n}...) carries a message with UTF-8 headers.
      p.sp();
      p.expect('(');
      m.raw = p.string();
      p.expect(')');
    } else {
      m.raw = p.string();
    }
    total += m.raw.size();
    for (const auto& f : m.flags) {
      if (ascii::iequals(f, "\\Recent") || f == "\\*") throw ParseError("Invalid flag in APPEND");
    }
    messages.push_back(std::move(m));
  } while (!p.at_end() && p.peek() == ' ');  // RFC 3502 MULTIAPPEND
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (total > limits_.append_limit) return tagged(tag, "NO", "[TOOBIG] Message too large");
  auto box = find_mailbox(name);
  if (!box) return tagged(tag, "NO", "[TRYCREATE] No such mailbox");
  std::vector<std::uint32_t> uids;
  std::uint32_t uidvalidity = box->uidvalidity;
  const schemas::Actor actor{schemas::Protocol::imap, account_, info_.remote_ip, info_.session_id};
  // RFC 3502: all or nothing. If one message fails, those already appended
  // are expunged again (best effort: the log may be what failed).
  auto undo = [&] {
    if (!uids.empty())
      (void)store_.execute_blocking(
          schemas::make_event(account_, actor, schemas::MessagesExpunged{box->id, uids}));
  };
  for (auto& m : messages) {
    schemas::MessageAppended event{box->id, std::move(m.raw), m.date, std::move(m.flags),
                                   std::nullopt};
    if (event.raw.size() > net::StagedStream::kChunkBytes) {
      // Large: the body goes ahead in chunks (ADR 0006), as SMTP sends it.
      net::StagedStream stream;
      const std::string raw = std::exchange(event.raw, std::string());
      for (std::size_t pos = 0; pos < raw.size(); pos += net::StagedStream::kChunkBytes) {
        for (const auto& chunk :
             net::chunk_events(stream, {account_},
                               std::string_view(raw).substr(pos, net::StagedStream::kChunkBytes),
                               actor, now_ms())) {
          if (!store_.execute_blocking(chunk)) {
            undo();
            return tagged(tag, "NO", "[UNAVAILABLE] The mail store cannot take changes now");
          }
        }
      }
      event.staged = schemas::StagedBody{
          stream.blob_id, stream.started_ms, stream.size, stream.chunks, true, stream.message_id};
    }
    auto o = execute(tag, std::move(event));
    if (!o) {
      undo();
      return;
    }
    if (!o->ok()) {
      undo();
      if (o->code == OutcomeCode::mailbox_missing)
        return tagged(tag, "NO", "[TRYCREATE] No such mailbox");
      return tagged(tag, "NO", "[CANNOT] APPEND failed: " + o->detail);
    }
    uids.insert(uids.end(), o->uids.begin(), o->uids.end());
    uidvalidity = o->uidvalidity;
  }
  tagged(tag, "OK",
         fmt::format("[APPENDUID {} {}] APPEND completed", uidvalidity, SequenceSet::format(uids)));
}

void Session::cmd_idle(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("IDLE takes no arguments");
  if (sel_) report_changes(true);
  out_ += "+ idling\r\n";
  idling_ = true;
  idle_tag_ = tag;
}

void Session::idle_poll() {
  if (idling_ && sel_) report_changes(true);
}

void Session::cmd_check(const std::string& tag, Parser& p) {
  if (!p.at_end()) throw ParseError("CHECK takes no arguments");
  tagged(tag, "OK", "CHECK completed");
}

void Session::cmd_close(const std::string& tag, Parser& p, bool expunge) {
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (expunge && !sel_->read_only) {
    // RFC 9051 6.4.1: \Deleted messages go, silently.
    std::vector<std::uint32_t> uids;
    const auto index = current();
    for (const auto& m : index->messages) {
      if (std::find(m.flags.begin(), m.flags.end(), "\\Deleted") != m.flags.end())
        uids.push_back(m.uid);
    }
    if (!uids.empty()) {
      report_after_ = false;
      auto o = execute(tag, schemas::MessagesExpunged{sel_->box.id, uids});
      if (!o) return;
    }
  }
  sel_.reset();
  report_after_ = false;
  tagged(tag, "OK", expunge ? "CLOSE completed" : "UNSELECT completed");
}

}  // namespace a3::imap
