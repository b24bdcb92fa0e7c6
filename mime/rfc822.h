// Header-value grammar on raw octets: RFC 5322 3.4 address lists and
// RFC 2045 5.1 / RFC 2183 parameters, as IMAP's ENVELOPE and BODYSTRUCTURE
// want them: the header's own text, never decoded or re-encoded (RFC 3501
// 7.4.2), quoted strings unquoted, comments dropped. Malformed values give a
// best-effort result, the way the reference server (Dovecot) reads them, so
// clients see the same thing from either server.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace a3::mime::rfc822 {

// One ENVELOPE address (RFC 9051 7.5.2). A group is a start entry (mailbox
// = the group's name, no host) and an end entry (all empty), with the
// members between. A mailbox without a local part or domain says
// MISSING_MAILBOX / MISSING_DOMAIN (NIL there would read as group syntax);
// an unparsable angle address says SYNTAX_ERROR in its host.
struct Address {
  std::optional<std::string> name, route, mailbox, host;
};

// At most `limit` addresses (a group counts its members).
std::vector<Address> parse_addresses(std::string_view value, std::size_t limit = 1000);

// A Content-Type: the type and subtype as written (empty if the value is
// not type "/" subtype), then the parameters in order, names as written.
// RFC 2231 continuations (name*0, name*1*) are joined into one parameter
// called "name" or, if any piece is extended, "name*"; other names stay as
// sent. Malformed parameters are skipped up to the next ';'.
struct ContentType {
  std::string type, subtype;
  std::vector<std::pair<std::string, std::string>> params;
};
ContentType parse_content_type(std::string_view value);

// A Content-Disposition (RFC 2183): the type as written, or empty, and its
// parameters as above.
struct Disposition {
  std::string type;
  std::vector<std::pair<std::string, std::string>> params;
};
Disposition parse_disposition(std::string_view value);

// A MIME token alone on the field (Content-Transfer-Encoding), or empty.
std::string single_token(std::string_view value);

// The language tags of a Content-Language field (RFC 3282), in order.
std::vector<std::string> parse_languages(std::string_view value);

// An RFC 5322 3.3 date-time (with 4.3's obsolete years and zone names):
// seconds since the epoch in UTC and the zone's offset in minutes; nullopt
// for anything else, as the reference reads it ("10:00:t" is no time).
struct DateTime {
  std::int64_t seconds;
  int offset_minutes;
};
std::optional<DateTime> parse_date(std::string_view value);

}  // namespace a3::mime::rfc822
