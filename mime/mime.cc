#include "mime/mime.h"

#include <gmime/gmime.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/json.h"
#include "mime/rfc822.h"

namespace a3::mime {

namespace {

using ascii::iequals;
using ascii::lower;
using ascii::upper;

constexpr std::size_t kMaxParts = 2000;

// ---- GMime ownership ----

void init_gmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

// Header text outside encoded words is UTF-8 (RFC 6532 3.2), never a
// guessed legacy charset: invalid octets stay invalid, as the reference
// reads them.
GMimeParserOptions* utf8_options() {
  static GMimeParserOptions* options = [] {
    init_gmime();
    GMimeParserOptions* o = g_mime_parser_options_new();
    const char* charsets[] = {"utf-8", nullptr};
    g_mime_parser_options_set_fallback_charsets(o, charsets);
    return o;
  }();
  return options;
}

template <typename T>
struct GObjectPtr {
  T* p = nullptr;
  explicit GObjectPtr(T* x) : p(x) {}
  ~GObjectPtr() {
    if (p) g_object_unref(p);
  }
  GObjectPtr(const GObjectPtr&) = delete;
  GObjectPtr& operator=(const GObjectPtr&) = delete;
};

std::string take_gstring(char* s) {
  std::string out = s ? s : "";
  g_free(s);
  return out;
}

// ---- headers ----

struct Header {
  std::string name;   // as written
  std::string value;  // unfolded, raw
};

// The position after the line that starts at `pos` (after its LF), or end.
std::size_t next_line(std::string_view s, std::size_t pos, std::size_t end) {
  const auto lf = s.find('\n', pos);
  return lf == std::string_view::npos || lf >= end ? end : lf + 1;
}

bool blank_line(std::string_view s, std::size_t pos, std::size_t end) {
  return pos < end && (s[pos] == '\n' || (s[pos] == '\r' && pos + 1 < end && s[pos + 1] == '\n'));
}

std::string_view chomp(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
    line.remove_suffix(1);
  return line;
}

// One header field at `pos` with its continuation lines. A line without a
// colon is skipped.
// Returns the position after it.
std::size_t read_field(std::string_view s, std::size_t pos, std::size_t end,
                       std::vector<Header>& out) {
  std::size_t next = next_line(s, pos, end);
  const std::string_view line = chomp(s.substr(pos, next - pos));
  const auto colon = line.find(':');
  std::optional<Header> h;
  if (colon != std::string_view::npos) {
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
      name.remove_suffix(1);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    h = Header{std::string(name), std::string(value)};
  }
  while (next < end && (s[next] == ' ' || s[next] == '\t')) {
    const std::size_t after = next_line(s, next, end);
    // A fold and the whitespace after it read as one space, as the
    // reference unfolds; a line of only whitespace adds nothing.
    const std::string_view more = ascii::trim(chomp(s.substr(next, after - next)));
    if (h && !more.empty()) {
      if (!h->value.empty()) h->value += ' ';
      h->value += more;
    }
    next = after;
  }
  if (h) {
    while (!h->value.empty() && (h->value.back() == ' ' || h->value.back() == '\t'))
      h->value.pop_back();
    out.push_back(std::move(*h));
  }
  return next;
}

const std::string* find_header(const std::vector<Header>& h, std::string_view name) {
  for (const auto& x : h) {
    if (iequals(x.name, name)) return &x.value;
  }
  return nullptr;
}

std::string trim(std::string_view v) {
  return std::string(ascii::trim(v));
}

// ---- IMAP rendering ----

std::string nstring(const std::string* v) {
  return v ? imap_string(*v) : "NIL";
}

std::string params_list(const std::vector<std::pair<std::string, std::string>>& params) {
  if (params.empty()) return "NIL";
  std::string out = "(";
  for (const auto& [name, value] : params) {
    if (out.size() > 1) out += ' ';
    out += imap_string(name);
    out += ' ';
    out += imap_string(value);
  }
  return out + ")";
}

const std::string* param(const std::vector<std::pair<std::string, std::string>>& params,
                         std::string_view name) {
  for (const auto& [n, v] : params) {
    if (iequals(n, name)) return &v;
  }
  return nullptr;
}

// RFC 9051 7.5.2: address = "(" addr-name SP addr-adl SP addr-mailbox SP addr-host ")",
// from the header's own text.
std::string envelope_addresses(const std::string* value) {
  if (!value) return "NIL";
  const auto list = rfc822::parse_addresses(*value);
  if (list.empty()) return "NIL";
  std::string out = "(";
  auto n = [](const std::optional<std::string>& v) { return v ? imap_string(*v) : "NIL"; };
  for (const auto& a : list)
    out += fmt::format("({} {} {} {})", n(a.name), n(a.route), n(a.mailbox), n(a.host));
  return out + ")";
}

// "Name <addr>, ..." decoded (RFC 2047), for SEARCH FROM/TO/CC/BCC.
void search_addresses(InternetAddressList* list, std::string& search) {
  const int n = list ? internet_address_list_length(list) : 0;
  for (int i = 0; i < n; ++i) {
    InternetAddress* ia = internet_address_list_get_address(list, i);
    const char* name = internet_address_get_name(ia);
    if (!search.empty()) search += ", ";
    if (INTERNET_ADDRESS_IS_GROUP(ia)) {
      search += name ? name : "";
      std::string inner;
      search_addresses(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), inner);
      if (!inner.empty()) search += ": " + inner;
      continue;
    }
    const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
    const std::string a = addr ? addr : "";
    search += name && *name ? fmt::format("{} <{}>", name, a) : a;
  }
}

std::string search_text(const std::string* value) {
  if (!value || trim(*value).empty()) return {};
  GObjectPtr<InternetAddressList> list(internet_address_list_parse(utf8_options(), value->c_str()));
  std::string s;
  search_addresses(list.p, s);
  return s;
}

// ---- the structure ----

// A MIME entity: a message, a body part, or a message embedded in a
// message/rfc822 part.
struct Node {
  std::vector<Header> headers;
  std::uint64_t header_begin = 0, body_begin = 0, body_end = 0;
  std::string type, subtype;  // as written, or the default
  std::vector<std::pair<std::string, std::string>> params;
  std::string encoding;  // as written, "" if absent or not a token
  std::string media;     // lowercase "type/subtype"
  bool multipart = false, message = false;
  // A boundary line cut the header short: the newline before it is not
  // the header's, but the enclosing message/rfc822 part's.
  bool header_cut = false;
  std::vector<std::unique_ptr<Node>> children;  // parts, or the embedded message
};

constexpr int kMaxDepth = 64;
// RFC 2046 5.1.1 allows 70; longer boundaries are cut, as the reference does.
constexpr std::size_t kMaxBoundary = 80;

// Finds the entities of a message in one pass over its lines. A line
// starting with "--" ends the current part when it starts with an active
// boundary: the longest one that matches, the innermost of equals
// (RFC 2046 5.1.2: the innermost first, so that nested parts may reuse a
// boundary). A boundary of an enclosing multipart ends every part inside
// it, so missing close delimiters lose nothing. The CRLF before a boundary
// line belongs to the boundary (RFC 2046 5.1.1).
class Scanner {
 public:
  explicit Scanner(std::string_view raw) : raw_(raw) {}

