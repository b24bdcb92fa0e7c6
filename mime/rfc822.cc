#include "mime/rfc822.h"

#include <algorithm>
#include <map>

#include "common/ascii.h"

namespace a3::mime::rfc822 {

namespace {

// RFC 5322 3.2.3 atext; octets >= 0x80 too, as 8-bit headers exist.
bool atext(unsigned char c) {
  if (c >= 0x80) return true;
  if (ascii::is_alpha(static_cast<char>(c)) || ascii::is_digit(static_cast<char>(c))) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

// RFC 2045 5.1 token characters: no space, CTL or tspecial.
bool token_char(unsigned char c) {
  if (c <= 0x20 || c == 0x7f) return false;
  switch (c) {
    case '(':
    case ')':
    case '<':
    case '>':
    case '@':
    case ',':
    case ';':
    case ':':
    case '\\':
    case '"':
    case '/':
    case '[':
    case ']':
    case '?':
    case '=':
      return false;
    default:
      return true;
  }
}

// A cursor over a header value with RFC 5322's comments and folding
// whitespace (CFWS) skipped between tokens.
class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  bool end() const { return i_ >= s_.size(); }
  char peek() const { return end() ? '\0' : s_[i_]; }
  std::size_t pos() const { return i_; }
  void seek(std::size_t p) { i_ = p; }
  void advance() { ++i_; }
  const std::string& last_comment() const { return comment_; }
  void forget_comment() { comment_.clear(); }

  // Spaces, tabs, line breaks and (nested) comments; the text of the last
  // comment seen is kept (an addr-spec's name may come from it).
  void skip_cfws() {
    while (!end()) {
      const char c = s_[i_];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++i_;
      } else if (c == '(') {
        comment_.clear();
        int depth = 0;
        for (; !end(); ++i_) {
          const char d = s_[i_];
          if (d == '\\' && i_ + 1 < s_.size()) {
            comment_ += s_[++i_];
            continue;
          }
          if (d == '(' && depth++ == 0) continue;
          if (d == ')' && --depth == 0) {
            ++i_;
            break;
          }
          if (d != '\r' && d != '\n') comment_ += d;
        }
      } else {
        return;
      }
    }
  }

  // A quoted string at the cursor, unquoted, folding removed.
  std::optional<std::string> quoted() {
    if (peek() != '"') return std::nullopt;
    std::string out;
    for (++i_; !end(); ++i_) {
      const char c = s_[i_];
      if (c == '"') {
        ++i_;
        skip_cfws();
        return out;
      }
      if (c == '\\' && i_ + 1 < s_.size()) {
        out += s_[++i_];
      } else if (c != '\r' && c != '\n') {
        out += c;
      }
    }
    skip_cfws();
    return out;  // unterminated: what there is
  }

  std::string run(bool (*accept)(unsigned char)) {
    const std::size_t b = i_;
    while (!end() && accept(static_cast<unsigned char>(s_[i_])))
      ++i_;
    return std::string(s_.substr(b, i_ - b));
  }

  // An atom, then CFWS.
  std::string atom() {
    std::string a = run(atext);
    skip_cfws();
    return a;
  }

  // dot-atom, or obs-local-part's words joined by dots.
  std::optional<std::string> dot_atom() {
    std::string out = atom();
    if (out.empty()) return std::nullopt;
    while (peek() == '.') {
      ++i_;
      skip_cfws();
      out += '.';
      if (peek() == '"') {
        out += quoted().value_or("");
      } else {
        out += atom();
      }
    }
    return out;
  }

  // A domain: dot-atom or a domain literal "[...]", kept with its brackets.
  std::optional<std::string> domain() {
    if (peek() == '[') {
      const std::size_t b = i_;
      while (!end() && s_[i_] != ']') {
        if (s_[i_] == '\\') ++i_;
        ++i_;
      }
      if (!end()) ++i_;
      std::string out;
      for (char c : s_.substr(b, std::min(i_, s_.size()) - b)) {
        if (c != '\r' && c != '\n') out += c;
      }
      skip_cfws();
      return out;
    }
    return dot_atom();
  }

