// BDAT: RFC 3030 2 (CHUNKING, BINARYMIME not offered).
//
// bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CRLF
#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/net/sasl.h"
#include "frontends/smtp/replies.h"
#include "frontends/smtp/session.h"

namespace a3::smtp {

// RFC 3030 2: BDAT <size> [LAST]
void Session::cmd_bdat(std::string_view arg) {
  const auto sp = arg.find(' ');
  const std::string_view size_text = arg.substr(0, sp);
  const std::string last =
      sp == std::string_view::npos ? "" : ascii::upper(ascii::trim(arg.substr(sp + 1)));
  std::uint64_t size = 0;
  const auto r = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size);
  if (size_text.empty() || r.ec != std::errc() || r.ptr != size_text.data() + size_text.size() ||
      !(last.empty() || last == "LAST")) {
    // The chunk's size is unknown: the connection cannot be resynchronised.
    reply("501 5.5.4 Syntax: BDAT <size> [LAST]");
    state_ = State::closed;
    return;
  }
  if (!env_.mail_from || (env_.accounts.empty() && env_.outbound.empty())) {
    // RFC 3030 2: the chunk must still be read and discarded.
    reply(env_.mail_from ? "554 5.5.1 No valid recipients" : "503 5.5.1 MAIL first");
    bdat_left_ = size;
    bdat_last_ = false;
    bdat_discard_ = true;
    data_too_big_ = true;  // store nothing
    state_ = State::bdat;
    return;
  }
  chunking_ = true;
  bdat_left_ = size;
  bdat_last_ = last == "LAST";
  state_ = State::bdat;
}

}  // namespace a3::smtp