  std::unique_ptr<Node> run() {
    auto top = std::make_unique<Node>();
    entity(*top, 0, "text/plain", 0);
    return top;
  }

 private:
  struct Boundary {
    std::string text;
  };
  struct Match {
    std::size_t level;  // index in stack_
    std::size_t line;   // where the "--" starts
    bool close;
  };

  std::optional<Match> match(std::size_t pos) const {
    if (stack_.empty() || pos + 2 > raw_.size() || raw_[pos] != '-' || raw_[pos + 1] != '-')
      return std::nullopt;
    const std::size_t e = next_line(raw_, pos, raw_.size());
    const std::string_view rest = raw_.substr(pos + 2, e - pos - 2);
    std::optional<std::size_t> best;
    for (std::size_t i = stack_.size(); i-- > 0;) {
      const auto& b = stack_[i].text;
      if (rest.starts_with(b) && (!best || stack_[*best].text.size() < b.size())) best = i;
    }
    if (!best) return std::nullopt;
    return Match{*best, pos, rest.substr(stack_[*best].text.size()).starts_with("--")};
  }

  std::optional<Match> scan(std::size_t pos) const {
    if (stack_.empty()) return std::nullopt;
    for (; pos < raw_.size(); pos = next_line(raw_, pos, raw_.size())) {
      if (auto m = match(pos)) return m;
    }
    return std::nullopt;
  }

