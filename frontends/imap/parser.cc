#include "frontends/imap/parser.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "common/ascii.h"

namespace a3::imap {

namespace {

constexpr const char* kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                   "jul", "aug", "sep", "oct", "nov", "dec"};

std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
  const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(m),
                                        std::chrono::day(d)};
  return std::chrono::sys_days(ymd).time_since_epoch().count();
}

}  // namespace

bool is_atom_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u == 0x7f) return false;
  return std::strchr("(){%*\"\\]", c) == nullptr;
}

bool SequenceSet::contains(std::uint32_t n, std::uint32_t star) const {
  for (const auto& r : ranges) {
    std::uint32_t a = r.first == 0 ? star : r.first;
    std::uint32_t b = r.last == 0 ? star : r.last;
    if (a > b) std::swap(a, b);
    if (n >= a && n <= b) return true;
  }
  return false;
}

std::string SequenceSet::format(std::vector<std::uint32_t> numbers) {
  std::sort(numbers.begin(), numbers.end());
  numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());
  std::string out;
  for (std::size_t i = 0; i < numbers.size();) {
    std::size_t j = i;
    while (j + 1 < numbers.size() && numbers[j + 1] == numbers[j] + 1)
      ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(numbers[i]);
    if (j > i) out += ":" + std::to_string(numbers[j]);
    i = j + 1;
  }
  return out;
}

void Parser::fail(const std::string& what) const {
  throw ParseError(what);
}

bool Parser::consume(char c) {
  if (peek() != c || at_end()) return false;
  ++pos_;
  return true;
}

void Parser::expect(char c) {
  if (!consume(c)) {
    if (c == ' ') fail("Expected a space");
    fail(fmt::format("Expected '{}'", c));
  }
}

bool Parser::keyword(std::string_view word) {
  if (in_.size() - pos_ < word.size()) return false;
  if (!ascii::iequals(in_.substr(pos_, word.size()), word)) return false;
  const std::size_t after = pos_ + word.size();
  if (after < in_.size() && (is_atom_char(in_[after]) || in_[after] == ']') && in_[after] != '[' &&
      in_[after] != '.')
    return false;
  pos_ = after;
  return true;
}

std::string Parser::tag() {
  const std::size_t start = pos_;
  // tag = 1*<ASTRING-CHAR except "+"> (RFC 9051 9): ']' is allowed, and
  // CHAR is 7-bit, so an 8-bit byte is no tag (the reply is then "* BAD"
  // rather than an echo of the client's bytes).
  while (!at_end() && (is_atom_char(peek()) || peek() == ']') && peek() != '+' &&
         static_cast<unsigned char>(peek()) < 0x80)
    ++pos_;
  if (pos_ == start || (!at_end() && peek() != ' ')) fail("Missing or invalid tag");
  return std::string(in_.substr(start, pos_ - start));
}

std::string Parser::atom() {
  const std::size_t start = pos_;
  while (!at_end() && is_atom_char(peek()))
    ++pos_;
  if (pos_ == start) fail("Expected an atom");
  return std::string(in_.substr(start, pos_ - start));
}

std::string Parser::quoted() {
  expect('"');
  std::string out;
  for (;;) {
    if (at_end()) fail("Unterminated quoted string");
    const char c = in_[pos_++];
    if (c == '"') return out;
    if (c == '\r' || c == '\n' || c == '\0') fail("Invalid character in quoted string");
    if (c == '\\') {
      if (at_end()) fail("Unterminated quoted string");
      const char e = in_[pos_++];
      if (e != '"' && e != '\\') fail("Invalid escape in quoted string");
      out.push_back(e);
    } else {
      out.push_back(c);
    }
  }
}

std::string Parser::literal() {
  expect('{');
  const std::uint64_t n = number64();
  if (!consume('+')) consume('-');
  expect('}');
  if (!consume('\r') || !consume('\n')) fail("Expected CRLF after literal size");
  if (in_.size() - pos_ < n) fail("Literal shorter than announced");
  std::string out(in_.substr(pos_, n));
  pos_ += n;
  return out;
}

std::string Parser::string() {
  if (peek() == '"') return quoted();
  if (peek() == '{') return literal();
  // RFC 3516 literal8 (~{n}) is accepted where a string is: APPEND.
  if (peek() == '~' && pos_ + 1 < in_.size() && in_[pos_ + 1] == '{') {
    ++pos_;
    return literal();
  }
  fail("Expected a string");
}

