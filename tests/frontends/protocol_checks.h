// What a well-formed reply of each protocol looks like, for the hostile-
// input tests (tests/frontends/fuzz_test.cc) and the libFuzzer targets
// (tests/fuzz/). Each returns an explanation of the first bad reply, or "".
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace a3::test {

// IMAP responses (RFC 9051 7): every response is "* ...", "+ ..." or
// "tag SP (OK / NO / BAD) ..."; a literal {n} inside one is n bytes that
// belong to it. Returns an explanation of the first bad response, or "".
// Counts tagged status responses per tag into `tagged`.
inline std::string check_imap(std::string_view out, std::map<std::string, int>* tagged = nullptr) {
  std::size_t pos = 0;
  while (pos < out.size()) {
    const std::size_t start = pos;
    // One response: lines joined by literals.
    for (;;) {
      const auto eol = out.find("\r\n", pos);
      if (eol == std::string_view::npos) return "unterminated: " + std::string(out.substr(start));
      const std::string_view line = out.substr(pos, eol - pos);
      pos = eol + 2;
      if (line.ends_with("}")) {
        const auto open = line.rfind('{');
        if (open != std::string_view::npos) {
          std::size_t n = 0;
          bool digits = open + 1 < line.size() - 1;
          for (std::size_t i = open + 1; i + 1 < line.size(); ++i) {
            if (line[i] < '0' || line[i] > '9') digits = false;
            n = n * 10 + static_cast<std::size_t>(line[i] - '0');
          }
          if (digits) {
            if (pos + n > out.size()) return "literal past the end";
            pos += n;
            continue;
          }
        }
      }
      break;
    }
    const std::string_view r = out.substr(start, pos - start);
    if (r.starts_with("* ") || r.starts_with("+ ") || r == "+\r\n") continue;
    const auto sp = r.find(' ');
    if (sp == std::string_view::npos || sp == 0) return "no tag: " + std::string(r);
    const std::string_view status = r.substr(sp + 1, 4);
    if (!status.starts_with("OK") && !status.starts_with("NO") && !status.starts_with("BAD"))
      return "not a status: " + std::string(r);
    for (char c : r.substr(0, sp)) {
      const auto u = static_cast<unsigned char>(c);
      // tag = 1*<any ASTRING-CHAR except "+"> (RFC 9051 9)
      if (u <= 0x20 || u >= 0x7f || c == '+' || c == '(' || c == ')' || c == '{' || c == '%' ||
          c == '*' || c == '"' || c == '\\')
        return "bad tag: " + std::string(r);
    }
    if (tagged) ++(*tagged)[std::string(r.substr(0, sp))];
  }
  return "";
}

// Calls `check` on each CRLF-terminated line of `out`; its first complaint,
// or "unterminated" for a last line without CRLF.
template <typename F>
std::string each_line(std::string_view out, F&& check) {
  for (std::size_t pos = 0; pos < out.size();) {
    const auto eol = out.find("\r\n", pos);
    if (eol == std::string_view::npos) return "unterminated";
    if (auto why = check(out.substr(pos, eol - pos)); !why.empty()) return why;
    pos = eol + 2;
  }
  return "";
}

// SMTP replies (RFC 5321 4.2): Reply-code [ SP / "-" text ] CRLF.
inline std::string check_smtp(std::string_view out) {
  return each_line(out, [](std::string_view line) -> std::string {
    if (line.size() < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
        line[2] < '0' || line[2] > '9' || (line.size() > 3 && line[3] != ' ' && line[3] != '-'))
      return "not a reply: " + std::string(line);
    return "";
  });
}

// POP3 (RFC 1939 3): a status line "+OK" / "-ERR", a SASL "+ ", or the
// lines of a multi-line answer, which ends with "." alone.
inline std::string check_pop3(std::string_view out, bool* in_list) {
  return each_line(out, [in_list](std::string_view line) -> std::string {
    if (*in_list) {
      if (line == ".") *in_list = false;
      return "";
    }
    if (line.starts_with("+OK")) {
      // Multi-line answers (CAPA, LIST, UIDL, RETR, TOP, AUTH) announce it.
      *in_list = line.find("follow") != std::string_view::npos ||
                 line.find("octets") != std::string_view::npos;
    } else if (!line.starts_with("-ERR") && !line.starts_with("+ ")) {
      return "not a status: " + std::string(line);
    }
    return "";
  });
}

}  // namespace a3::test