  // The end of a part that a boundary line at `line` closes: before its
  // CRLF (or LF), never before `floor`.
  std::size_t before_newline(std::size_t line, std::size_t floor) const {
    std::size_t e = line;
    if (e > floor && raw_[e - 1] == '\n') {
      --e;
      if (e > floor && raw_[e - 1] == '\r') --e;
    }
    return e;
  }

  void describe(Node& n, std::string_view default_type) {
    rfc822::ContentType ct;
    if (const auto* v = find_header(n.headers, "Content-Type")) ct = rfc822::parse_content_type(*v);
    if (ct.type.empty()) {
      const auto slash = default_type.find('/');
      n.type = std::string(default_type.substr(0, slash));
      n.subtype = std::string(default_type.substr(slash + 1));
    } else {
      n.type = std::move(ct.type);
      n.subtype = std::move(ct.subtype);
      n.params = std::move(ct.params);
    }
    n.media = lower(n.type) + "/" + lower(n.subtype);
    n.multipart = lower(n.type) == "multipart";
    n.message = n.media == "message/rfc822" || n.media == "message/global";
    if (const auto* e = find_header(n.headers, "Content-Transfer-Encoding"))
      n.encoding = rfc822::single_token(*e);
  }

  // Reads the entity starting at `begin`: its header, then its body, up to
  // the next line with an active boundary (returned) or the end.
  std::optional<Match> entity(Node& n, std::size_t begin, std::string_view default_type,
                              int depth) {
    ++count_;
    const std::size_t end = raw_.size();
    n.header_begin = begin;
    std::size_t pos = begin;
    std::optional<Match> stop;
    bool blank = false;
    while (pos < end) {
      if (blank_line(raw_, pos, end)) {
        pos = next_line(raw_, pos, end);
        blank = true;
        break;
      }
      // A boundary ends a part whose header has no blank line after it.
      if ((stop = match(pos))) break;
      pos = read_field(raw_, pos, end, n.headers);
    }
    describe(n, default_type);
    const bool descend = depth < kMaxDepth && count_ < kMaxParts;
    const std::string* boundary = n.multipart ? param(n.params, "boundary") : nullptr;
    const bool own = descend && boundary && !boundary->empty();
    if (own) stack_.push_back({boundary->substr(0, kMaxBoundary)});
    const std::size_t level = stack_.size() - 1;
    if (blank && !stop) {
      // An enclosing boundary right after the blank line: the part has no
      // body, and the blank line is the newline before the boundary.
      if (auto m = match(pos); m && !(own && m->level == level)) stop = m;
    }
    if (stop) {
      if (own) stack_.pop_back();
      n.body_begin = n.body_end = before_newline(pos, begin);
      n.header_cut = n.body_begin != pos;
      return stop;
    }
    n.body_begin = pos;
    if (own) {
      const std::string child_type = iequals(n.subtype, "digest") ? "message/rfc822" : "text/plain";
      auto m = scan(n.body_begin);
      std::size_t floor = n.body_begin;
      for (;;) {
        if (!m) {
          n.body_end = end;
          stack_.resize(level);
          return std::nullopt;
        }
        if (m->level == level && m->close) {
          // The epilogue runs up to an enclosing boundary; the close
          // delimiter's own line end stays in this body.
          stack_.resize(level);
          floor = next_line(raw_, m->line, end);
          m = scan(floor);
          if (!m) {
            n.body_end = end;
            return std::nullopt;
          }
        }
        if (m->level != level) {
          n.body_end = before_newline(m->line, floor);
          stack_.resize(m->level + 1);
          return m;
        }
        const std::size_t start = next_line(raw_, m->line, end);
        if (count_ >= kMaxParts) {
          // Bounded work whatever the message: the rest stays in the body.
          m = scan(start);
          continue;
        }
        n.children.push_back(std::make_unique<Node>());
        m = entity(*n.children.back(), start, child_type, depth + 1);
        // A child whose header a boundary cut short leaves us the newline.
        floor = m && n.children.back()->header_cut ? m->line : start;
      }
    }
    if (descend && n.message) {
      n.children.push_back(std::make_unique<Node>());
      const Node& inner = *n.children.back();
      auto m = entity(*n.children.back(), n.body_begin, "text/plain", depth + 1);
      n.body_end = m && inner.header_cut ? m->line : inner.body_end;
      return m;
    }
    auto m = scan(n.body_begin);
    n.body_end = m ? before_newline(m->line, n.body_begin) : end;
    return m;
  }

