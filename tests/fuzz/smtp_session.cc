// An SMTP session (frontends/smtp/session.h) fed hostile bytes: it never
// crashes or throws, every reply is a well-formed SMTP reply (RFC 5321
// 4.2), output stays bounded, and nothing follows the goodbye.
#include "frontends/smtp/session.h"
#include "tests/frontends/protocol_checks.h"
#include "tests/fuzz/fuzz.h"

namespace {

class Policy : public a3::smtp::Policy {
 public:
  Rcpt check_recipient(const a3::smtp::Mailbox& to, bool, std::uint64_t,
                       a3::smtp::Recipient& out) override {
    out.account = to.local;
    return to.domain == "example.test" ? Rcpt::accept : Rcpt::relay_denied;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace a3;
  Policy policy;
  smtp::Limits limits;
  limits.max_message_size = 1 << 20;
  // The first byte picks the listener: MX, submission, with TLS or not.
  const std::uint8_t mode = size ? data[0] : 0;
  smtp::Session session({"mx", "192.0.2.1", (mode & 1) != 0, (mode & 2) != 0, (mode & 4) != 0,
                         (mode & 8) != 0, false},
                        limits, policy);
  std::string out = session.greeting();
  std::string_view in = fuzz::bytes(data, size);
  if (!in.empty()) in.remove_prefix(1);
  // Fed in pieces cut at each LF, as reads would deliver a pipelined stream.
  while (!in.empty() && !session.closed()) {
    session.receive(fuzz::next_line(in));
    for (int rounds = 0; rounds < 64; ++rounds) {
      bool progress = false;
      if (session.take_message()) {
        session.delivered(true);
        progress = true;
      }
      if (auto auth = session.take_auth()) {
        session.auth_result(auth->user == "alice", auth->user);
        progress = true;
      }
      if (session.starttls_requested()) {
        session.tls_established();
        progress = true;
      }
      if (session.in_message() && session.buffered_data() > 4096) session.take_data();
      if (session.retry_elsewhere() || (progress && session.has_pending_input())) {
        session.receive("");
        progress = true;
      }
      if (!progress) break;
    }
    const std::string reply = session.take_output();
    A3_FUZZ_CHECK(reply.size() <= (4u << 20), "output too large");
    out += reply;
  }
  A3_FUZZ_CHECK(a3::test::check_smtp(out).empty(), a3::test::check_smtp(out));
  if (session.closed()) {
    session.take_output();
    session.receive("NOOP\r\n");
    A3_FUZZ_CHECK(session.take_output().empty(), "a reply after the goodbye");
  }
  return 0;
}
