// A POP3 session (frontends/pop3/session.h) fed hostile bytes against a real
// store: it never crashes or throws, every reply is +OK/-ERR/"+ " or a
// dot-terminated list (RFC 1939 3), output stays bounded, nothing follows
// the goodbye.
#include "frontends/pop3/session.h"
#include "tests/frontends/protocol_checks.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/store_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace a3;
  auto& f = fuzz::store_fixture();
  static pop3::Maildrops maildrops;
  pop3::Session session({"h", "192.0.2.1", "f", true, true, false}, pop3::Limits{}, *f.store,
                        maildrops);
  std::string out;
  bool in_list = false;
  std::string_view in = fuzz::bytes(data, size);
  while (!in.empty() && !session.closed()) {
    session.receive(fuzz::next_line(in));
    for (int rounds = 0; rounds < 64; ++rounds) {
      bool progress = false;
      while (auto auth = session.take_auth()) {
        session.auth_result(auth->password == "pw" ? std::optional<std::string>(fuzz::kAlice)
                                                   : std::nullopt);
        progress = true;
      }
      if (auto update = session.take_update()) {
        session.update_done(f.store->execute_blocking(*update));
        progress = true;
      }
      if (session.starttls_requested()) {
        session.tls_established();
        progress = true;
      }
      if (session.has_buffered_commands()) {
        session.receive("");
        progress = true;
      }
      if (!progress) break;
    }
    const std::string reply = session.take_output();
    A3_FUZZ_CHECK(reply.size() <= (8u << 20), "output too large");
    const std::string why = test::check_pop3(reply, &in_list);
    A3_FUZZ_CHECK(why.empty(), why);
    out += reply;
  }
  if (session.closed()) {
    session.take_output();
    session.receive("NOOP\r\n");
    A3_FUZZ_CHECK(session.take_output().empty(), "a reply after QUIT");
  }
  return 0;
}