  std::string_view raw_;
  std::vector<Boundary> stack_;
  std::size_t count_ = 0;
};

// RFC 9051 7.5.2 requires a part in every multipart: a multipart without
// one shows an empty text/plain, as the reference does.
constexpr std::string_view kEmptyBody =
    R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0))";
constexpr std::string_view kEmptyStructure =
    R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL))";
constexpr std::string_view kEmptyEnvelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";

class Renderer {
 public:
  Renderer(std::string_view raw, Summary& sum) : raw_(raw), sum_(sum) {}

  std::string envelope(const std::vector<Header>& h) const {
    const std::string from = envelope_addresses(find_header(h, "From"));
    // RFC 9051 7.5.2: absent or empty Sender / Reply-To take From's value.
    std::string sender = envelope_addresses(find_header(h, "Sender"));
    if (sender == "NIL") sender = from;
    std::string reply_to = envelope_addresses(find_header(h, "Reply-To"));
    if (reply_to == "NIL") reply_to = from;
    return fmt::format(
        "({} {} {} {} {} {} {} {} {} {})", nstring(find_header(h, "Date")),
        nstring(find_header(h, "Subject")), from, sender, reply_to,
        envelope_addresses(find_header(h, "To")), envelope_addresses(find_header(h, "Cc")),
        envelope_addresses(find_header(h, "Bcc")), nstring(find_header(h, "In-Reply-To")),
        nstring(find_header(h, "Message-ID")));
  }

