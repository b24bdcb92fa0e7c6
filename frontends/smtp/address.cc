#include "frontends/smtp/address.h"

#include "common/ascii.h"

namespace a3::smtp {

namespace {

bool atext(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x80) return true;  // UTF-8 (RFC 6531); checked against SMTPUTF8 by the caller
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool domain_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.';
}

// Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str]
bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 255) return false;
  if (d.front() == '[') return d.back() == ']' && d.size() > 2;  // address-literal
  std::size_t label = 0;
  for (std::size_t i = 0; i < d.size(); ++i) {
    const char c = d[i];
    if (!domain_char(c)) return false;
    if (c == '.') {
      if (label == 0 || d[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    if (label == 0 && c == '-') return false;
    if (++label > 63) return false;
  }
  return label > 0 && d.back() != '-';
}

}  // namespace

std::string Mailbox::str() const {
  if (!quoted) return local + "@" + domain;
  std::string q = "\"";
  for (char c : local) {
    if (c == '"' || c == '\\') q.push_back('\\');
    q.push_back(c);
  }
  return q + "\"@" + domain;
}

std::optional<Path> parse_path(std::string_view text, std::string_view& rest, std::string& error) {
  if (text.empty() || text[0] != '<') {
    error = "path must be enclosed in <>";
    return std::nullopt;
  }
  std::size_t i = 1;
  Path p;
  if (text.size() > 1 && text[1] == '>') {
    p.null = true;
    rest = text.substr(2);
    return p;
  }
  // A-d-l = At-domain *( "," At-domain ) ":"  -- accepted, ignored.
  if (i < text.size() && text[i] == '@') {
    const auto colon = text.find(':', i);
    const auto close = text.find('>', i);
    if (colon == std::string_view::npos || (close != std::string_view::npos && colon > close)) {
      error = "bad source route";
      return std::nullopt;
    }
    i = colon + 1;
  }
  // Local-part
  Mailbox m;
  if (i < text.size() && text[i] == '"') {
    m.quoted = true;
    ++i;
    bool closed = false;
    while (i < text.size()) {
      const char c = text[i++];
      if (c == '\\') {
        if (i >= text.size()) break;
        m.local.push_back(text[i++]);
      } else if (c == '"') {
        closed = true;
        break;
      } else if (c == '\r' || c == '\n') {
        break;
      } else {
        m.local.push_back(c);
      }
    }
    if (!closed) {
      error = "unterminated quoted local part";
      return std::nullopt;
    }
  } else {
    // Dot-string = Atom *("." Atom)
    while (i < text.size() && (atext(text[i]) || text[i] == '.'))
      m.local.push_back(text[i++]);
    if (m.local.empty() || m.local.front() == '.' || m.local.back() == '.' ||
        m.local.find("..") != std::string::npos) {
      error = "bad local part";
      return std::nullopt;
    }
  }
  if (m.local.size() > 64) {  // RFC 5321 4.5.3.1.1
    error = "local part longer than 64 octets";
    return std::nullopt;
  }
  if (i >= text.size() || text[i] != '@') {
    error = "mailbox needs a domain (local@domain)";
    return std::nullopt;
  }
  ++i;
  const auto close = text.find('>', i);
  if (close == std::string_view::npos) {
    error = "path must end with >";
    return std::nullopt;
  }
  const std::string_view domain = text.substr(i, close - i);
  if (!valid_domain(domain)) {
    error = "bad domain";
    return std::nullopt;
  }
  m.domain = ascii::lower(domain);
  for (char c : m.local + m.domain) {
    if (static_cast<unsigned char>(c) >= 0x80) m.utf8 = true;
  }
  p.mailbox = std::move(m);
  rest = text.substr(close + 1);
  return p;
}

std::vector<EsmtpParam> esmtp_params(std::string_view text) {
  std::vector<EsmtpParam> out;
  text = ascii::trim(text);
  while (!text.empty()) {
    const auto sp = text.find(' ');
    const std::string_view param = text.substr(0, sp);
    text = sp == std::string_view::npos ? "" : ascii::trim(text.substr(sp + 1));
    const auto eq = param.find('=');
    out.push_back({ascii::upper(param.substr(0, eq)),
                   eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1)});
  }
  return out;
}

}  // namespace a3::smtp
