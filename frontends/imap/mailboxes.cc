// Mailbox names: checks, wildcards, the client's encoding (modified UTF-7
// or UTF-8), STATUS items, and IDLE's reports.
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/clock.h"
#include "frontends/imap/mailbox_names.h"
#include "frontends/imap/message_text.h"
#include "frontends/imap/session.h"
#include "frontends/net/staged.h"
#include "mime/mime.h"

namespace a3::imap {

using projections::MailboxRecord;
using projections::OutcomeCode;

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

// Linear in pattern x name (no backtracking).
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
    } else if (item == "DELETED-STORAGE") {
      // RFC 9208 4.2: what expunging the \Deleted messages would free.
      if (!msgs) msgs = store_.messages(box.id);
      std::uint64_t n = 0;
      for (const auto& m : *msgs) {
        if (has_flag(m.flags, "\\Deleted")) n += m.size;
      }
      out += fmt::format("DELETED-STORAGE {}", n);
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

void Session::idle_poll() {
  if (idling_ && sel_) report_changes(true);
}

}  // namespace a3::imap