  // BODY and BODYSTRUCTURE of `n`.
  std::pair<std::string, std::string> structure(const Node& n) const {
    const auto& h = n.headers;
    std::string disposition = "NIL";
    if (const auto* d = find_header(h, "Content-Disposition")) {
      auto cd = rfc822::parse_disposition(*d);
      if (!cd.type.empty())
        disposition = fmt::format("({} {})", imap_string(cd.type), params_list(cd.params));
    }
    std::string language = "NIL";
    if (const auto* l = find_header(h, "Content-Language")) {
      const auto tags = rfc822::parse_languages(*l);
      if (!tags.empty()) {
        language = "(";
        for (const auto& t : tags)
          language += (language.size() > 1 ? " " : "") + imap_string(t);
        language += ")";
      }
    }
    const std::string location = nstring(find_header(h, "Content-Location"));
    const std::string subtype = imap_string(n.subtype);

    if (n.multipart) {
      std::string body_s, ext_s;
      for (const auto& c : n.children) {
        auto [b, e] = structure(*c);
        body_s += b;
        ext_s += e;
      }
      if (n.children.empty()) {
        body_s = kEmptyBody;
        ext_s = kEmptyStructure;
      }
      return {fmt::format("({} {})", body_s, subtype),
              fmt::format("({} {} {} {} {} {})", ext_s, subtype, params_list(n.params), disposition,
                          language, location)};
    }

    const std::string_view body = raw_.substr(n.body_begin, n.body_end - n.body_begin);
    // RFC 2045 5.2: text without a charset is us-ascii; say so, as
    // clients expect a charset for every text part.
    // The default goes after the parameters there are, as the reference puts it.
    auto params = n.params;
    if (lower(n.type) == "text" && !param(params, "charset"))
      params.emplace_back("charset", "us-ascii");
    const std::string param_text = params_list(params);
    const std::string fields = fmt::format("{} {} {} {} {} {}", imap_string(n.type), subtype,
                                           param_text, nstring(find_header(h, "Content-ID")),
                                           nstring(find_header(h, "Content-Description")),
                                           imap_string(n.encoding.empty() ? "7bit" : n.encoding));
    const std::size_t lines = static_cast<std::size_t>(std::count(body.begin(), body.end(), '\n'));
    std::string tail, ext_tail;
    if (lower(n.type) == "text") {
      tail = ext_tail = fmt::format(" {} {}", body.size(), lines);
    } else if (n.message) {
      // The embedded message: its envelope and structure, then the lines.
      std::string env(kEmptyEnvelope), b(kEmptyBody), e(kEmptyStructure);
      if (!n.children.empty()) {
        env = envelope(n.children[0]->headers);
        std::tie(b, e) = structure(*n.children[0]);
      }
      tail = fmt::format(" {} {} {} {}", body.size(), env, b, lines);
      ext_tail = fmt::format(" {} {} {} {}", body.size(), env, e, lines);
    } else {
      tail = ext_tail = fmt::format(" {}", body.size());
    }
    return {fmt::format("({}{})", fields, tail),
            fmt::format("({}{} {} {} {} {})", fields, ext_tail,
                        nstring(find_header(h, "Content-MD5")), disposition, language, location)};
  }

  // Every part with its IMAP section number (RFC 9051 6.4.5).
  void number(const Node& n, const std::string& section) {
    const std::size_t index = sum_.parts.size() - 1;  // n's own Part
    auto join = [&](std::size_t i) {
      return section.empty() ? std::to_string(i) : fmt::format("{}.{}", section, i);
    };
    if (n.multipart) {
      if (n.children.empty()) {
        Part p;
        p.section = join(1);
        p.header_begin = p.body_begin = p.body_end = n.body_begin;
        sum_.parts.push_back(p);
      }
      for (std::size_t i = 0; i < n.children.size(); ++i) {
        add(*n.children[i], join(i + 1));
        number(*n.children[i], join(i + 1));
      }
    } else if (n.message && !n.children.empty()) {
      const Node& inner = *n.children[0];
      sum_.parts[index].inner_body_begin = inner.body_begin;
      if (inner.multipart) {
        // Its parts are the message/rfc822 part's own: 2.1, 2.2.
        number(inner, section);
      } else {
        add(inner, join(1));
        number(inner, join(1));
      }
    }
  }

  void add(const Node& n, const std::string& section) { sum_.parts.push_back(part_of(n, section)); }

  static Part part_of(const Node& n, const std::string& section) {
    Part p;
    p.section = section;
    p.header_begin = n.header_begin;
    p.body_begin = n.body_begin;
    p.body_end = n.body_end;
    p.type = n.media;
    p.encoding = n.encoding.empty() ? "7bit" : lower(n.encoding);
    p.message = n.message;
    // An embedded message past the limits is not read: no header of its own.
    p.inner_body_begin = n.body_begin;
    return p;
  }

 private:
  std::string_view raw_;
  Summary& sum_;
};