std::string Parser::astring() {
  const bool literal8 = peek() == '~' && pos_ + 1 < in_.size() && in_[pos_ + 1] == '{';
  if (peek() == '"' || peek() == '{' || literal8) return string();
  const std::size_t start = pos_;
  while (!at_end() && (is_atom_char(peek()) || peek() == ']'))
    ++pos_;
  if (pos_ == start) fail("Expected a string or an atom");
  return std::string(in_.substr(start, pos_ - start));
}

std::optional<std::string> Parser::nstring() {
  if (keyword("NIL")) return std::nullopt;
  return string();
}

std::uint64_t Parser::number64() {
  const std::size_t start = pos_;
  std::uint64_t v = 0;
  while (!at_end() && ascii::is_digit(peek())) {
    if (v > (UINT64_MAX - 9) / 10) fail("Number too large");
    v = v * 10 + static_cast<std::uint64_t>(peek() - '0');
    ++pos_;
  }
  if (pos_ == start) fail("Expected a number");
  return v;
}

std::uint32_t Parser::number() {
  const std::uint64_t v = number64();
  if (v > UINT32_MAX) fail("Number too large");
  return static_cast<std::uint32_t>(v);
}

SequenceSet Parser::sequence_set() {
  SequenceSet set;
  if (consume('$')) {
    set.saved = true;
    return set;
  }
  auto one = [&]() -> std::uint32_t {
    if (consume('*')) return 0;
    const std::uint32_t n = number();
    if (n == 0) fail("Invalid sequence number 0");
    return n;
  };
  do {
    SequenceSet::Range r;
    r.first = r.last = one();
    if (consume(':')) r.last = one();
    set.ranges.push_back(r);
  } while (consume(','));
  return set;
}

std::string Parser::flag() {
  if (consume('\\')) {
    if (consume('*')) return "\\*";
    return "\\" + atom();
  }
  return atom();
}

std::vector<std::string> Parser::flag_list() {
  expect('(');
  std::vector<std::string> out;
  if (consume(')')) return out;
  do {
    out.push_back(flag());
  } while (consume(' '));
  expect(')');
  return out;
}

std::int64_t Parser::date() {
  const bool q = consume('"');
  std::uint32_t day = number();
  expect('-');
  const std::size_t start = pos_;
  while (!at_end() && ascii::is_alpha(peek()))
    ++pos_;
  const std::string mon = ascii::lower(in_.substr(start, pos_ - start));
  expect('-');
  const std::uint32_t year = number();
  if (q) expect('"');
  unsigned m = 0;
  for (unsigned i = 0; i < 12; ++i) {
    if (mon == kMonths[i]) m = i + 1;
  }
  if (m == 0 || day < 1 || day > 31 || year < 1 || year > 9999) fail("Invalid date");
  return days_from_civil(static_cast<int>(year), m, day) * 86'400'000;
}

std::int64_t Parser::date_time() {
  expect('"');
  if (peek() == ' ') ++pos_;
  const std::uint32_t day = number();
  expect('-');
  const std::string mon = ascii::lower(in_.substr(pos_, 3));
  pos_ += std::min<std::size_t>(3, in_.size() - pos_);
  expect('-');
  const std::uint32_t year = number();
  sp();
  auto two = [&] {
    if (in_.size() - pos_ < 2 || !ascii::is_digit(in_[pos_]) || !ascii::is_digit(in_[pos_ + 1]))
      fail("Invalid time");
    const int v = (in_[pos_] - '0') * 10 + (in_[pos_ + 1] - '0');
    pos_ += 2;
    return v;
  };
  const int hh = two();
  expect(':');
  const int mm = two();
  expect(':');
  const int ss = two();
  sp();
  const char sign = peek();
  if (sign != '+' && sign != '-') fail("Invalid zone");
  ++pos_;
  const int zh = two();
  const int zm = two();
  expect('"');
  unsigned m = 0;
  for (unsigned i = 0; i < 12; ++i) {
    if (mon == kMonths[i]) m = i + 1;
  }
  if (m == 0 || day < 1 || day > 31 || year < 1 || year > 9999 || hh > 23 || mm > 59 || ss > 60 ||
      zm > 59)
    fail("Invalid date-time");
  const std::int64_t zone = (sign == '+' ? 1 : -1) * (zh * 60 + zm) * 60;
  const std::int64_t secs =
      days_from_civil(static_cast<int>(year), m, day) * 86400 + hh * 3600 + mm * 60 + ss - zone;
  return secs * 1000;
}

std::string Parser::mailbox() {
  std::string name = astring();
  if (ascii::iequals(name, "INBOX")) return "INBOX";
  return name;
}

