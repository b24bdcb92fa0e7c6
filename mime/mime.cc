#include "mime/mime.h"

#include <gmime/gmime.h>

#include <algorithm>
#include <mutex>
#include <optional>

#include <fmt/format.h>

#include "common/ascii.h"
#include "common/json.h"

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
  std::string value;  // unfolded, raw (encoded words kept)
};

// The position after the line that starts at `pos` (after its LF), or end.
std::size_t next_line(std::string_view s, std::size_t pos, std::size_t end) {
  const auto lf = s.find('\n', pos);
  return lf == std::string_view::npos || lf >= end ? end : lf + 1;
}

bool blank_line(std::string_view s, std::size_t pos, std::size_t end) {
  return pos < end && (s[pos] == '\n' || (s[pos] == '\r' && pos + 1 < end && s[pos + 1] == '\n'));
}

// RFC 5322 2.2: header fields up to the first empty line; continuation lines
// start with WSP. Returns the body start (after the blank line), or `end` if
// there is none.
std::size_t read_headers(std::string_view s, std::size_t begin, std::size_t end,
                         std::vector<Header>& out) {
  std::size_t pos = begin;
  while (pos < end) {
    if (blank_line(s, pos, end)) return next_line(s, pos, end);
    const std::size_t line_end = next_line(s, pos, end);
    std::string_view line = s.substr(pos, line_end - pos);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
      line.remove_suffix(1);
    if ((line.starts_with(" ") || line.starts_with("\t")) && !out.empty()) {
      // A continuation line of only whitespace adds nothing.
      if (const auto text = line.find_first_not_of(" \t"); text != std::string_view::npos) {
        out.back().value += " ";
        out.back().value += line.substr(text);
      }
    } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
      std::string_view name = line.substr(0, colon);
      while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
        name.remove_suffix(1);
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
      out.push_back({std::string(name), std::string(value)});
    }
    // A line that is neither (no colon): ignored, best effort.
    pos = line_end;
  }
  return end;
}

const std::string* find_header(const std::vector<Header>& h, std::string_view name) {
  for (const auto& x : h) {
    if (iequals(x.name, name)) return &x.value;
  }
  return nullptr;
}

std::string trim(std::string_view v) {
  const auto b = v.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  const auto e = v.find_last_not_of(" \t");
  return std::string(v.substr(b, e - b + 1));
}

// ---- IMAP rendering ----

std::string nstring(const std::string* v) {
  return v ? imap_string(*v) : "NIL";
}

std::string params_list(GMimeParamList* list) {
  const int n = list ? g_mime_param_list_length(list) : 0;
  if (n == 0) return "NIL";
  std::string out = "(";
  for (int i = 0; i < n; ++i) {
    GMimeParam* p = g_mime_param_list_get_parameter_at(list, i);
    if (i) out += ' ';
    out += imap_string(g_mime_param_get_name(p) ? g_mime_param_get_name(p) : "");
    out += ' ';
    out += imap_string(g_mime_param_get_value(p) ? g_mime_param_get_value(p) : "");
  }
  return out + ")";
}

bool ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// RFC 9051 7.5.2: address = "(" addr-name SP addr-adl SP addr-mailbox SP addr-host ")"
void render_addresses(InternetAddressList* list, std::string& out, std::string& search) {
  const int n = list ? internet_address_list_length(list) : 0;
  for (int i = 0; i < n; ++i) {
    InternetAddress* ia = internet_address_list_get_address(list, i);
    const char* name = internet_address_get_name(ia);
    std::optional<std::string> shown;
    if (name && *name) {
      // GMime decodes RFC 2047 names; a 7-bit client gets them encoded again.
      shown = ascii(name) ? std::string(name)
                          : take_gstring(g_mime_utils_header_encode_phrase(nullptr, name, "utf-8"));
    }
    if (!search.empty()) search += ", ";
    if (INTERNET_ADDRESS_IS_GROUP(ia)) {
      // Group syntax: (NIL NIL "group" NIL) members (NIL NIL NIL NIL).
      out += fmt::format("(NIL NIL {} NIL)", imap_string(shown.value_or("")));
      search += name ? name : "";
      std::string inner;
      render_addresses(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), out, inner);
      out += "(NIL NIL NIL NIL)";
      if (!inner.empty()) search += ": " + inner;
      continue;
    }
    const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
    const std::string a = addr ? addr : "";
    const auto at = a.rfind('@');
    const std::string local = at == std::string::npos ? a : a.substr(0, at);
    const std::string host = at == std::string::npos ? "" : a.substr(at + 1);
    out += fmt::format("({} NIL {} {})", shown ? imap_string(*shown) : "NIL", imap_string(local),
                       host.empty() ? "NIL" : imap_string(host));
    search += name && *name ? fmt::format("{} <{}>", name, a) : a;
  }
}