Summary summarise(std::string_view raw) {
  Summary sum;
  const auto top = Scanner(raw).run();
  const auto& h = top->headers;
  sum.subject =
      find_header(h, "Subject") ? decode_header_text(*find_header(h, "Subject")) : std::string();
  if (const auto* id = find_header(h, "Message-ID")) sum.message_id = trim(*id);
  if (const auto* d = find_header(h, "Date")) {
    if (const auto dt = rfc822::parse_date(*d)) {
      sum.date_ms = dt->seconds * 1000;
      sum.date_offset_minutes = dt->offset_minutes;
    }
  }
  sum.from = search_text(find_header(h, "From"));
  sum.to = search_text(find_header(h, "To"));
  sum.cc = search_text(find_header(h, "Cc"));
  sum.bcc = search_text(find_header(h, "Bcc"));
  Renderer r(raw, sum);
  sum.envelope = r.envelope(h);
  std::tie(sum.body, sum.bodystructure) = r.structure(*top);
  r.add(*top, "");
  r.number(*top, "");
  return sum;
}

}  // namespace

std::string imap_string(std::string_view s) {
  bool quotable = s.size() < 1024;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u == 0 || u == '\r' || u == '\n' || u >= 0x80) quotable = false;
  }
  if (!quotable) return fmt::format("{{{}}}\r\n{}", s.size(), s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

Summary parse(std::string_view raw) {
  init_gmime();
  try {
    return summarise(raw);
  } catch (const std::exception&) {
    // Never let a message stop the projection: a minimal summary instead.
    Summary s;
    s.envelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";
    s.body = fmt::format("(\"application\" \"octet-stream\" NIL NIL NIL \"7bit\" {})", raw.size());
    s.bodystructure = fmt::format(
        "(\"application\" \"octet-stream\" NIL NIL NIL \"7bit\" {} NIL NIL NIL NIL)", raw.size());
    Part p;
    p.body_end = raw.size();
    p.type = "application/octet-stream";
    s.parts.push_back(p);
    return s;
  }
}

// The Message-ID header of a raw message (RFC 5322 3.6.4), unfolded, or
// nullopt. Only the header section is looked at.
namespace {

// The values of the header fields called `name` (case-insensitive), each
// unfolded, with the whitespace around it removed. Only the header section
// is looked at, and at most 256 KiB of it.
std::vector<std::string> field_values(std::string_view raw, std::string_view name) {
  const auto end = raw.find("\r\n\r\n");
  const std::string_view head = raw.substr(0, std::min(end, std::size_t{256 * 1024}));
  std::vector<std::string> values;
  std::size_t pos = 0;
  while (pos < head.size()) {
    const auto eol = head.find('\n', pos);
    const std::string_view line = head.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
    pos = eol == std::string_view::npos ? head.size() : eol + 1;
    if (line.size() <= name.size() || !ascii::istarts_with(line, name)) continue;
    // RFC 5322 4.5: obsolete syntax allows whitespace before the colon.
    std::size_t colon = name.size();
    while (colon < line.size() && (line[colon] == ' ' || line[colon] == '\t'))
      ++colon;
    if (colon >= line.size() || line[colon] != ':') continue;
    std::string value(line.substr(colon + 1));
    while (pos < head.size() && (head[pos] == ' ' || head[pos] == '\t')) {
      const auto e2 = head.find('\n', pos);
      value += head.substr(pos, e2 == std::string_view::npos ? e2 : e2 - pos);
      pos = e2 == std::string_view::npos ? head.size() : e2 + 1;
    }
    std::string out;
    for (char c : value) {
      if (c != '\r' && c != '\n' && !(out.empty() && (c == ' ' || c == '\t'))) out.push_back(c);
    }
    while (!out.empty() && (out.back() == ' ' || out.back() == '\t'))
      out.pop_back();
    values.push_back(std::move(out));
  }
  return values;
}

void collect_mailboxes(InternetAddressList* list, std::vector<std::string>& out) {
  const int n = list ? internet_address_list_length(list) : 0;
  for (int i = 0; i < n; ++i) {
    InternetAddress* ia = internet_address_list_get_address(list, i);
    if (INTERNET_ADDRESS_IS_GROUP(ia)) {
      collect_mailboxes(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), out);
      continue;
    }
    // The domain as DNS knows it (IDNA A-labels), for DMARC's lookups.
    const char* addr = internet_address_mailbox_get_idn_addr(INTERNET_ADDRESS_MAILBOX(ia));
    out.emplace_back(addr ? addr : "");
  }
}

}  // namespace

