// SEARCH (RFC 9051 6.4.4, ESEARCH RFC 4731, SEARCHRES RFC 5182): keys
// parsed into a tree, evaluated per message on the shared message index.
#include <algorithm>
#include <chrono>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/imap/message_text.h"
#include "frontends/imap/session.h"
#include "mime/mime.h"

namespace a3::imap {

using projections::MessageRecord;

namespace {

std::int64_t day_of(std::int64_t ms) {
  return (ms >= 0 ? ms : ms - 86'399'999) / 86'400'000;
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
    savedbefore,
    savedon,
    savedsince,
    savedatesupported,
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
  // RFC 8514 4.2: the save date, and whether the mailbox keeps one.
  if (w == "SAVEDBEFORE") return k.type = T::savedbefore, k.n = date(), k;
  if (w == "SAVEDON") return k.type = T::savedon, k.n = date(), k;
  if (w == "SAVEDSINCE") return k.type = T::savedsince, k.n = date(), k;
  if (w == "SAVEDATESUPPORTED") return k.type = T::savedatesupported, k;
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
  std::optional<mime::Summary> sum;
  std::optional<std::string> raw;

  const mime::Summary& summary() {
    if (!sum) sum = store.mime(m.blob).value_or(mime::Summary{});
    return *sum;
  }
  const std::string& body() {
    if (!raw) raw = store.body(m.blob).value_or("");
    return *raw;
  }
};

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Substring match with i;unicode-casemap (RFC 5051, RFC 9051 6.4.4): ASCII
// case folding when both sides are ASCII, Unicode folding otherwise.
bool contains(std::string_view hay, std::string_view needle) {
  if (is_ascii(needle) && is_ascii(hay)) return ascii::ifind(hay, needle) != std::string_view::npos;
  return mime::fold(hay).find(mime::fold(needle)) != std::string::npos;
}

// Text parts decoded (base64, quoted-printable), then searched.
bool body_contains(Candidate& c, std::string_view needle, bool with_header) {
  const std::string& raw = c.body();
  const auto& sum = c.summary();
  auto range = [&](std::uint64_t b, std::uint64_t e) {
    b = std::min<std::uint64_t>(b, raw.size());
    return std::string_view(raw).substr(b, std::min<std::uint64_t>(std::max(b, e), raw.size()) - b);
  };
  if (with_header) {
    // TEXT: the message's header, every part's MIME header and every
    // embedded message's header too (RFC 9051 6.4.4: "header or body").
    for (const auto& part : sum.parts) {
      if (contains(mime::decode_header_text(range(part.header_begin, part.body_begin)), needle))
        return true;
      if (part.message &&
          contains(mime::decode_header_text(range(part.body_begin, part.inner_body_begin)), needle))
        return true;
    }
  }
  bool leaf_seen = false;
  for (const auto& part : sum.parts) {
    if (part.type.starts_with("multipart/") || part.message) continue;
    leaf_seen = true;
    if (part.body_begin > raw.size()) continue;
    const auto body = std::string_view(raw).substr(
        part.body_begin, std::min<std::uint64_t>(part.body_end, raw.size()) - part.body_begin);
    if (!part.type.starts_with("text/") && part.encoding == "base64") continue;
    const auto decoded = mime::decode_transfer_encoding(body, part.encoding);
    const std::string_view octets = decoded ? std::string_view(*decoded) : body;
    // Text in its own charset, searched as UTF-8.
    const std::string charset = part.type.starts_with("text/")
                                    ? mime::charset_of(range(part.header_begin, part.body_begin))
                                    : std::string();
    if (charset.empty() || ascii::iequals(charset, "us-ascii") ||
        ascii::iequals(charset, "utf-8")) {
      if (contains(octets, needle)) return true;
    } else if (contains(mime::to_utf8(octets, charset), needle)) {
      return true;
    }
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
  // Unfolded, encoded words decoded, then looked in.
  return contains(mime::decode_header_text(lines), needle);
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
    case T::savedbefore:
      return day_of(m.appended_at_ms) < static_cast<std::int64_t>(k.n);
    case T::savedon:
      return day_of(m.appended_at_ms) == static_cast<std::int64_t>(k.n);
    case T::savedsince:
      return day_of(m.appended_at_ms) >= static_cast<std::int64_t>(k.n);
    case T::savedatesupported:
      return true;
    case T::sentbefore:
    case T::senton:
    case T::sentsince: {
      // RFC 9051 6.4.4: the Date header's own day, in its own zone. A
      // message without a (valid) Date is sent on 1 January 1970, as the
      // reference treats it: before every date a client can name.
      const auto& sum = c.summary();
      const std::int64_t sent =
          sum.date_ms ? sum.date_ms + std::int64_t{sum.date_offset_minutes} * 60'000 : 0;
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

// ---- SEARCH ----

void Session::search_messages(const std::string& tag, Parser& p, bool uid) {
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
  const auto started = std::chrono::steady_clock::now();
  for (const auto& m : index->messages) {
    // The guide's search_timeout (a clock read costs far less than a match).
    if (limits_.search_timeout.count() > 0 &&
        std::chrono::steady_clock::now() - started > limits_.search_timeout) {
      if (save) sel_->saved.clear();
      return tagged(tag, "NO",
                    fmt::format("[LIMIT] SEARCH took longer than {} s; narrow it down",
                                limits_.search_timeout.count()));
    }
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
  std::string line = fmt::format("ESEARCH (TAG {}){}", mime::imap_string(tag), uid ? " UID" : "");
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

void Session::cmd_search(const std::string& tag, Parser& p) {
  search_messages(tag, p, false);
}

void Session::cmd_uid_search(const std::string& tag, Parser& p) {
  search_messages(tag, p, true);
}

}  // namespace a3::imap