std::string address_list(const std::string* value, std::string* search) {
  if (!value || trim(*value).empty()) return "NIL";
  GObjectPtr<InternetAddressList> list(internet_address_list_parse(nullptr, value->c_str()));
  std::string out, s;
  render_addresses(list.p, out, s);
  if (search) *search = s;
  return out.empty() ? "NIL" : "(" + out + ")";
}

// ---- the structure ----

class Parser {
 public:
  explicit Parser(std::string_view raw) : raw_(raw) {}

  Summary run() {
    std::vector<Header> headers;
    const std::size_t body_begin = read_headers(raw_, 0, raw_.size(), headers);
    fill_search(headers);
    sum_.envelope = envelope(headers);
    Part top;
    top.section = "";
    top.header_begin = 0;
    top.body_begin = body_begin;
    top.body_end = raw_.size();
    describe(headers, top, "text/plain");
    sum_.parts.push_back(top);
    const std::size_t top_index = 0;
    auto [body, ext] = structure(headers, top_index, "", 0);
    sum_.body = body;
    sum_.bodystructure = ext;
    return std::move(sum_);
  }

 private:
  struct Rendered {
    std::string body, bodystructure;
  };

  void fill_search(const std::vector<Header>& h) {
    auto decoded = [](const std::string* v) {
      return v ? take_gstring(g_mime_utils_header_decode_text(nullptr, v->c_str())) : std::string();
    };
    sum_.subject = decoded(find_header(h, "Subject"));
    if (const auto* id = find_header(h, "Message-ID")) sum_.message_id = trim(*id);
    if (const auto* d = find_header(h, "Date")) {
      if (GDateTime* dt = g_mime_utils_header_decode_date(d->c_str())) {
        sum_.date_ms = g_date_time_to_unix(dt) * 1000;
        g_date_time_unref(dt);
      }
    }
  }

  std::string envelope(const std::vector<Header>& h) {
    std::string from_search, to_search, cc_search, bcc_search;
    const std::string from = address_list(find_header(h, "From"), &from_search);
    // RFC 9051 7.5.2: absent or empty Sender / Reply-To take From's value.
    std::string sender = address_list(find_header(h, "Sender"), nullptr);
    if (sender == "NIL") sender = from;
    std::string reply_to = address_list(find_header(h, "Reply-To"), nullptr);
    if (reply_to == "NIL") reply_to = from;
    const std::string to = address_list(find_header(h, "To"), &to_search);
    const std::string cc = address_list(find_header(h, "Cc"), &cc_search);
    const std::string bcc = address_list(find_header(h, "Bcc"), &bcc_search);
    if (depth_ == 0) {
      sum_.from = from_search;
      sum_.to = to_search;
      sum_.cc = cc_search;
      sum_.bcc = bcc_search;
    }
    return fmt::format("({} {} {} {} {} {} {} {} {} {})", nstring(find_header(h, "Date")),
                       nstring(find_header(h, "Subject")), from, sender, reply_to, to, cc, bcc,
                       nstring(find_header(h, "In-Reply-To")),
                       nstring(find_header(h, "Message-ID")));
  }

  // Type and encoding of a part from its headers.
  void describe(const std::vector<Header>& h, Part& p, std::string_view default_type) {
    p.type = std::string(default_type);
    if (const auto* ct = find_header(h, "Content-Type")) {
      GObjectPtr<GMimeContentType> t(g_mime_content_type_parse(nullptr, ct->c_str()));
      if (t.p && g_mime_content_type_get_media_type(t.p) &&
          g_mime_content_type_get_media_subtype(t.p)) {
        p.type = lower(g_mime_content_type_get_media_type(t.p)) + "/" +
                 lower(g_mime_content_type_get_media_subtype(t.p));
      }
    }
    if (const auto* enc = find_header(h, "Content-Transfer-Encoding")) {
      const std::string e = lower(trim(*enc));
      if (!e.empty()) p.encoding = e;
    }
    p.message = p.type == "message/rfc822" || p.type == "message/global";
  }

