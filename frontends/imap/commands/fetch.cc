// FETCH (RFC 9051 6.4.5, RFC 3516 BINARY, RFC 7162 CHANGEDSINCE): items,
// sections and their bytes.
#include <algorithm>
#include <chrono>
#include <set>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/imap/message_text.h"
#include "frontends/imap/session.h"
#include "mime/mime.h"

namespace a3::imap {

namespace {

std::string internal_date(std::int64_t ms) {
  const std::chrono::sys_seconds t{std::chrono::seconds(ms / 1000)};
  return fmt::format("\"{:%d-%b-%Y %H:%M:%S} +0000\"", t);
}

// ---- FETCH items ----

struct Section {
  std::string part;  // "1.2", "" for the whole message
  enum class Spec { none, header, header_fields, header_fields_not, text, mime } spec = Spec::none;
  std::vector<std::string> fields;
};

struct Item {
  enum class Kind {
    flags,
    internaldate,
    savedate,
    rfc822_size,
    envelope,
    body,
    bodystructure,
    uid,
    modseq,
    section,  // BODY[...] / BINARY[...] / RFC822 / RFC822.HEADER / RFC822.TEXT
    binary_size,
  } kind;
  Section section;
  bool peek = false;
  bool binary = false;
  std::optional<std::uint64_t> offset, count;
  std::string name;  // as it appears in the response, e.g. "BODY[1]<0>"
};

std::string section_text(const Section& s) {
  std::string out = s.part;
  auto add = [&](std::string_view t) {
    if (!out.empty()) out += '.';
    out += t;
  };
  switch (s.spec) {
    case Section::Spec::none:
      break;
    case Section::Spec::header:
      add("HEADER");
      break;
    case Section::Spec::header_fields:
    case Section::Spec::header_fields_not: {
      add(s.spec == Section::Spec::header_fields ? "HEADER.FIELDS" : "HEADER.FIELDS.NOT");
      std::string list;
      for (const auto& f : s.fields)
        list += (list.empty() ? "" : " ") + ascii::upper(f);
      out += " (" + list + ")";
      break;
    }
    case Section::Spec::text:
      add("TEXT");
      break;
    case Section::Spec::mime:
      add("MIME");
      break;
  }
  return out;
}

Section parse_section(Parser& p, bool binary) {
  Section s;
  p.expect('[');
  // part numbers
  while (ascii::is_digit(p.peek())) {
    const std::uint32_t n = p.number();
    if (n == 0) throw ParseError("Invalid part number 0");
    if (!s.part.empty()) s.part += '.';
    s.part += std::to_string(n);
    if (!p.consume('.')) break;
    if (!ascii::is_digit(p.peek())) {
      // a text spec follows
      break;
    }
  }
  if (p.peek() != ']') {
    if (binary) throw ParseError("BINARY takes part numbers only");
    std::string word;
    while (ascii::is_alpha(p.peek()) || p.peek() == '.')
      word.push_back(ascii::upper(p.peek())), p.consume(p.peek());
    if (word == "HEADER") {
      s.spec = Section::Spec::header;
    } else if (word == "HEADER.FIELDS" || word == "HEADER.FIELDS.NOT") {
      s.spec =
          word == "HEADER.FIELDS" ? Section::Spec::header_fields : Section::Spec::header_fields_not;
      p.sp();
      p.expect('(');
      do {
        s.fields.push_back(p.astring());
      } while (p.consume(' '));
      p.expect(')');
    } else if (word == "TEXT") {
      s.spec = Section::Spec::text;
    } else if (word == "MIME" && !s.part.empty()) {
      s.spec = Section::Spec::mime;
    } else {
      throw ParseError("Invalid section");
    }
  }
  p.expect(']');
  return s;
}

Item parse_item(Parser& p) {
  std::string name;
  while (ascii::is_alpha(p.peek()) || ascii::is_digit(p.peek()) || p.peek() == '.') {
    name.push_back(ascii::upper(p.peek()));
    p.consume(p.peek());
  }
  Item it{Item::Kind::flags, {}, false, false, {}, {}, name};
  auto partial = [&] {
    if (p.consume('<')) {
      it.offset = p.number64();
      p.expect('.');
      it.count = p.number64();
      if (*it.count == 0) throw ParseError("Invalid partial length");
      p.expect('>');
    }
  };
  if (name == "FLAGS") return it;
  if (name == "INTERNALDATE") return it.kind = Item::Kind::internaldate, it;
  if (name == "SAVEDATE") return it.kind = Item::Kind::savedate, it;  // RFC 8514
  if (name == "RFC822.SIZE") return it.kind = Item::Kind::rfc822_size, it;
  if (name == "ENVELOPE") return it.kind = Item::Kind::envelope, it;
  if (name == "BODYSTRUCTURE") return it.kind = Item::Kind::bodystructure, it;
  if (name == "UID") return it.kind = Item::Kind::uid, it;
  if (name == "MODSEQ") return it.kind = Item::Kind::modseq, it;
  if (name == "RFC822") {
    it.kind = Item::Kind::section;
    return it;
  }
  if (name == "RFC822.HEADER") {
    it.kind = Item::Kind::section;
    it.peek = true;
    it.section.spec = Section::Spec::header;
    return it;
  }
  if (name == "RFC822.TEXT") {
    it.kind = Item::Kind::section;
    it.section.spec = Section::Spec::text;
    return it;
  }
  if (name == "BODY" && p.peek() != '[') return it.kind = Item::Kind::body, it;
  if (name == "BODY" || name == "BODY.PEEK" || name == "BINARY" || name == "BINARY.PEEK" ||
      name == "BINARY.SIZE") {
    it.binary = name.starts_with("BINARY");
    it.peek = name.ends_with(".PEEK");
    it.kind = name == "BINARY.SIZE" ? Item::Kind::binary_size : Item::Kind::section;
    it.section = parse_section(p, it.binary);
    if (it.kind == Item::Kind::section) partial();
    const std::string base =
        it.binary ? (it.kind == Item::Kind::binary_size ? "BINARY.SIZE" : "BINARY") : "BODY";
    it.name = fmt::format("{}[{}]", base, section_text(it.section));
    if (it.offset) it.name += fmt::format("<{}>", *it.offset);
    return it;
  }
  throw ParseError("Unknown FETCH item " + name);
}

// The part a section names, or nullptr. "1" of a single-part message (or
// of a message/rfc822 part's single body) is that body.
const mime::Part* find_part(const mime::Summary& sum, const std::string& part) {
  for (const auto& x : sum.parts) {
    if (x.section == part) return &x;
  }
  // RFC 9051 6.4.5: a non-multipart part has part number 1.
  const auto dot = part.rfind('.');
  const std::string parent = dot == std::string::npos ? "" : part.substr(0, dot);
  const std::string last = dot == std::string::npos ? part : part.substr(dot + 1);
  if (last != "1") return nullptr;
  for (const auto& x : sum.parts) {
    if (x.section == parent && !x.type.starts_with("multipart/") && !x.message) return &x;
  }
  return nullptr;
}

// A part's header with its Content-Transfer-Encoding field (and its
// continuation lines) saying "binary".
std::string binary_header(std::string_view header) {
  std::string out;
  std::size_t pos = 0;
  bool skipping = false;
  while (pos < header.size()) {
    const auto eol = header.find('\n', pos);
    const std::size_t next = eol == std::string_view::npos ? header.size() : eol + 1;
    const std::string_view line = header.substr(pos, next - pos);
    pos = next;
    if (skipping && (line.starts_with(" ") || line.starts_with("\t"))) continue;
    skipping = false;
    if (ascii::istarts_with(line, "content-transfer-encoding:")) {
      out += line.substr(0, std::string_view("content-transfer-encoding:").size());
      out += line.ends_with("\r\n") ? " binary\r\n" : " binary\n";
      skipping = true;
      continue;
    }
    out += line;
  }
  return out;
}

// The bytes a section names, or nullopt if it does not exist.
std::optional<std::string> section_bytes(const std::string& raw, const mime::Summary& sum,
                                         const Section& s) {
  const auto* part = s.part.empty() ? &sum.parts.at(0) : find_part(sum, s.part);
  if (!part) return std::nullopt;
  auto range = [&](std::uint64_t a, std::uint64_t b) {
    a = std::min<std::uint64_t>(a, raw.size());
    b = std::min<std::uint64_t>(std::max(a, b), raw.size());
    return raw.substr(a, b - a);
  };
  // A message whose body is a message/rfc822: part 1 is that encapsulated
  // message, whole (RFC 9051 6.4.5), with its own HEADER and TEXT.
  const auto& top = sum.parts.at(0);
  if (s.part == "1" && top.message) {
    switch (s.spec) {
      case Section::Spec::none:
        return range(top.body_begin, top.body_end);
      case Section::Spec::header:
        return range(top.body_begin, top.inner_body_begin);
      case Section::Spec::header_fields:
      case Section::Spec::header_fields_not:
        return header_fields(range(top.body_begin, top.inner_body_begin), s.fields,
                             s.spec == Section::Spec::header_fields_not);
      case Section::Spec::text:
        return range(top.inner_body_begin, top.body_end);
      case Section::Spec::mime:
        return range(top.header_begin, top.body_begin);
    }
  }
  // The header and text of the message the section is in: the top message
  // or an embedded message/rfc822.
  std::uint64_t head_begin = part->header_begin, head_end = part->body_begin,
                text_begin = part->body_begin;
  if (!s.part.empty() && part->message) {
    head_begin = part->body_begin;
    head_end = text_begin = part->inner_body_begin;
  } else if (!s.part.empty() && s.spec != Section::Spec::none && s.spec != Section::Spec::mime) {
    // HEADER and TEXT of a part that is not a message/rfc822: there is no
    // such message, so they are empty, as the reference answers.
    return std::string();
  }
  switch (s.spec) {
    case Section::Spec::none:
      if (s.part.empty()) return raw;
      return range(part->body_begin, part->body_end);
    case Section::Spec::header:
      return range(head_begin, head_end);
    case Section::Spec::header_fields:
    case Section::Spec::header_fields_not:
      return header_fields(range(head_begin, head_end), s.fields,
                           s.spec == Section::Spec::header_fields_not);
    case Section::Spec::text: {
      // An embedded message whose header a boundary cut short has no body.
      const std::string head = range(head_begin, head_end);
      if (!s.part.empty() && head != "\r\n" && head != "\n" && !head.ends_with("\n\n") &&
          !head.ends_with("\r\n\r\n"))
        return std::string();
      return range(text_begin, part->body_end);
    }
    case Section::Spec::mime:
      return range(part->header_begin, part->body_begin);
  }
  return std::nullopt;
}

// BINARY (RFC 3516) of a part: a leaf's body with its transfer encoding
// undone; of a multipart, a message/rfc822 part or the whole message (with
// its header), every base64 or quoted-printable part inside decoded and its
// Content-Transfer-Encoding field saying "binary", as the reference
// renders it. nullopt if a part inside has an encoding we do not know.
std::optional<std::string> binary_content(const std::string& raw, const mime::Summary& sum,
                                          const mime::Part& part, bool whole) {
  auto clamp = [&](std::uint64_t x) { return std::min<std::uint64_t>(x, raw.size()); };
  auto leaf = [](const mime::Part& p) { return !p.type.starts_with("multipart/") && !p.message; };
  if (leaf(part) && !whole) {
    const auto b = clamp(part.body_begin), e = std::max(b, clamp(part.body_end));
    return mime::decode_transfer_encoding(std::string_view(raw).substr(b, e - b), part.encoding);
  }
  const std::uint64_t from = whole ? 0 : clamp(part.body_begin);
  const std::uint64_t to = whole ? raw.size() : std::max(from, clamp(part.body_end));
  std::string out;
  std::uint64_t cursor = from;
  for (const auto& p : sum.parts) {
    if (!leaf(p) || p.header_begin < cursor || p.body_end > to) continue;
    if (p.encoding != "base64" && p.encoding != "quoted-printable") {
      if (!mime::decode_transfer_encoding({}, p.encoding)) return std::nullopt;
      continue;
    }
    const auto hb = clamp(p.header_begin), bb = std::max(hb, clamp(p.body_begin));
    const auto be = std::max(bb, clamp(p.body_end));
    auto decoded =
        mime::decode_transfer_encoding(std::string_view(raw).substr(bb, be - bb), p.encoding);
    if (!decoded) return std::nullopt;
    out.append(raw, cursor, hb - cursor);
    out += binary_header(std::string_view(raw).substr(hb, bb - hb));
    out += *decoded;
    cursor = be;
  }
  out.append(raw, cursor, to - cursor);
  return out;
}

// A literal; in a BODY[] answer (not BINARY) NUL cannot appear (RFC 9051
// 4.3), so a NUL is sent as 0x80, as the reference does; BINARY sends the
// octets as they are, in a literal8 (RFC 3516 4.2).
std::string literal(std::string_view data, bool binary) {
  const bool nul = data.find('\0') != std::string_view::npos;
  if (!nul) return fmt::format("{{{}}}\r\n{}", data.size(), data);
  if (binary) return fmt::format("~{{{}}}\r\n{}", data.size(), data);
  std::string text(data);
  std::replace(text.begin(), text.end(), '\0', '\x80');
  return fmt::format("{{{}}}\r\n{}", text.size(), text);
}

}  // namespace

std::string header_fields(std::string_view header, const std::vector<std::string>& fields,
                          bool exclude) {
  std::string out;
  std::size_t pos = 0;
  bool keep = false;
  while (pos < header.size()) {
    auto eol = header.find('\n', pos);
    const std::size_t next = eol == std::string_view::npos ? header.size() : eol + 1;
    const std::string_view line = header.substr(pos, next - pos);
    if (line == "\r\n" || line == "\n") break;
    if (line[0] == ' ' || line[0] == '\t') {
      if (keep) out += line;
    } else {
      const auto colon = line.find(':');
      const std::string_view fname = line.substr(0, colon == std::string_view::npos ? 0 : colon);
      bool listed = false;
      for (const auto& f : fields)
        listed = listed || ascii::iequals(f, fname);
      keep = colon != std::string_view::npos && listed != exclude;
      if (keep) out += line;
    }
    pos = next;
  }
  out += "\r\n";
  return out;
}

// ---- FETCH ----

void Session::fetch_messages(const std::string& tag, Parser& p, bool uid) {
  p.sp();
  const SequenceSet set = p.sequence_set();
  p.sp();
  std::vector<Item> items;
  auto macro = [&](std::initializer_list<Item::Kind> kinds) {
    for (auto k : kinds)
      items.push_back(Item{k, {}, false, false, {}, {}, ""});
  };
  if (p.keyword("ALL")) {
    macro({Item::Kind::flags, Item::Kind::internaldate, Item::Kind::rfc822_size,
           Item::Kind::envelope});
  } else if (p.keyword("FAST")) {
    macro({Item::Kind::flags, Item::Kind::internaldate, Item::Kind::rfc822_size});
  } else if (p.keyword("FULL")) {
    macro({Item::Kind::flags, Item::Kind::internaldate, Item::Kind::rfc822_size,
           Item::Kind::envelope, Item::Kind::body});
  } else if (p.consume('(')) {
    do {
      items.push_back(parse_item(p));
    } while (p.consume(' '));
    p.expect(')');
  } else {
    items.push_back(parse_item(p));
  }
  std::optional<std::uint64_t> changed_since;
  bool vanished = false;
  if (p.consume(' ')) {
    p.expect('(');
    do {
      if (p.keyword("CHANGEDSINCE")) {
        p.sp();
        changed_since = p.number64();
      } else if (p.keyword("VANISHED")) {
        vanished = true;
      } else {
        throw ParseError("Unknown FETCH modifier");
      }
    } while (p.consume(' '));
    p.expect(')');
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (vanished && (!uid || !qresync_ || !changed_since))
    throw ParseError("VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE");
  for (auto& it : items) {
    if (it.kind == Item::Kind::flags && it.name.empty()) it.name = "FLAGS";
  }
  bool want_modseq = changed_since.has_value();
  bool sets_seen = false;
  bool want_flags = false;
  for (const auto& it : items) {
    want_modseq = want_modseq || it.kind == Item::Kind::modseq;
    want_flags = want_flags || it.kind == Item::Kind::flags;
    sets_seen = sets_seen || (it.kind == Item::Kind::section && !it.peek);
  }
  if (want_modseq) enable_condstore();
  const auto wanted = resolve(set, uid);
  if (wanted.empty() && !vanished) return tagged(tag, "OK", "FETCH completed");
  // What is answered once the \Seen flags it sets (if any) are applied.
  auto answer = [this, tag, set, wanted, items = std::move(items), changed_since, vanished, uid,
                 want_modseq](const std::set<std::uint32_t>& now_seen) mutable {
    const auto index = current();
    if (vanished) {
      std::vector<std::uint32_t> gone;
      const std::uint32_t star = sel_->uidnext - 1;
      for (const auto& [u, ms] : store_.expunged_since(sel_->box.id, *changed_since)) {
        if (set.contains(u, star)) gone.push_back(u);
      }
      if (!gone.empty()) untagged("VANISHED (EARLIER) " + SequenceSet::format(gone));
    }
    for (const std::uint32_t u : wanted) {
      const auto* found = index->find(u);
      if (!found) continue;
      const auto& m = *found;
      if (changed_since && m.modseq <= *changed_since) continue;
      const std::uint32_t seq = seq_of(m.uid);
      if (!seq) continue;
      std::optional<std::string> raw;
      std::optional<mime::Summary> sum;
      auto need_raw = [&]() -> const std::string& {
        if (!raw) raw = store_.body(m.blob).value_or("");
        return *raw;
      };
      auto need_sum = [&]() -> const mime::Summary& {
        // Parsed at projection time; parsed here if the view lacks it.
        if (!sum) sum = store_.mime(m.blob);
        if (!sum) sum = mime::parse(need_raw());
        if (sum->parts.empty()) {
          mime::Part whole;
          whole.body_end = need_raw().size();
          sum->parts.push_back(whole);
        }
        return *sum;
      };
      std::vector<std::string> parts;
      bool uid_done = false, flags_done = false, modseq_done = false;
      const bool recent = !rev2_ && sel_->is_recent(m.uid);
      for (const auto& it : items) {
        switch (it.kind) {
          case Item::Kind::flags:
            note_flags(m.flags);
            parts.push_back("FLAGS " + flag_text(m.flags, recent));
            flags_done = true;
            break;
          case Item::Kind::uid:
            if (!uid_done) parts.push_back(fmt::format("UID {}", m.uid));
            uid_done = true;
            break;
          case Item::Kind::internaldate:
            parts.push_back("INTERNALDATE " + internal_date(m.internal_date_ms));
            break;
          case Item::Kind::savedate:
            // RFC 8514 4.3: when the message was saved into this mailbox,
            // the time of the event that put it here.
            parts.push_back("SAVEDATE " +
                            (m.appended_at_ms ? internal_date(m.appended_at_ms) : "NIL"));
            break;
          case Item::Kind::rfc822_size:
            parts.push_back(fmt::format("RFC822.SIZE {}", m.size));
            break;
          case Item::Kind::modseq:
            parts.push_back(fmt::format("MODSEQ ({})", m.modseq));
            modseq_done = true;
            break;
          case Item::Kind::envelope:
            parts.push_back("ENVELOPE " + need_sum().envelope);
            break;
          case Item::Kind::body:
            parts.push_back("BODY " + need_sum().body);
            break;
          case Item::Kind::bodystructure:
            parts.push_back("BODYSTRUCTURE " + need_sum().bodystructure);
            break;
          case Item::Kind::section:
          case Item::Kind::binary_size: {
            auto bytes = section_bytes(need_raw(), need_sum(), it.section);
            const std::string label = it.name;
            if (!bytes) {
              if (it.binary) return tagged(tag, "NO", "[NONEXISTENT] No such part");
              parts.push_back(label + " NIL");
              break;
            }
            if (it.binary) {
              const auto* part = it.section.part.empty() ? &need_sum().parts[0]
                                                         : find_part(need_sum(), it.section.part);
              if (part && it.section.spec == Section::Spec::none) {
                auto decoded =
                    binary_content(need_raw(), need_sum(), *part, it.section.part.empty());
                if (!decoded) return tagged(tag, "NO", "[UNKNOWN-CTE] Unknown transfer encoding");
                bytes = std::move(*decoded);
              }
            }
            if (it.kind == Item::Kind::binary_size) {
              parts.push_back(fmt::format("{} {}", label, bytes->size()));
              break;
            }
            std::string_view data(*bytes);
            if (it.offset) {
              const auto off = std::min<std::uint64_t>(*it.offset, data.size());
              data = data.substr(off, std::min<std::uint64_t>(*it.count, data.size() - off));
            }
            parts.push_back(label + " " + literal(data, it.binary));
            break;
          }
        }
      }
      if (uid && !uid_done) parts.insert(parts.begin(), fmt::format("UID {}", m.uid));
      if (now_seen.contains(m.uid)) {
        if (!flags_done) {
          note_flags(m.flags);
          parts.push_back("FLAGS " + flag_text(m.flags, recent));
        }
        // RFC 7162 3.1: the implicit \Seen change carries UID and MODSEQ.
        if (condstore_ && !uid_done && !uid) parts.push_back(fmt::format("UID {}", m.uid));
        if (condstore_) want_modseq = true;
      }
      if (want_modseq && !modseq_done) parts.push_back(fmt::format("MODSEQ ({})", m.modseq));
      std::string line = fmt::format("{} FETCH (", seq);
      for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i) line += ' ';
        line += parts[i];
      }
      untagged(line + ")");
    }
    tagged(tag, "OK", "FETCH completed");
  };
  // BODY[] without PEEK marks the messages \Seen (RFC 9051 6.4.5).
  if (sets_seen && !sel_->read_only) {
    const auto index = current();
    std::vector<std::uint32_t> unseen;
    for (const std::uint32_t u : wanted) {
      const auto* found = index->find(u);
      if (!found) continue;
      const auto& m = *found;
      if (!has_flag(m.flags, "\\Seen") && (!changed_since || m.modseq > *changed_since))
        unseen.push_back(m.uid);
    }
    if (!unseen.empty()) {
      return execute(
          tag,
          schemas::FlagsChanged{
              sel_->box.id, std::move(unseen), schemas::FlagOp::add, {"\\Seen"}, std::nullopt},
          [answer](const projections::Outcome& o) mutable {
            answer(std::set<std::uint32_t>(o.uids.begin(), o.uids.end()));
          });
    }
  }
  answer({});
}

void Session::cmd_fetch(const std::string& tag, Parser& p) {
  fetch_messages(tag, p, false);
}

void Session::cmd_uid_fetch(const std::string& tag, Parser& p) {
  fetch_messages(tag, p, true);
}

}  // namespace a3::imap
