// RFC 5321 4.1.2 paths for MAIL FROM and RCPT TO.
//
//   Path           = "<" [ A-d-l ":" ] Mailbox ">"
//   Reverse-path   = Path / "<>"
//   Mailbox        = Local-part "@" ( Domain / address-literal )
//   Local-part     = Dot-string / Quoted-string
//
// Source routes (A-d-l) are accepted and ignored (RFC 5321 3.3, C); the
// percent hack and bang paths have no meaning here: "a%b@local" is the local
// part "a%b" of a local domain, and nothing is ever relayed on its account.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace a3::smtp {

struct Mailbox {
  std::string local;   // as written; quoted strings keep their content unquoted
  std::string domain;  // lowercase; address literals keep their brackets
  bool quoted = false;
  bool utf8 = false;  // contains non-ASCII (needs SMTPUTF8, RFC 6531)

  std::string str() const;  // local@domain, with the local part re-quoted if needed
};

struct Path {
  bool null = false;  // "<>" (only valid as a reverse-path)
  Mailbox mailbox;
};

// Parses `text` that starts with "<"; sets `rest` to what follows the ">"
// (the ESMTP parameters). nullopt with `error` set if it is not a valid path.
std::optional<Path> parse_path(std::string_view text, std::string_view& rest, std::string& error);

// RFC 5321 4.1.2: Mail-parameters / Rcpt-parameters = esmtp-param *(SP
// esmtp-param), esmtp-param = esmtp-keyword ["=" esmtp-value]. The
// keywords upper-cased, the values as sent ("" when absent).
struct EsmtpParam {
  std::string key;
  std::string_view value;
};
std::vector<EsmtpParam> esmtp_params(std::string_view text);

}  // namespace a3::smtp