  // A phrase (RFC 5322 3.2.5, with obs-phrase's dots): its words joined
  // by single spaces, quoted strings unquoted, encoded words kept.
  std::optional<std::string> phrase() {
    if (end() || peek() == '.') return std::nullopt;
    std::string out;
    bool any = false;
    for (;;) {
      if (peek() == '"') {
        out += *quoted();
      } else {
        std::string w = run([](unsigned char c) { return atext(c) || c == '.'; });
        if (w.empty()) break;
        out += w;
        skip_cfws();
      }
      any = true;
      const auto c = static_cast<unsigned char>(peek());
      if (end() || !(atext(c) || c == '"' || c == '.')) break;
      out += ' ';
    }
    if (!any) return std::nullopt;
    return out;
  }

  // A MIME token (RFC 2045), then CFWS.
  std::string token() {
    std::string t = run(token_char);
    skip_cfws();
    return t;
  }

  void skip_past(char c) {
    while (!end() && s_[i_] != c) {
      if (s_[i_] == '"') {
        quoted();
        continue;
      }
      ++i_;
    }
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
  std::string comment_;
};

// ---- addresses ----

struct AddressParser {
  Lexer lx;
  std::vector<Address> out;
  std::size_t limit;

  static void fill(Address& a) {
    if (!a.mailbox) a.mailbox = "MISSING_MAILBOX";
    if (!a.host) a.host = "MISSING_DOMAIN";
  }

  // "<" [route ":"] local-part ["@" domain] ">"; false if broken.
  bool angle(Address& a) {
    lx.advance();  // '<'
    lx.skip_cfws();
    if (lx.peek() == '@') {
      std::string route;
      while (lx.peek() == '@') {
        lx.advance();
        if (!route.empty()) route += ',';
        route += '@';
        auto d = lx.domain();
        if (!d) return false;
        route += *d;
        while (lx.peek() == ',') {
          lx.advance();
          lx.skip_cfws();
        }
      }
      if (lx.peek() != ':') {
        a.route = "INVALID_ROUTE";
        return false;
      }
      a.route = route;
      lx.advance();
      lx.skip_cfws();
    }
    if (lx.peek() == '"') {
      a.mailbox = lx.quoted();
    } else if (auto l = lx.dot_atom()) {
      a.mailbox = l;
    } else if (lx.peek() != '>') {
      return false;
    }
    if (lx.peek() == '@') {
      lx.advance();
      lx.skip_cfws();
      a.host = lx.domain();
      if (!a.host) return false;
    }
    if (lx.peek() != '>') return false;
    lx.advance();
    lx.skip_cfws();
    return true;
  }

  // mailbox = name-addr / addr-spec; a lone multi-word phrase is a name
  // without an address.
  void mailbox() {
    Address a;
    const std::size_t start = lx.pos();
    if (auto p = lx.phrase(); lx.peek() == '<') {
      if (p && !p->empty()) a.name = p;
      if (!angle(a)) {
        a.host = "SYNTAX_ERROR";
        // Resynchronise after the broken address.
        lx.skip_past('>');
        if (!lx.end()) lx.advance();
        lx.skip_past(',');
      }
      fill(a);
      out.push_back(std::move(a));
      return;
    } else if (p && p->find(' ') != std::string::npos && (lx.end() || lx.peek() == ',')) {
      a.name = p;
      fill(a);
      out.push_back(std::move(a));
      return;
    }
    lx.seek(start);
    lx.forget_comment();
    if (lx.peek() == '"') {
      a.mailbox = lx.quoted();
    } else {
      a.mailbox = lx.dot_atom();
    }
    if (lx.peek() == '@') {
      lx.advance();
      lx.skip_cfws();
      a.host = lx.domain();
    }
    if (!lx.last_comment().empty()) a.name = lx.last_comment();
    fill(a);
    out.push_back(std::move(a));
  }

