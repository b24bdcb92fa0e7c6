// MIME, parsed once when a message is projected, never per FETCH: the IMAP
// ENVELOPE, BODY and BODYSTRUCTURE pre-rendered (RFC 9051 7.5.2), the byte
// ranges of every part and header (BODY[section], BINARY), and the decoded
// header fields SEARCH needs.
//
// The structure scanner (boundaries, byte ranges) is ours, because IMAP needs
// exact byte offsets; header values are decoded with GMime (RFC 2047 encoded
// words, RFC 2231 parameters, address lists, dates). Malformed messages give
// a best-effort structure, never a crash: an unterminated multipart ends at
// the end of its parent, a missing header/body separator means no body.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace a3::mime {

struct Part {
  std::string section;             // IMAP part specifier: "" (the message), "1", "2.1"...
  std::uint64_t header_begin = 0;  // [header_begin, body_begin): header and blank line
  std::uint64_t body_begin = 0;
  std::uint64_t body_end = 0;
  std::string type = "text/plain";     // lowercase media type
  std::string encoding = "7bit";       // lowercase Content-Transfer-Encoding
  bool message = false;                // message/rfc822 (or global): its body is a message
  std::uint64_t inner_body_begin = 0;  // for `message`: where the embedded message's body starts
};

struct Summary {
  std::string envelope;  // "(date subject from sender reply-to to cc bcc in-reply-to message-id)"
  std::string body;      // BODY: the non-extensible structure
  std::string bodystructure;  // BODYSTRUCTURE, with extension data
  std::vector<Part> parts;    // every part, the message itself first
  // Decoded (UTF-8) header fields for SEARCH; addresses as "Name <addr>, ...".
  std::string subject, from, to, cc, bcc, message_id;
  std::int64_t date_ms = 0;  // Date: header (SENTBEFORE/SENTON/SENTSINCE), 0 if none or invalid
  std::int32_t date_offset_minutes =
      0;  // the Date header's zone: its own day is what SENT* compare
};

Summary parse(std::string_view raw);

// An IMAP string: quoted if it can be, a literal {n} otherwise (CR, LF, NUL,
// 8-bit, or long). nstring: NIL for an absent value.
std::string imap_string(std::string_view s);

// The Message-ID header of a raw message (RFC 5322 3.6.4), unfolded and
// made valid UTF-8, or nullopt. Only the header section is looked at.
std::optional<std::string> message_id(std::string_view raw);

// The authors of a message (RFC 5322 3.6.2), for DMARC (RFC 7489 6.6.1):
// the addr-spec of every mailbox of every From field, group members
// included, and how many From fields there are.
struct Authors {
  int fields = 0;
  std::vector<std::string> addresses;
};
Authors authors(std::string_view raw);

// A part's body with its Content-Transfer-Encoding undone (base64,
// quoted-printable; 7bit/8bit/binary as is), for IMAP BINARY and SEARCH.
// nullopt for any other encoding, x-uuencode included (RFC 3516 UNKNOWN-CTE).
std::optional<std::string> decode_transfer_encoding(std::string_view body,
                                                    std::string_view encoding);

// ---- SEARCH text (RFC 9051 6.4.4) ----

// `bytes` in `charset` as UTF-8 (RFC 2045 5.2: none means us-ascii); an
// unknown charset or invalid bytes give their valid UTF-8 best effort.
std::string to_utf8(std::string_view bytes, std::string_view charset);

// The charset parameter of the Content-Type field in a raw header section,
// or empty.
std::string charset_of(std::string_view header);

// A header section with RFC 2047 encoded words decoded, unfolded, as UTF-8.
std::string decode_header_text(std::string_view header);

// UTF-8 folded for comparison, i;unicode-casemap (RFC 5051): case folded,
// then compatibility-decomposed (NFKD), so that "Grüße", "GRÜSSE" and a
// decomposed "u" + U+0308 compare equal.
std::string fold(std::string_view utf8);

}  // namespace a3::mime
