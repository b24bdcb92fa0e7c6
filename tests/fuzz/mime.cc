// The MIME parser (mime/mime.h) on hostile messages: it never crashes or
// throws; every part lies inside the message with its sections unique; the
// ENVELOPE and BODYSTRUCTURE are parenthesized lists with balanced
// parentheses outside strings; decoding a part's transfer encoding never
// crashes.
#include <set>

#include "mime/mime.h"
#include "tests/fuzz/fuzz.h"

namespace {

// Parentheses balance outside quoted strings and literals (RFC 9051 4).
bool balanced(std::string_view s) {
  int depth = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '"') {
      for (++i; i < s.size() && s[i] != '"'; ++i)
        if (s[i] == '\\') ++i;
      if (i >= s.size()) return false;
    } else if (c == '{') {
      const auto close = s.find("}\r\n", i);
      if (close == std::string_view::npos) return false;
      const std::size_t n =
          std::strtoull(std::string(s.substr(i + 1, close - i - 1)).c_str(), nullptr, 10);
      i = close + 2 + n;
      if (i >= s.size() + 1) return false;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      if (--depth < 0) return false;
    }
  }
  return depth == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace a3;
  const std::string_view raw = fuzz::bytes(data, size);
  const mime::Summary s = mime::parse(raw);
  std::set<std::string> sections;
  A3_FUZZ_CHECK(!s.parts.empty(), "no parts");
  for (const auto& p : s.parts) {
    A3_FUZZ_CHECK(sections.insert(p.section).second, "section twice: " + p.section);
    A3_FUZZ_CHECK(
        p.header_begin <= p.body_begin && p.body_begin <= p.body_end && p.body_end <= raw.size(),
        "part " + p.section + " outside the message");
    if (p.message) {
      A3_FUZZ_CHECK(p.inner_body_begin >= p.body_begin && p.inner_body_begin <= p.body_end,
                    "inner body of " + p.section);
    }
    const auto body = raw.substr(p.body_begin, p.body_end - p.body_begin);
    (void)mime::decode_transfer_encoding(body, p.encoding);
  }
  A3_FUZZ_CHECK(s.envelope.starts_with("(") && balanced(s.envelope), s.envelope);
  A3_FUZZ_CHECK(s.bodystructure.starts_with("(") && balanced(s.bodystructure), s.bodystructure);
  A3_FUZZ_CHECK(s.body.starts_with("(") && balanced(s.body), s.body);
  (void)mime::message_id(raw);
  (void)mime::authors(raw);
  return 0;
}
