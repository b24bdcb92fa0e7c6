// An IMAP session (frontends/imap/session.h) logged in as alice and fed
// hostile bytes against a real store: it never crashes or throws, every
// response is well formed (RFC 9051 7: untagged, continuation or tagged,
// literals counted), output stays bounded, nothing follows BYE.
#include "frontends/imap/session.h"
#include "tests/frontends/imap/converse.h"
#include "tests/frontends/protocol_checks.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/store_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace a3;
  auto& f = fuzz::store_fixture();
  static imap::Shared shared;
  imap::Limits limits;
  imap::Session session({"h", "192.0.2.1", "f", true, true, false}, limits, *f.store, shared);
  auto say = [&](std::string_view bytes) {
    return test::converse(session, *f.store, bytes, [](const net::AuthRequest& a) {
      return a.password == "pw" ? std::optional<std::string>(fuzz::kAlice) : std::nullopt;
    });
  };
  std::string out = say("a LOGIN alice@example.test pw\r\n");
  std::string_view in = fuzz::bytes(data, size);
  while (!in.empty() && !session.closed()) {
    std::string reply = say(fuzz::next_line(in));
    if (session.starttls_requested()) session.tls_established();
    reply += session.take_output();
    A3_FUZZ_CHECK(reply.size() <= (8u << 20), "output too large");
    out += reply;
  }
  if (session.idling()) out += say("DONE\r\n");
  const std::string why = test::check_imap(out);
  A3_FUZZ_CHECK(why.empty(), why);
  if (session.closed()) A3_FUZZ_CHECK(say("z NOOP\r\n").empty(), "a reply after BYE");
  return 0;
}
