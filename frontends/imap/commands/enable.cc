// ENABLE: RFC 9051 6.3.1 ENABLE (RFC 5161).
//
// enable = "ENABLE" 1*(SP capability)
#include <algorithm>

#include <fmt/format.h>

#include "common/ascii.h"
#include "frontends/imap/session.h"

namespace a3::imap {

void Session::cmd_enable(const std::string& tag, Parser& p) {
  const bool had_condstore = condstore_;
  std::string enabled;
  do {
    p.sp();
    const std::string cap = ascii::upper(p.atom());
    bool now = false;
    if (cap == "IMAP4REV2" && !rev2_) now = rev2_ = true;
    if (cap == "UTF8=ACCEPT" && !utf8_) now = utf8_ = true;
    if (cap == "CONDSTORE" && !condstore_) now = condstore_ = true;
    if (cap == "QRESYNC" && !qresync_) now = qresync_ = condstore_ = true;
    if (now) enabled += " " + cap;
  } while (!p.at_end());
  untagged("ENABLED" + enabled);
  if (!had_condstore && condstore_ && sel_) {
    untagged(fmt::format("OK [HIGHESTMODSEQ {}] Highest",
                         std::max<std::uint64_t>(1, sel_->box.highestmodseq)));
  }
  tagged(tag, "OK", "ENABLE completed");
}

}  // namespace a3::imap