  static std::size_t count_lines(std::string_view s) {
    return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')) +
           (!s.empty() && s.back() != '\n' ? 1 : 0);
  }

  // Renders BODY and BODYSTRUCTURE of the entity whose headers are `h` and
  // whose Part is parts[index]; adds the parts below it.
  std::pair<std::string, std::string> structure(const std::vector<Header>& h, std::size_t index,
                                                const std::string& section, int nesting) {
    const Part part = sum_.parts[index];
    const std::string_view body = raw_.substr(part.body_begin, part.body_end - part.body_begin);
    const auto slash = part.type.find('/');
    const std::string type = part.type.substr(0, slash), subtype = part.type.substr(slash + 1);

    GObjectPtr<GMimeContentType> ct(nullptr);
    if (const auto* v = find_header(h, "Content-Type")) {
      ct.p = g_mime_content_type_parse(nullptr, v->c_str());
    }
    GMimeParamList* params = ct.p ? g_mime_content_type_get_parameters(ct.p) : nullptr;

    std::string disposition = "NIL";
    if (const auto* d = find_header(h, "Content-Disposition")) {
      GObjectPtr<GMimeContentDisposition> cd(g_mime_content_disposition_parse(nullptr, d->c_str()));
      if (cd.p && g_mime_content_disposition_get_disposition(cd.p)) {
        disposition =
            fmt::format("({} {})", imap_string(g_mime_content_disposition_get_disposition(cd.p)),
                        params_list(g_mime_content_disposition_get_parameters(cd.p)));
      }
    }
    const std::string language = nstring(find_header(h, "Content-Language"));
    const std::string location = nstring(find_header(h, "Content-Location"));

    // Bounded nesting: a hostile message cannot make us recurse forever.
    if (type == "multipart" && nesting < 64) {
      const char* boundary =
          params ? g_mime_param_list_get_parameter(params, "boundary") != nullptr
                       ? g_mime_param_get_value(g_mime_param_list_get_parameter(params, "boundary"))
                       : nullptr
                 : nullptr;
      std::string body_s, ext_s;
      int n = 0;
      if (boundary && *boundary) {
        for (const auto& [begin, end] : split(part.body_begin, part.body_end, boundary)) {
          // Bounded work and memory whatever the message: parts past the
          // limit are left inside their parent's body.
          if (sum_.parts.size() >= kMaxParts) break;
          const std::string child =
              section.empty() ? std::to_string(++n) : fmt::format("{}.{}", section, ++n);
          auto [b, e] =
              child_entity(begin, end, child, subtype == "digest" ? "message/rfc822" : "text/plain",
                           nesting + 1);
          body_s += b;
          ext_s += e;
        }
      }
      if (n == 0) {
        // RFC 9051 7.5.2 requires at least one part: an empty text/plain.
        body_s = ext_s = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 0 0)";
      }
      std::string sub = imap_string(subtype);
      return {fmt::format("({} {})", body_s, sub),
              fmt::format("({} {} {} {} {} {})", ext_s, sub, params_list(params), disposition,
                          language, location)};
    }