std::optional<std::string> message_id(std::string_view raw) {
  auto values = field_values(raw, "message-id");
  if (values.empty()) return std::nullopt;
  return sanitize_utf8(values.front().substr(0, 998));
}

Authors authors(std::string_view raw) {
  init_gmime();
  Authors out;
  for (const auto& value : field_values(raw, "from")) {
    ++out.fields;
    GObjectPtr<InternetAddressList> list(internet_address_list_parse(nullptr, value.c_str()));
    collect_mailboxes(list.p, out.addresses);
  }
  return out;
}

std::optional<std::string> decode_transfer_encoding(std::string_view body,
                                                    std::string_view encoding) {
  const std::string e = ascii::lower(encoding);
  if (e.empty() || e == "7bit" || e == "8bit" || e == "binary") return std::string(body);
  init_gmime();
  const GMimeContentEncoding kind = g_mime_content_encoding_from_string(e.c_str());
  // Only RFC 2045's encodings: x-uuencode is no transfer encoding, and its
  // "begin" line makes it a format of its own (RFC 3516 UNKNOWN-CTE).
  if (kind != GMIME_CONTENT_ENCODING_BASE64 && kind != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE)
    return std::nullopt;
  GMimeEncoding state;
  g_mime_encoding_init_decode(&state, kind);
  std::string out(g_mime_encoding_outlen(&state, body.size()) + 16, '\0');
  std::size_t n = g_mime_encoding_step(&state, body.data(), body.size(), out.data());
  out.resize(n + g_mime_encoding_outlen(&state, 0) + 16);
  n += g_mime_encoding_flush(&state, nullptr, 0, out.data() + n);
  out.resize(n);
  return out;
}

std::string to_utf8(std::string_view bytes, std::string_view charset) {
  const std::string cs = lower(trim(charset));
  if (cs.empty() || cs == "us-ascii" || cs == "utf-8" || cs == "utf8") return sanitize_utf8(bytes);
  init_gmime();
  iconv_t cd = g_mime_iconv_open("UTF-8", cs.c_str());
  if (cd == reinterpret_cast<iconv_t>(-1)) return sanitize_utf8(bytes);
  char* out = g_mime_iconv_strndup(cd, bytes.data(), bytes.size());
  g_mime_iconv_close(cd);
  if (!out) return sanitize_utf8(bytes);
  return sanitize_utf8(take_gstring(out));
}

std::string charset_of(std::string_view header) {
  const std::size_t end = header.size();
  std::vector<Header> fields;
  for (std::size_t pos = 0; pos < end && !blank_line(header, pos, end);)
    pos = read_field(header, pos, end, fields);
  const auto* ct = find_header(fields, "Content-Type");
  if (!ct) return {};
  const auto parsed = rfc822::parse_content_type(*ct);
  const auto* cs = param(parsed.params, "charset");
  return cs ? *cs : std::string();
}

std::string decode_header_text(std::string_view header) {
  init_gmime();
  std::string unfolded;
  unfolded.reserve(header.size());
  for (char c : header) {
    if (c != '\r' && c != '\n' && c != '\0') unfolded.push_back(c);
  }
  return sanitize_utf8(
      take_gstring(g_mime_utils_header_decode_text(utf8_options(), unfolded.c_str())));
}

std::string fold(std::string_view utf8) {
  // RFC 5051 2: each character to its simple titlecase mapping, then NFKD.
  const std::string valid = sanitize_utf8(utf8);
  std::string titled;
  titled.reserve(valid.size());
  for (const char* p = valid.c_str(); *p; p = g_utf8_next_char(p)) {
    char buf[6];
    const gint n = g_unichar_to_utf8(g_unichar_totitle(g_utf8_get_char(p)), buf);
    titled.append(buf, static_cast<std::size_t>(n));
  }
  char* normal =
      g_utf8_normalize(titled.data(), static_cast<gssize>(titled.size()), G_NORMALIZE_NFKD);
  return normal ? take_gstring(normal) : titled;
}

}  // namespace a3::mime
