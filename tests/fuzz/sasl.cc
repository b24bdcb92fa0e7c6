// SASL pieces (frontends/net/sasl.h) on hostile client input: strict base64
// never crashes, and what it accepts re-encodes to the same text (no
// whitespace or bad padding slips through); PLAIN's message parser never
// crashes and accepts no empty user or password and no NUL in a password
// (RFC 4616 2).
#include "frontends/net/sasl.h"
#include "tests/fuzz/fuzz.h"

namespace {

std::string base64_encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16 |
                       static_cast<unsigned char>(in[i + 1]) << 8 |
                       static_cast<unsigned char>(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6)
      out.push_back(kAlphabet[(v >> k) & 63]);
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const unsigned v =
        static_cast<unsigned char>(in[i]) << 16 | static_cast<unsigned char>(in[i + 1]) << 8;
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63], '='};
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace a3;
  const std::string_view in = fuzz::bytes(data, size);
  if (auto decoded = net::base64_decode(in)) {
    A3_FUZZ_CHECK(base64_encode(*decoded) == in, "accepted base64 that is not canonical");
  }
  if (auto plain = net::parse_plain(in)) {
    A3_FUZZ_CHECK(!plain->user.empty(), "PLAIN without a user");
    A3_FUZZ_CHECK(!plain->password.empty() && plain->password.find('\0') == std::string::npos,
                  "PLAIN with an empty password or a NUL in it");
  }
  return 0;
}