  // group = display-name ":" [mailbox-list] ";"; false if it is not one.
  bool group() {
    const std::size_t start = lx.pos();
    auto p = lx.phrase();
    if (!p || lx.peek() != ':') {
      lx.seek(start);
      return false;
    }
    lx.advance();
    lx.skip_cfws();
    out.push_back(Address{std::nullopt, std::nullopt, *p, std::nullopt});
    while (!lx.end() && lx.peek() != ';' && out.size() < limit) {
      if (lx.peek() == ',') {
        lx.advance();
        lx.skip_cfws();
        continue;
      }
      const std::size_t before = lx.pos();
      mailbox();
      if (lx.peek() != ',' && lx.peek() != ';') {
        if (lx.pos() == before) lx.advance();
        lx.skip_past(';');
      }
    }
    if (lx.peek() == ';') {
      lx.advance();
      lx.skip_cfws();
    }
    out.push_back(Address{});
    return true;
  }

  void list() {
    lx.skip_cfws();
    while (!lx.end() && out.size() < limit) {
      if (lx.peek() == ',') {
        lx.advance();
        lx.skip_cfws();
        continue;
      }
      const std::size_t before = lx.pos();
      if (!group()) mailbox();
      if (lx.peek() != ',') {
        // Garbage after an address ends the list (as the reference does),
        // unless nothing was consumed at all.
        if (lx.pos() == before) lx.advance();
        break;
      }
    }
  }
};

// ---- parameters ----

// *(";" attribute "=" value), with RFC 2231 continuations joined.
std::vector<std::pair<std::string, std::string>> parameters(Lexer& lx) {
  std::vector<std::pair<std::string, std::string>> plain;
  struct Piece {
    std::string value;
    bool extended;
  };
  std::map<std::string, std::map<unsigned, Piece>> continued;
  std::vector<std::string> continued_order;
  while (!lx.end()) {
    if (lx.peek() != ';') {
      lx.skip_past(';');
      continue;
    }
    lx.advance();
    lx.skip_cfws();
    std::string name = lx.token();
    if (name.empty() || lx.peek() != '=') continue;
    lx.advance();
    lx.skip_cfws();
    std::string value;
    if (lx.peek() == '"') {
      value = *lx.quoted();
    } else if (lx.peek() == '=') {
      // An unquoted encoded word (=?charset?Q?...?=): up to ';' or space.
      value = lx.run([](unsigned char c) { return c != ';' && c > 0x20; });
      lx.skip_cfws();
    } else {
      value = lx.token();
      if (value.empty()) continue;
    }
    // name*N or name*N*: a piece of a continued parameter (RFC 2231 3).
    const auto star = name.find('*');
    if (star != std::string::npos && star + 1 < name.size() && ascii::is_digit(name[star + 1])) {
      std::size_t e = star + 1;
      unsigned n = 0;
      while (e < name.size() && ascii::is_digit(name[e]) && n < 100000)
        n = n * 10 + static_cast<unsigned>(name[e++] - '0');
      const bool extended = e < name.size() && name[e] == '*';
      if (e + (extended ? 1 : 0) == name.size()) {
        const std::string base = ascii::lower(name.substr(0, star));
        if (!continued.count(base)) continued_order.push_back(name.substr(0, star));
        continued[base].emplace(n, Piece{std::move(value), extended});
        continue;
      }
    }
    plain.emplace_back(std::move(name), std::move(value));
  }
  for (const auto& base : continued_order) {
    const auto& pieces = continued[ascii::lower(base)];
    std::string value;
    bool extended = false;
    for (const auto& [n, piece] : pieces) {
      value += piece.value;
      extended = extended || piece.extended;
    }
    plain.emplace_back(extended ? base + "*" : base, std::move(value));
  }
  return plain;
}

}  // namespace

std::vector<Address> parse_addresses(std::string_view value, std::size_t limit) {
  AddressParser p{Lexer(value), {}, limit};
  p.list();
  return std::move(p.out);
}

ContentType parse_content_type(std::string_view value) {
  Lexer lx(value);
  lx.skip_cfws();
  ContentType ct;
  std::string type = lx.token();
  if (type.empty() || lx.peek() != '/') return ct;
  lx.advance();
  lx.skip_cfws();
  std::string subtype = lx.token();
  if (subtype.empty()) return ct;
  ct.type = std::move(type);
  ct.subtype = std::move(subtype);
  ct.params = parameters(lx);
  return ct;
}

Disposition parse_disposition(std::string_view value) {
  Lexer lx(value);
  lx.skip_cfws();
  Disposition d;
  d.type = lx.token();
  if (d.type.empty()) return d;
  d.params = parameters(lx);
  return d;
}

std::string single_token(std::string_view value) {
  Lexer lx(value);
  lx.skip_cfws();
  std::string t = lx.token();
  return lx.end() ? t : std::string();
}

std::vector<std::string> parse_languages(std::string_view value) {
  Lexer lx(value);
  lx.skip_cfws();
  std::vector<std::string> out;
  while (!lx.end() && out.size() < 100) {
    std::string tag = lx.atom();
    if (tag.empty()) break;
    out.push_back(std::move(tag));
    if (lx.peek() != ',') break;
    lx.advance();
    lx.skip_cfws();
  }
  return out;
}

namespace {

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::optional<int> digits(Lexer& lx, std::size_t min, std::size_t max) {
  const std::string d = lx.run([](unsigned char c) { return c >= '0' && c <= '9'; });
  if (d.size() < min || d.size() > max) return std::nullopt;
  return std::stoi(d);
}

}  // namespace

std::optional<DateTime> parse_date(std::string_view value) {
  static constexpr std::string_view kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                                 "jul", "aug", "sep", "oct", "nov", "dec"};
  Lexer lx(value);
  lx.skip_cfws();
  auto alpha = [](unsigned char c) { return ascii::is_alpha(static_cast<char>(c)); };
  const std::size_t start = lx.pos();
  if (const std::string dow = lx.run(alpha); !dow.empty()) {
    lx.skip_cfws();
    if (lx.peek() != ',') return std::nullopt;
    lx.advance();
    lx.skip_cfws();
  } else {
    lx.seek(start);
  }
  const auto day = digits(lx, 1, 2);
  lx.skip_cfws();
  const std::string mon = ascii::lower(lx.run(alpha));
  lx.skip_cfws();
  auto year = digits(lx, 2, 4);
  lx.skip_cfws();
  if (!day || !year || mon.size() != 3) return std::nullopt;
  unsigned month = 0;
  for (unsigned i = 0; i < 12; ++i)
    if (mon == kMonths[i]) month = i + 1;
  if (month == 0 || *day < 1 || *day > 31) return std::nullopt;
  if (*year < 50)
    *year += 2000;  // RFC 5322 4.3
  else if (*year < 1000)
    *year += 1900;
  const auto hour = digits(lx, 1, 2);
  lx.skip_cfws();
  if (!hour || lx.peek() != ':') return std::nullopt;
  lx.advance();
  lx.skip_cfws();
  const auto minute = digits(lx, 2, 2);
  lx.skip_cfws();
  int second = 0;
  if (lx.peek() == ':') {
    lx.advance();
    lx.skip_cfws();
    const auto s = digits(lx, 2, 2);
    if (!s) return std::nullopt;
    second = *s;
    lx.skip_cfws();
  }
  if (!minute || *hour > 23 || *minute > 59 || second > 60) return std::nullopt;
  int offset = 0;
  if (lx.peek() == '+' || lx.peek() == '-') {
    const bool minus = lx.peek() == '-';
    lx.advance();
    const auto z = digits(lx, 4, 4);
    if (!z) return std::nullopt;
    offset = (*z / 100) * 60 + *z % 100;
    if (minus) offset = -offset;
  } else if (const std::string zone = ascii::upper(lx.run(alpha)); !zone.empty()) {
    // RFC 5322 4.3: the US zones; every other name means -0000.
    static constexpr std::pair<std::string_view, int> kZones[] = {
        {"EST", -5}, {"EDT", -4}, {"CST", -6}, {"CDT", -5},
        {"MST", -7}, {"MDT", -6}, {"PST", -8}, {"PDT", -7}};
    for (const auto& [name, hours] : kZones)
      if (zone == name) offset = hours * 60;
  }
  lx.skip_cfws();
  if (!lx.end()) return std::nullopt;
  const std::int64_t local = days_from_civil(*year, month, static_cast<unsigned>(*day)) * 86400 +
                             *hour * 3600 + *minute * 60 + second;
  return DateTime{local - std::int64_t{offset} * 60, offset};
}

}  // namespace a3::mime::rfc822
