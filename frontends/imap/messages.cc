// SELECT and the commands on messages: FETCH, STORE, SEARCH, COPY, MOVE,
// EXPUNGE, and the untagged reports of changes made elsewhere.
#include <algorithm>
#include <chrono>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/imap/session.h"
#include "projections/mime/mime.h"

namespace a3::imap {

using projections::MessageRecord;
using projections::OutcomeCode;

namespace {

bool has_flag(const std::vector<std::string>& flags, std::string_view f) {
  for (const auto& x : flags) {
    if (ascii::iequals(x, f)) return true;
  }
  return false;
}

std::string flag_text(const std::vector<std::string>& flags, bool recent) {
  std::string out;
  for (const auto& f : flags) {
    if (!out.empty()) out += ' ';
    out += f;
  }
  if (recent) out += out.empty() ? "\\Recent" : " \\Recent";
  return "(" + out + ")";
}

std::string internal_date(std::int64_t ms) {
  const std::chrono::sys_seconds t{std::chrono::seconds(ms / 1000)};
  return fmt::format("\"{:%d-%b-%Y %H:%M:%S} +0000\"", t);
}

std::int64_t day_of(std::int64_t ms) {
  return (ms >= 0 ? ms : ms - 86'399'999) / 86'400'000;
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
const projections::mime::Part* find_part(const projections::mime::Summary& sum,
                                         const std::string& part) {
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

// The header lines of `header` whose names are (or, with `exclude`, are
// not) in `fields`, and the blank line.
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

// The bytes a section names, or nullopt if it does not exist.
std::optional<std::string> section_bytes(const std::string& raw,
                                         const projections::mime::Summary& sum, const Section& s) {
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
    case Section::Spec::text:
      return range(text_begin, part->body_end);
    case Section::Spec::mime:
      return range(part->header_begin, part->body_begin);
  }
  return std::nullopt;
}

std::string literal(std::string_view data, bool binary) {
  bool nul = false;
  for (char c : data)
    nul = nul || c == '\0';
  return fmt::format("{}{{{}}}\r\n{}", binary && nul ? "~" : "", data.size(), data);
}

// ---- SEARCH ----

struct Key {
  enum class Type {
    all,
    and_,
    or_,
    not_,
    seqset,
    uidset,
    flag,
    unflag,
    keyword,
    unkeyword,
    new_,
    old,
    recent,
    larger,
    smaller,
    before,
    on,
    since,
    sentbefore,
    senton,
    sentsince,
    header,
    body,
    text,
    from,
    to,
    cc,
    bcc,
    subject,
    modseq,
  } type = Type::all;
  std::string a, b;
  std::uint64_t n = 0;
  SequenceSet set;
  std::vector<Key> kids;
};

Key parse_key(Parser& p, int depth);

Key parse_keys(Parser& p, int depth) {
  Key k;
  k.type = Key::Type::and_;
  k.kids.push_back(parse_key(p, depth));
  while (p.consume(' ')) {
    if (p.peek() == ')') throw ParseError("Unexpected space");
    k.kids.push_back(parse_key(p, depth));
  }
  return k.kids.size() == 1 ? std::move(k.kids[0]) : k;
}

Key parse_key(Parser& p, int depth) {
  if (depth > 32) throw ParseError("Search too deeply nested");
  Key k;
  if (p.consume('(')) {
    k = parse_keys(p, depth + 1);
    p.expect(')');
    return k;
  }
  if (ascii::is_digit(p.peek()) || p.peek() == '*' || p.peek() == '$') {
    k.type = Key::Type::seqset;
    k.set = p.sequence_set();
    return k;
  }
  const std::string w = ascii::upper(p.atom());
  using T = Key::Type;
  auto str = [&] {
    p.sp();
    return p.astring();
  };
  auto date = [&] {
    p.sp();
    return static_cast<std::uint64_t>(p.date() / 86'400'000);
  };
  auto flag = [&](T t, const char* f) {
    k.type = t;
    k.a = f;
    return k;
  };
  if (w == "ALL") return k;
  if (w == "ANSWERED") return flag(T::flag, "\\Answered");
  if (w == "DELETED") return flag(T::flag, "\\Deleted");
  if (w == "DRAFT") return flag(T::flag, "\\Draft");
  if (w == "FLAGGED") return flag(T::flag, "\\Flagged");
  if (w == "SEEN") return flag(T::flag, "\\Seen");
  if (w == "UNANSWERED") return flag(T::unflag, "\\Answered");
  if (w == "UNDELETED") return flag(T::unflag, "\\Deleted");
  if (w == "UNDRAFT") return flag(T::unflag, "\\Draft");
  if (w == "UNFLAGGED") return flag(T::unflag, "\\Flagged");
  if (w == "UNSEEN") return flag(T::unflag, "\\Seen");
  if (w == "NEW") return k.type = T::new_, k;
  if (w == "OLD") return k.type = T::old, k;
  if (w == "RECENT") return k.type = T::recent, k;
  if (w == "KEYWORD" || w == "UNKEYWORD") {
    k.type = w == "KEYWORD" ? T::keyword : T::unkeyword;
    p.sp();
    k.a = p.flag();
    return k;
  }
  if (w == "LARGER" || w == "SMALLER") {
    k.type = w == "LARGER" ? T::larger : T::smaller;
    p.sp();
    k.n = p.number64();
    return k;
  }
  if (w == "BEFORE") return k.type = T::before, k.n = date(), k;
  if (w == "ON") return k.type = T::on, k.n = date(), k;
  if (w == "SINCE") return k.type = T::since, k.n = date(), k;
  if (w == "SENTBEFORE") return k.type = T::sentbefore, k.n = date(), k;
  if (w == "SENTON") return k.type = T::senton, k.n = date(), k;
  if (w == "SENTSINCE") return k.type = T::sentsince, k.n = date(), k;
  if (w == "BODY") return k.type = T::body, k.a = str(), k;
  if (w == "TEXT") return k.type = T::text, k.a = str(), k;
  if (w == "FROM") return k.type = T::from, k.a = str(), k;
  if (w == "TO") return k.type = T::to, k.a = str(), k;
  if (w == "CC") return k.type = T::cc, k.a = str(), k;
  if (w == "BCC") return k.type = T::bcc, k.a = str(), k;
  if (w == "SUBJECT") return k.type = T::subject, k.a = str(), k;
  if (w == "HEADER") {
    k.type = T::header;
    k.a = str();
    k.b = str();
    return k;
  }
  if (w == "UID") {
    k.type = T::uidset;
    p.sp();
    k.set = p.sequence_set();
    return k;
  }
  if (w == "NOT") {
    k.type = T::not_;
    p.sp();
    k.kids.push_back(parse_key(p, depth + 1));
    return k;
  }
  if (w == "OR") {
    k.type = T::or_;
    p.sp();
    k.kids.push_back(parse_key(p, depth + 1));
    p.sp();
    k.kids.push_back(parse_key(p, depth + 1));
    return k;
  }
  if (w == "MODSEQ") {
    // RFC 7162 3.1.5: [entry-name entry-type] mod-sequence
    k.type = T::modseq;
    p.sp();
    if (p.peek() == '"') {
      p.string();
      p.sp();
      p.atom();
      p.sp();
    }
    k.n = p.number64();
    return k;
  }
  throw ParseError("Unknown search key " + w);
}

bool uses_modseq(const Key& k) {
  if (k.type == Key::Type::modseq) return true;
  for (const auto& c : k.kids) {
    if (uses_modseq(c)) return true;
  }
  return false;
}

// A message as SEARCH sees it, with its MIME summary and body loaded on
// first use.
struct Candidate {
  const MessageRecord& m;
  std::uint32_t seq;
  bool recent;
  const projections::Store& store;
  std::optional<projections::mime::Summary> sum;
  std::optional<std::string> raw;

  const projections::mime::Summary& summary() {
    if (!sum) sum = store.mime(m.blob).value_or(projections::mime::Summary{});
    return *sum;
  }
  const std::string& body() {
    if (!raw) raw = store.body(m.blob).value_or("");
    return *raw;
  }
};

bool contains(std::string_view hay, std::string_view needle) {
  return ascii::ifind(hay, needle) != std::string_view::npos;
}

// Text parts decoded (base64, quoted-printable), then searched.
bool body_contains(Candidate& c, std::string_view needle, bool with_header) {
  const std::string& raw = c.body();
  const auto& sum = c.summary();
  if (with_header && !sum.parts.empty() &&
      contains(std::string_view(raw).substr(0, sum.parts[0].body_begin), needle))
    return true;
  bool leaf_seen = false;
  for (const auto& part : sum.parts) {
    if (part.type.starts_with("multipart/") || part.message) continue;
    leaf_seen = true;
    if (part.body_begin > raw.size()) continue;
    const auto body = std::string_view(raw).substr(
        part.body_begin, std::min<std::uint64_t>(part.body_end, raw.size()) - part.body_begin);
    if (!part.type.starts_with("text/") && part.encoding == "base64") continue;
    const auto decoded = projections::mime::decode_transfer_encoding(body, part.encoding);
    if (contains(decoded ? std::string_view(*decoded) : body, needle)) return true;
  }
  if (!leaf_seen && !sum.parts.empty()) {
    return contains(
        std::string_view(raw).substr(std::min<std::size_t>(sum.parts[0].body_begin, raw.size())),
        needle);
  }
  return false;
}

bool header_contains(Candidate& c, const std::string& field, const std::string& needle) {
  const std::string& raw = c.body();
  const auto& sum = c.summary();
  const std::size_t end = sum.parts.empty() ? raw.size() : sum.parts[0].body_begin;
  const std::string lines = header_fields(std::string_view(raw).substr(0, end), {field}, false);
  if (lines == "\r\n") return false;
  if (needle.empty()) return true;
  // Unfold, then look in the values.
  std::string unfolded;
  for (char ch : lines) {
    if (ch != '\r' && ch != '\n') unfolded.push_back(ch);
  }
  return contains(unfolded, needle);
}

bool matches(const Key& k, Candidate& c, std::uint32_t max_seq, std::uint32_t max_uid,
             const std::vector<std::uint32_t>& saved) {
  using T = Key::Type;
  const auto& m = c.m;
  switch (k.type) {
    case T::all:
      return true;
    case T::and_:
      for (const auto& kid : k.kids) {
        if (!matches(kid, c, max_seq, max_uid, saved)) return false;
      }
      return true;
    case T::or_:
      return matches(k.kids[0], c, max_seq, max_uid, saved) ||
             matches(k.kids[1], c, max_seq, max_uid, saved);
    case T::not_:
      return !matches(k.kids[0], c, max_seq, max_uid, saved);
    case T::seqset:
      if (k.set.saved) return std::binary_search(saved.begin(), saved.end(), m.uid);
      return k.set.contains(c.seq, max_seq);
    case T::uidset:
      if (k.set.saved) return std::binary_search(saved.begin(), saved.end(), m.uid);
      return k.set.contains(m.uid, max_uid);
    case T::flag:
    case T::keyword:
      return has_flag(m.flags, k.a);
    case T::unflag:
    case T::unkeyword:
      return !has_flag(m.flags, k.a);
    case T::new_:
      return c.recent && !has_flag(m.flags, "\\Seen");
    case T::old:
      return !c.recent;
    case T::recent:
      return c.recent;
    case T::larger:
      return m.size > k.n;
    case T::smaller:
      return m.size < k.n;
    case T::before:
      return day_of(m.internal_date_ms) < static_cast<std::int64_t>(k.n);
    case T::on:
      return day_of(m.internal_date_ms) == static_cast<std::int64_t>(k.n);
    case T::since:
      return day_of(m.internal_date_ms) >= static_cast<std::int64_t>(k.n);
    case T::sentbefore:
    case T::senton:
    case T::sentsince: {
      const std::int64_t sent = c.summary().date_ms ? c.summary().date_ms : m.internal_date_ms;
      const std::int64_t d = day_of(sent), want = static_cast<std::int64_t>(k.n);
      return k.type == T::sentbefore ? d < want : k.type == T::senton ? d == want : d >= want;
    }
    case T::from:
      return contains(c.summary().from, k.a);
    case T::to:
      return contains(c.summary().to, k.a);
    case T::cc:
      return contains(c.summary().cc, k.a);
    case T::bcc:
      return contains(c.summary().bcc, k.a);
    case T::subject:
      return contains(c.summary().subject, k.a);
    case T::header:
      return header_contains(c, k.a, k.b);
    case T::body:
      return body_contains(c, k.a, false);
    case T::text:
      return body_contains(c, k.a, true);
    case T::modseq:
      return m.modseq >= k.n;
  }
  return false;
}

}  // namespace

// ---- selection and change reports ----

// FLAGS and PERMANENTFLAGS with the keywords in use (RFC 9051 7.3.5).
void Session::announce_flags() {
  std::string kw;
  for (const auto& k : sel_->keywords)
    kw += " " + k;
  untagged("FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft" + kw + ")");
  untagged(sel_->read_only ? "OK [PERMANENTFLAGS ()] Read-only mailbox"
                           : "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft" +
                                 kw + " \\*)] Flags permitted");
}

// Before a FETCH shows flags: a keyword the client has not been told of
// comes with a new FLAGS response first.
void Session::note_flags(const std::vector<std::string>& flags) {
  bool fresh = false;
  for (const auto& f : flags) {
    if (!f.starts_with("\\")) fresh = sel_->keywords.insert(f).second || fresh;
  }
  if (fresh) announce_flags();
}

// RFC 7162 3.1: the first CONDSTORE-enabling command while a mailbox is
// selected reports its HIGHESTMODSEQ.
void Session::enable_condstore() {
  if (condstore_) return;
  condstore_ = true;
  if (sel_) {
    untagged(fmt::format("OK [HIGHESTMODSEQ {}] Highest",
                         std::max<std::uint64_t>(1, sel_->box.highestmodseq)));
  }
}

void Session::cmd_select(const std::string& tag, Parser& p, bool read_only) {
  p.sp();
  const std::string name = decode_name(p.mailbox());
  bool condstore_param = false;
  struct Qresync {
    std::uint32_t uidvalidity = 0;
    std::uint64_t modseq = 0;
    std::optional<SequenceSet> known;
  };
  std::optional<Qresync> qr;
  if (p.consume(' ')) {
    p.expect('(');
    do {
      if (p.keyword("CONDSTORE")) {
        condstore_param = true;
      } else if (p.keyword("QRESYNC")) {
        if (!qresync_) throw ParseError("QRESYNC must be enabled first");
        Qresync q;
        p.sp();
        p.expect('(');
        q.uidvalidity = p.number();
        p.sp();
        q.modseq = p.number64();
        if (p.consume(' ')) {
          if (p.peek() != '(') q.known = p.sequence_set();
          if (p.consume(' ') || p.peek() == '(') {
            // the sequence match data only saves the server work: skipped
            p.expect('(');
            p.sequence_set();
            p.sp();
            p.sequence_set();
            p.expect(')');
          }
        }
        p.expect(')');
        qr = q;
      } else {
        throw ParseError("Unknown SELECT parameter");
      }
    } while (p.consume(' '));
    p.expect(')');
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  report_after_ = false;
  if (sel_) {
    sel_.reset();
    if (rev2_ || qresync_) untagged("OK [CLOSED] Previous mailbox closed");
  }
  auto box = find_mailbox(name);
  if (!box) return tagged(tag, "NO", "[NONEXISTENT] No such mailbox");
  if (condstore_param) condstore_ = true;
  Selected s;
  s.box = *box;
  s.read_only = read_only;
  s.modseq = box->highestmodseq;
  s.uidnext = box->uidnext;
  const auto index = shared_.messages(store_, *box);
  const auto& msgs = index->messages;
  std::uint32_t first_unseen = 0;
  for (const auto& m : msgs) {
    s.uids.push_back(m.uid);
    for (const auto& f : m.flags) {
      if (!f.starts_with("\\")) s.keywords.insert(f);
    }
    if (!first_unseen && !has_flag(m.flags, "\\Seen"))
      first_unseen = static_cast<std::uint32_t>(s.uids.size());
  }
  // EXAMINE does not take \Recent away from other sessions (RFC 3501 6.3.2).
  if (!read_only) s.recent.emplace_back(shared_.claim_recent(box->id, box->uidnext), box->uidnext);
  std::uint32_t recent = 0;
  for (auto u : s.uids)
    recent += s.is_recent(u) ? 1 : 0;
  untagged(fmt::format("{} EXISTS", s.uids.size()));
  if (!rev2_) untagged(fmt::format("{} RECENT", recent));
  sel_ = std::move(s);
  announce_flags();
  if (!rev2_ && first_unseen) untagged(fmt::format("OK [UNSEEN {}] First unseen", first_unseen));
  untagged(fmt::format("OK [UIDVALIDITY {}] UIDs valid", box->uidvalidity));
  untagged(fmt::format("OK [UIDNEXT {}] Predicted next UID", box->uidnext));
  untagged(
      fmt::format("OK [HIGHESTMODSEQ {}] Highest", std::max<std::uint64_t>(1, box->highestmodseq)));
  if (rev2_) untagged(fmt::format("LIST () \"/\" {}", encode_name(box->name)));
  if (qr && qr->uidvalidity == box->uidvalidity) {
    // RFC 7162 3.2.5.1: what the client missed since its MODSEQ.
    std::vector<std::uint32_t> vanished;
    for (const auto& [uid, modseq] : store_.expunged_since(box->id, qr->modseq)) {
      if (!qr->known || qr->known->contains(uid, box->uidnext - 1)) vanished.push_back(uid);
    }
    if (!vanished.empty()) untagged("VANISHED (EARLIER) " + SequenceSet::format(vanished));
    for (std::size_t i = 0; i < msgs.size(); ++i) {
      const auto& m = msgs[i];
      if (m.modseq <= qr->modseq) continue;
      if (qr->known && !qr->known->contains(m.uid, box->uidnext - 1)) continue;
      note_flags(m.flags);
      untagged(fmt::format("{} FETCH (UID {} FLAGS {} MODSEQ ({}))", i + 1, m.uid,
                           flag_text(m.flags, sel_->is_recent(m.uid) && !rev2_), m.modseq));
    }
  }
  tagged(tag, "OK", read_only ? "[READ-ONLY] EXAMINE completed" : "[READ-WRITE] SELECT completed");
}

std::uint32_t Session::seq_of(std::uint32_t uid) const {
  const auto it = std::lower_bound(sel_->uids.begin(), sel_->uids.end(), uid);
  if (it == sel_->uids.end() || *it != uid) return 0;
  return static_cast<std::uint32_t>(it - sel_->uids.begin()) + 1;
}

void Session::expunged(const std::vector<std::uint32_t>& uids) {
  std::vector<std::uint32_t> gone;
  for (auto u : uids) {
    if (seq_of(u)) gone.push_back(u);
  }
  if (gone.empty()) return;
  std::sort(gone.begin(), gone.end());
  if (qresync_) {
    untagged("VANISHED " + SequenceSet::format(gone));
  } else {
    // Highest first: the lower sequence numbers stay valid meanwhile.
    for (auto it = gone.rbegin(); it != gone.rend(); ++it)
      untagged(fmt::format("{} EXPUNGE", seq_of(*it)));
  }
  std::vector<std::uint32_t> keep;
  std::set_difference(sel_->uids.begin(), sel_->uids.end(), gone.begin(), gone.end(),
                      std::back_inserter(keep));
  sel_->uids = std::move(keep);
}

void Session::report_changes(bool allow_expunge) {
  if (!sel_) return;
  const auto box = store_.mailbox(sel_->box.id);
  if (!box) {
    untagged("BYE The selected mailbox was deleted");
    sel_.reset();
    state_ = State::closed;
    return;
  }
  sel_->box = *box;
  if (box->highestmodseq == sel_->modseq && box->uidnext == sel_->uidnext &&
      !(sel_->expunges_pending && allow_expunge))
    return;
  const auto index = shared_.messages(store_, *box);
  const auto& msgs = index->messages;
  std::vector<std::uint32_t> now;
  now.reserve(msgs.size());
  for (const auto& m : msgs)
    now.push_back(m.uid);
  // Expunges are found by comparing UIDs; held back now, they wait for the
  // next command that may report them.
  {
    std::vector<std::uint32_t> gone;
    std::set_difference(sel_->uids.begin(), sel_->uids.end(), now.begin(), now.end(),
                        std::back_inserter(gone));
    if (allow_expunge && !gone.empty()) expunged(gone);
    sel_->expunges_pending = !allow_expunge && !gone.empty();
  }
  const std::uint32_t last_known = sel_->uids.empty() ? 0 : sel_->uids.back();
  const std::size_t before = sel_->uids.size();
  for (const auto& m : msgs) {
    if (m.uid > last_known) sel_->uids.push_back(m.uid);
  }
  // Flag changes by others, for messages the client already knows.
  for (const auto& m : msgs) {
    if (m.modseq <= sel_->modseq || sel_->own_modseqs.contains(m.modseq)) continue;
    const std::uint32_t seq = seq_of(m.uid);
    if (!seq || seq > before) continue;
    note_flags(m.flags);
    std::string line = fmt::format("{} FETCH (UID {} FLAGS {}", seq, m.uid,
                                   flag_text(m.flags, !rev2_ && sel_->is_recent(m.uid)));
    if (condstore_) line += fmt::format(" MODSEQ ({})", m.modseq);
    untagged(line + ")");
  }
  if (sel_->uids.size() != before) {
    untagged(fmt::format("{} EXISTS", sel_->uids.size()));
    if (!rev2_) {
      if (!sel_->read_only) {
        const std::uint32_t from = shared_.claim_recent(box->id, box->uidnext);
        if (from < box->uidnext) {
          if (!sel_->recent.empty() && sel_->recent.back().second == from) {
            sel_->recent.back().second = box->uidnext;
          } else {
            sel_->recent.emplace_back(from, box->uidnext);
          }
        }
      }
      std::uint32_t recent = 0;
      for (auto u : sel_->uids)
        recent += sel_->is_recent(u) ? 1 : 0;
      untagged(fmt::format("{} RECENT", recent));
    }
  }
  sel_->modseq = box->highestmodseq;
  sel_->own_modseqs.clear();
  sel_->uidnext = box->uidnext;
}

std::vector<std::uint32_t> Session::resolve(const SequenceSet& set, bool uid) const {
  std::vector<std::uint32_t> out;
  if (set.saved) {
    for (auto u : sel_->saved) {
      if (seq_of(u)) out.push_back(u);
    }
    return out;
  }
  const auto& uids = sel_->uids;
  if (uid) {
    const std::uint32_t star = uids.empty() ? 0 : uids.back();
    for (auto u : uids) {
      if (set.contains(u, star)) out.push_back(u);
    }
    // RFC 9051 6.4.8: "n:*" always includes the highest UID, even if n is
    // higher than it.
    if (!uids.empty() && out.empty()) {
      for (const auto& r : set.ranges) {
        if ((r.first == 0 || r.last == 0) && !uids.empty()) out.push_back(uids.back());
      }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }
  const auto n = static_cast<std::uint32_t>(uids.size());
  for (const auto& r : set.ranges) {
    if ((r.first != 0 && r.first > n) || (r.last != 0 && r.last > n) ||
        (n == 0 && (r.first == 0 || r.last == 0)))
      throw ParseError("Invalid message sequence number");
  }
  for (std::uint32_t seq = 1; seq <= n; ++seq) {
    if (set.contains(seq, n)) out.push_back(uids[seq - 1]);
  }
  return out;
}

// ---- FETCH ----

void Session::cmd_fetch(const std::string& tag, Parser& p, bool uid) {
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
  auto index = current();
  // BODY[] without PEEK marks the messages \Seen (RFC 9051 6.4.5).
  std::set<std::uint32_t> now_seen;
  if (sets_seen && !sel_->read_only) {
    std::vector<std::uint32_t> unseen;
    for (const std::uint32_t u : wanted) {
      const auto* found = index->find(u);
      if (!found) continue;
      const auto& m = *found;
      if (!has_flag(m.flags, "\\Seen") && (!changed_since || m.modseq > *changed_since))
        unseen.push_back(m.uid);
    }
    if (!unseen.empty()) {
      auto o =
          execute(tag, schemas::FlagsChanged{
                           sel_->box.id, unseen, schemas::FlagOp::add, {"\\Seen"}, std::nullopt});
      if (!o) return;
      now_seen.insert(o->uids.begin(), o->uids.end());
      index = current();
    }
  }
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
    std::optional<projections::mime::Summary> sum;
    auto need_raw = [&]() -> const std::string& {
      if (!raw) raw = store_.body(m.blob).value_or("");
      return *raw;
    };
    auto need_sum = [&]() -> const projections::mime::Summary& {
      // Parsed at projection time; parsed here if the view lacks it.
      if (!sum) sum = store_.mime(m.blob);
      if (!sum) sum = projections::mime::parse(need_raw());
      if (sum->parts.empty()) {
        projections::mime::Part whole;
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
            // A multipart or message/rfc822 is 7bit/8bit/binary by definition
            // (RFC 2045 6.4): its bytes as they are. Of a single-part
            // message, BINARY[] is its header and its decoded body.
            const bool composite = part && (part->type.starts_with("multipart/") || part->message);
            if (part && !composite) {
              const std::string& full = need_raw();
              const bool whole = it.section.part.empty();
              const std::uint64_t b = std::min<std::uint64_t>(part->body_begin, full.size());
              const std::uint64_t e =
                  std::min<std::uint64_t>(std::max(b, part->body_end), full.size());
              auto decoded = projections::mime::decode_transfer_encoding(
                  std::string_view(full).substr(b, e - b), part->encoding);
              if (!decoded) return tagged(tag, "NO", "[UNKNOWN-CTE] Unknown transfer encoding");
              bytes = whole ? full.substr(0, b) + *decoded : std::move(*decoded);
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
}

// ---- STORE ----

void Session::cmd_store(const std::string& tag, Parser& p, bool uid) {
  p.sp();
  const SequenceSet set = p.sequence_set();
  p.sp();
  std::optional<std::uint64_t> unchanged_since;
  if (p.consume('(')) {
    if (!p.keyword("UNCHANGEDSINCE")) throw ParseError("Unknown STORE modifier");
    p.sp();
    unchanged_since = p.number64();
    p.expect(')');
    p.sp();
    enable_condstore();
  }
  schemas::FlagOp op = schemas::FlagOp::replace;
  if (p.consume('+')) {
    op = schemas::FlagOp::add;
  } else if (p.consume('-')) {
    op = schemas::FlagOp::remove;
  }
  std::string item = ascii::upper(p.atom());
  bool silent = false;
  if (item == "FLAGS.SILENT") {
    silent = true;
  } else if (item != "FLAGS") {
    throw ParseError("Expected FLAGS");
  }
  p.sp();
  std::vector<std::string> flags;
  if (p.peek() == '(') {
    flags = p.flag_list();
  } else {
    do {
      flags.push_back(p.flag());
    } while (p.consume(' '));
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  static const char* system[] = {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"};
  std::vector<std::string> clean;
  for (const auto& f : flags) {
    if (ascii::iequals(f, "\\Recent")) continue;  // session state, never stored
    if (f.starts_with("\\")) {
      bool known = false;
      for (const char* s : system)
        known = known || ascii::iequals(f, s);
      if (!known) throw ParseError("Unknown system flag " + f);
    }
    clean.push_back(f);
  }
  if (sel_->read_only) return tagged(tag, "NO", "[READ-ONLY] Mailbox is read-only");
  const auto uids = resolve(set, uid);
  std::vector<std::uint32_t> modified;
  if (!uids.empty()) {
    auto o = execute(tag, schemas::FlagsChanged{sel_->box.id, uids, op, clean, unchanged_since});
    if (!o) return;
    if (!o->ok() && o->code != OutcomeCode::mailbox_missing)
      return tagged(tag, "NO", "[CANNOT] STORE failed: " + o->detail);
    modified = o->modified;
    // A silent STORE told the client nothing: changes others made to these
    // messages before it must still be reported (RFC 9051 6.4.6).
    if (silent) sel_->own_modseqs.erase(o->modseq);
    const std::set<std::uint32_t> changed(o->uids.begin(), o->uids.end());
    const std::set<std::uint32_t> refused(modified.begin(), modified.end());
    const auto index = current();
    for (const auto& m : index->messages) {
      if (!std::binary_search(uids.begin(), uids.end(), m.uid) || refused.contains(m.uid)) continue;
      const std::uint32_t seq = seq_of(m.uid);
      if (!seq) continue;
      if (silent && !(condstore_ && changed.contains(m.uid))) continue;
      if (!silent) note_flags(m.flags);
      std::string line = fmt::format("{} FETCH (", seq);
      std::string inner;
      if (uid || condstore_) inner = fmt::format("UID {}", m.uid);
      if (!silent)
        inner += (inner.empty() ? "" : " ") +
                 ("FLAGS " + flag_text(m.flags, !rev2_ && sel_->is_recent(m.uid)));
      if (condstore_) inner += fmt::format(" MODSEQ ({})", m.modseq);
      untagged(line + inner + ")");
    }
  }
  if (!modified.empty()) {
    std::vector<std::uint32_t> shown;
    for (auto u : modified)
      if (const std::uint32_t n = uid ? u : seq_of(u)) shown.push_back(n);
    return tagged(
        tag, "OK",
        fmt::format("[MODIFIED {}] Conditional STORE failed", SequenceSet::format(shown)));
  }
  tagged(tag, "OK", "STORE completed");
}

// ---- COPY / MOVE ----

void Session::cmd_copy(const std::string& tag, Parser& p, bool uid, bool move) {
  p.sp();
  const SequenceSet set = p.sequence_set();
  p.sp();
  const std::string name = decode_name(p.mailbox());
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  const auto uids = resolve(set, uid);
  auto target = find_mailbox(name);
  if (!target) return tagged(tag, "NO", "[TRYCREATE] No such mailbox");
  if (move && sel_->read_only) return tagged(tag, "NO", "[READ-ONLY] Mailbox is read-only");
  if (uids.empty()) return tagged(tag, "OK", move ? "MOVE completed" : "COPY completed");
  // MOVE within one mailbox (RFC 6851 allows it): a copy, then the
  // originals expunged.
  const bool same = move && target->id == sel_->box.id;
  std::optional<projections::Outcome> o;
  if (move && !same) {
    o = execute(tag, schemas::MessagesMoved{sel_->box.id, uids, target->id});
  } else {
    o = execute(tag, schemas::MessagesCopied{sel_->box.id, uids, target->id});
  }
  if (!o) return;
  if (o->code == OutcomeCode::mailbox_missing)
    return tagged(tag, "NO", "[TRYCREATE] No such mailbox");
  if (!o->ok()) return tagged(tag, "NO", "[CANNOT] " + o->detail);
  if (same && !o->source_uids.empty()) {
    auto gone = execute(tag, schemas::MessagesExpunged{sel_->box.id, o->source_uids});
    if (!gone) return;
  }
  std::string copyuid;
  if (!o->uids.empty()) {
    copyuid = fmt::format("[COPYUID {} {} {}] ", o->uidvalidity,
                          SequenceSet::format(o->source_uids), SequenceSet::format(o->uids));
    // The UID sets must pair up in order: format() sorts, and source UIDs
    // were applied in ascending order, so the new UIDs ascend with them.
  }
  if (!move) return tagged(tag, "OK", copyuid + "COPY completed");
  if (!copyuid.empty()) untagged("OK " + copyuid + "Moved");
  expunged(o->source_uids);
  tagged(tag, "OK", "MOVE completed");
}

// ---- EXPUNGE ----

void Session::cmd_expunge(const std::string& tag, Parser& p, bool uid) {
  std::optional<SequenceSet> set;
  if (uid) {
    p.sp();
    set = p.sequence_set();
  }
  if (!p.at_end()) throw ParseError("Unexpected arguments");
  if (sel_->read_only) return tagged(tag, "NO", "[READ-ONLY] Mailbox is read-only");
  std::vector<std::uint32_t> within;
  if (set) within = resolve(*set, true);
  std::vector<std::uint32_t> uids;
  const auto index = current();
  for (const auto& m : index->messages) {
    if (!has_flag(m.flags, "\\Deleted") || !seq_of(m.uid)) continue;
    if (set && !std::binary_search(within.begin(), within.end(), m.uid)) continue;
    uids.push_back(m.uid);
  }
  if (!uids.empty()) {
    auto o = execute(tag, schemas::MessagesExpunged{sel_->box.id, uids});
    if (!o) return;
    expunged(o->uids);
  }
  tagged(tag, "OK", "EXPUNGE completed");
}

// ---- SEARCH ----

void Session::cmd_search(const std::string& tag, Parser& p, bool uid) {
  p.sp();
  std::optional<std::vector<std::string>> ret;
  if (p.keyword("RETURN")) {
    p.sp();
    p.expect('(');
    ret.emplace();
    while (!p.consume(')')) {
      p.consume(' ');
      const std::string opt = ascii::upper(p.atom());
      if (opt != "MIN" && opt != "MAX" && opt != "ALL" && opt != "COUNT" && opt != "SAVE")
        throw ParseError("Unknown RETURN option " + opt);
      ret->push_back(opt);
    }
    p.sp();
  }
  // RFC 5182 2.1: a SEARCH that fails to SAVE leaves "$" empty.
  const bool save = ret && std::find(ret->begin(), ret->end(), "SAVE") != ret->end();
  Key key;
  try {
    if (p.keyword("CHARSET")) {
      p.sp();
      const std::string cs = ascii::upper(p.astring());
      if (cs != "UTF-8" && cs != "US-ASCII") {
        if (save) sel_->saved.clear();
        return tagged(tag, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
      }
      p.sp();
    }
    key = parse_keys(p, 0);
    if (!p.at_end()) throw ParseError("Unexpected arguments");
  } catch (const ParseError&) {
    if (save) sel_->saved.clear();
    throw;
  }
  const auto& uids = sel_->uids;
  const std::uint32_t max_seq = static_cast<std::uint32_t>(uids.size());
  const std::uint32_t max_uid = uids.empty() ? 0 : uids.back();
  std::vector<std::uint32_t> hits;  // UIDs
  std::uint64_t top_modseq = 0;
  const auto index = current();
  for (const auto& m : index->messages) {
    const std::uint32_t seq = seq_of(m.uid);
    if (!seq) continue;
    Candidate c{m, seq, !rev2_ && sel_->is_recent(m.uid), store_, std::nullopt, std::nullopt};
    if (matches(key, c, max_seq, max_uid, sel_->saved)) {
      hits.push_back(m.uid);
      top_modseq = std::max(top_modseq, m.modseq);
    }
  }
  const bool modseq = uses_modseq(key);
  if (modseq) enable_condstore();
  auto shown = [&](std::uint32_t u) { return uid ? u : seq_of(u); };
  const bool esearch = ret.has_value() || rev2_;
  std::vector<std::string> opts = ret.value_or(std::vector<std::string>{});
  if (esearch && opts.empty()) opts.push_back("ALL");
  auto has = [&](const char* o) { return std::find(opts.begin(), opts.end(), o) != opts.end(); };
  if (has("SAVE")) {
    // RFC 5182 2.4: with MIN or MAX only those are saved.
    if ((has("MIN") || has("MAX")) && !has("ALL") && !has("COUNT") && !hits.empty()) {
      sel_->saved.clear();
      if (has("MIN")) sel_->saved.push_back(hits.front());
      if (has("MAX") && hits.back() != hits.front()) sel_->saved.push_back(hits.back());
    } else {
      sel_->saved = hits;
    }
    if (opts.size() == 1) return tagged(tag, "OK", "SEARCH completed, result saved");
  }
  if (!esearch) {
    std::string line = "SEARCH";
    for (auto u : hits)
      line += fmt::format(" {}", shown(u));
    if (modseq && !hits.empty()) line += fmt::format(" (MODSEQ {})", top_modseq);
    untagged(line);
    return tagged(tag, "OK", "SEARCH completed");
  }
  std::string line = fmt::format("ESEARCH (TAG {}){}", quote(tag), uid ? " UID" : "");
  if (!hits.empty()) {
    if (has("MIN")) line += fmt::format(" MIN {}", shown(hits.front()));
    if (has("MAX")) line += fmt::format(" MAX {}", shown(hits.back()));
    if (has("ALL")) {
      std::vector<std::uint32_t> v;
      for (auto u : hits)
        v.push_back(shown(u));
      line += " ALL " + SequenceSet::format(v);
    }
  }
  if (has("COUNT")) line += fmt::format(" COUNT {}", hits.size());
  if (modseq && !hits.empty()) {
    // RFC 4731 / RFC 7162 3.1.5: with only MIN and/or MAX, the MODSEQ of
    // the messages returned.
    if (!has("ALL") && !has("COUNT")) {
      top_modseq = 0;
      for (const std::uint32_t u :
           {has("MIN") ? hits.front() : 0u, has("MAX") ? hits.back() : 0u}) {
        if (const auto* m = u ? index->find(u) : nullptr)
          top_modseq = std::max(top_modseq, m->modseq);
      }
    }
    line += fmt::format(" MODSEQ {}", top_modseq);
  }
  untagged(line);
  tagged(tag, "OK", "SEARCH completed");
}

}  // namespace a3::imap