std::string Parser::list_mailbox() {
  if (peek() == '"' || peek() == '{') return string();
  const std::size_t start = pos_;
  while (!at_end() && (is_atom_char(peek()) || peek() == '%' || peek() == '*' || peek() == ']'))
    ++pos_;
  if (pos_ == start) fail("Expected a mailbox pattern");
  return std::string(in_.substr(start, pos_ - start));
}

// ---- modified UTF-7 ----

namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  }
}

// The code points of valid UTF-8, or nullopt.
std::optional<std::u32string> decode_utf8(std::string_view s) {
  std::u32string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    int n = b < 0x80 ? 0 : (b >> 5) == 6 ? 1 : (b >> 4) == 14 ? 2 : (b >> 3) == 30 ? 3 : -1;
    if (n < 0 || i + static_cast<std::size_t>(n) >= s.size()) return std::nullopt;
    char32_t c = n == 0 ? b : n == 1 ? (b & 0x1f) : n == 2 ? (b & 0x0f) : (b & 0x07);
    for (int k = 1; k <= n; ++k) {
      const auto cb = static_cast<unsigned char>(s[i + k]);
      if ((cb & 0xc0) != 0x80) return std::nullopt;
      c = (c << 6) | (cb & 0x3f);
    }
    if ((n == 1 && c < 0x80) || (n == 2 && c < 0x800) ||
        (n == 3 && (c < 0x10000 || c > 0x10ffff)) || (c >= 0xd800 && c <= 0xdfff))
      return std::nullopt;
    out.push_back(c);
    i += static_cast<std::size_t>(n) + 1;
  }
  return out;
}

}  // namespace

std::string utf7_encode(std::string_view utf8) {
  const auto cps = decode_utf8(utf8);
  if (!cps) return std::string(utf8);  // not UTF-8: sent as is
  std::string out;
  std::u16string run;
  auto flush = [&] {
    if (run.empty()) return;
    out.push_back('&');
    std::uint32_t bits = 0;
    int nbits = 0;
    for (char16_t u : run) {
      bits = (bits << 16) | u;
      nbits += 16;
      while (nbits >= 6) {
        nbits -= 6;
        out.push_back(kB64[(bits >> nbits) & 0x3f]);
      }
    }
    if (nbits > 0) out.push_back(kB64[(bits << (6 - nbits)) & 0x3f]);
    out.push_back('-');
    run.clear();
  };
  for (char32_t c : *cps) {
    if (c >= 0x20 && c <= 0x7e) {
      flush();
      if (c == '&') {
        out += "&-";
      } else {
        out.push_back(static_cast<char>(c));
      }
    } else if (c >= 0x10000) {
      const char32_t v = c - 0x10000;
      run.push_back(static_cast<char16_t>(0xd800 + (v >> 10)));
      run.push_back(static_cast<char16_t>(0xdc00 + (v & 0x3ff)));
    } else {
      run.push_back(static_cast<char16_t>(c));
    }
  }
  flush();
  return out;
}

std::optional<std::string> utf7_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
      return std::nullopt;
    if (c != '&') {
      out.push_back(c);
      ++i;
      continue;
    }
    const std::size_t end = s.find('-', i + 1);
    if (end == std::string_view::npos) return std::nullopt;
    if (end == i + 1) {
      out.push_back('&');
      i = end + 1;
      continue;
    }
    std::uint32_t bits = 0;
    int nbits = 0;
    std::u16string units;
    for (std::size_t k = i + 1; k < end; ++k) {
      const char* p = std::strchr(kB64, s[k]);
      if (!p || s[k] == '\0') return std::nullopt;
      bits = (bits << 6) | static_cast<std::uint32_t>(p - kB64);
      nbits += 6;
      if (nbits >= 16) {
        nbits -= 16;
        units.push_back(static_cast<char16_t>((bits >> nbits) & 0xffff));
      }
    }
    if (nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0) return std::nullopt;  // bad padding
    for (std::size_t k = 0; k < units.size(); ++k) {
      char32_t u = units[k];
      if (u >= 0xd800 && u <= 0xdbff) {
        if (k + 1 >= units.size() || units[k + 1] < 0xdc00 || units[k + 1] > 0xdfff)
          return std::nullopt;
        u = 0x10000 + ((u - 0xd800) << 10) + (units[++k] - 0xdc00);
      } else if (u >= 0xdc00 && u <= 0xdfff) {
        return std::nullopt;
      } else if (u >= 0x20 && u <= 0x7e) {
        return std::nullopt;  // printable ASCII must not be encoded
      }
      append_utf8(out, u);
    }
    i = end + 1;
  }
  return out;
}

}  // namespace a3::imap