    // RFC 2045 5.2: text without a charset is us-ascii; say so, as clients
    // expect a charset for every text part.
    std::string param_text = params_list(params);
    if (type == "text" && !(params && g_mime_param_list_get_parameter(params, "charset"))) {
      param_text = param_text == "NIL" ? "(\"charset\" \"us-ascii\")"
                                       : "(\"charset\" \"us-ascii\" " + param_text.substr(1);
    }
    std::string fields =
        fmt::format("{} {} {} {} {}", param_text, nstring(find_header(h, "Content-ID")),
                    nstring(find_header(h, "Content-Description")),
                    imap_string(upper(part.encoding)), body.size());
    std::string tail;
    if (type == "text") {
      tail = fmt::format(" {}", count_lines(body));
    } else if (part.message && nesting < 64) {
      // The embedded message: its envelope and structure, then the lines.
      std::vector<Header> inner;
      const std::size_t inner_body = read_headers(raw_, part.body_begin, part.body_end, inner);
      sum_.parts[index].inner_body_begin = inner_body;
      ++depth_;
      const std::string env = envelope(inner);
      Part nested;
      nested.section = section.empty() ? "1" : section + ".1";
      nested.header_begin = part.body_begin;
      nested.body_begin = inner_body;
      nested.body_end = part.body_end;
      describe(inner, nested, "text/plain");
      // A multipart inside a message/rfc822 part numbers its children from
      // the part's own section (2.1, 2.2); a single body is 2.1.
      std::pair<std::string, std::string> r;
      if (nested.type.starts_with("multipart/")) {
        nested.section = section;  // children are section.N
        sum_.parts.push_back(nested);
        r = structure(inner, sum_.parts.size() - 1, section, nesting + 1);
        sum_.parts.erase(std::find_if(sum_.parts.begin(), sum_.parts.end(), [&](const Part& x) {
          return x.section == section && x.header_begin == nested.header_begin &&
                 x.type == nested.type;
        }));
      } else {
        sum_.parts.push_back(nested);
        r = structure(inner, sum_.parts.size() - 1, nested.section, nesting + 1);
      }
      --depth_;
      tail = fmt::format(" {} {} {}", env, r.first, count_lines(body));
      const std::string ext_tail = fmt::format(" {} {} {}", env, r.second, count_lines(body));
      const std::string head =
          fmt::format("({} {} {}", imap_string(type), imap_string(subtype), fields);
      return {head + tail + ")",
              head + ext_tail + fmt::format(" NIL {} {} {})", disposition, language, location)};
    }
    const std::string head =
        fmt::format("({} {} {}{}", imap_string(type), imap_string(subtype), fields, tail);
    // body-ext-1part: md5 (we do not compute Content-MD5) disposition language location
    return {head + ")", fmt::format("{} {} {} {} {})", head, nstring(find_header(h, "Content-MD5")),
                                    disposition, language, location)};
  }

  std::pair<std::string, std::string> child_entity(std::size_t begin, std::size_t end,
                                                   const std::string& section,
                                                   std::string_view default_type, int nesting) {
    std::vector<Header> h;
    Part p;
    p.section = section;
    p.header_begin = begin;
    p.body_begin = read_headers(raw_, begin, end, h);
    p.body_end = end;
    describe(h, p, default_type);
    sum_.parts.push_back(p);
    return structure(h, sum_.parts.size() - 1, section, nesting);
  }

  // RFC 2046 5.1.1: the body parts between "--boundary" lines; the CRLF
  // before a delimiter belongs to the delimiter. Without a close delimiter the
  // last part runs to the end.
  std::vector<std::pair<std::size_t, std::size_t>> split(std::size_t begin, std::size_t end,
                                                         std::string_view boundary) {
    std::vector<std::pair<std::size_t, std::size_t>> parts;
    const std::string delim = "--" + std::string(boundary);
    std::optional<std::size_t> part_start;
    for (std::size_t pos = begin; pos < end;) {
      const std::size_t line_end = next_line(raw_, pos, end);
      std::string_view line = raw_.substr(pos, line_end - pos);
      if (line.starts_with(delim)) {
        std::string_view rest = line.substr(delim.size());
        const bool close = rest.starts_with("--");
        if (close) rest.remove_prefix(2);
        // Only whitespace may follow the boundary on its line.
        if (rest.find_first_not_of(" \t\r\n") == std::string_view::npos) {
          if (part_start) {
            std::size_t part_end = pos;
            if (part_end > *part_start && raw_[part_end - 1] == '\n') --part_end;
            if (part_end > *part_start && raw_[part_end - 1] == '\r') --part_end;
            parts.emplace_back(*part_start, std::max(part_end, *part_start));
          }
          if (close) return parts;
          part_start = line_end;
        }
      }
      pos = line_end;
    }
    if (part_start && *part_start <= end) parts.emplace_back(*part_start, end);
    return parts;
  }

  std::string_view raw_;
  Summary sum_;
  int depth_ = 0;
};

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
    return Parser(raw).run();
  } catch (const std::exception&) {
    // Never let a message stop the projection: a minimal summary instead.
    Summary s;
    s.envelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";
    s.body = fmt::format("(\"application\" \"octet-stream\" NIL NIL NIL \"7BIT\" {})", raw.size());
    s.bodystructure = fmt::format(
        "(\"application\" \"octet-stream\" NIL NIL NIL \"7BIT\" {} NIL NIL NIL NIL)", raw.size());
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
  if (kind != GMIME_CONTENT_ENCODING_BASE64 && kind != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE &&
      kind != GMIME_CONTENT_ENCODING_UUENCODE)
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

}  // namespace a3::mime
