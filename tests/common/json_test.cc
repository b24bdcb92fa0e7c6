#include <gtest/gtest.h>

#include "common/json.h"

namespace a3 {
namespace {

TEST(Json, EscapesAsATable) {
  const std::pair<std::string, std::string> cases[] = {
      {"plain", R"("plain")"},
      {"quote\"back\\slash", R"("quote\"back\\slash")"},
      {"line\r\nbreak\ttab", R"("line\r\nbreak\ttab")"},
      {std::string("nul\0x", 5), "\"nul\xef\xbf\xbdx\""},  // jsonb refuses \u0000
      {"\x7f", R"("\u007f")"},
      {"caf\xc3\xa9", "\"caf\xc3\xa9\""},                            // valid UTF-8 kept
      {"\xe2\x82\xac", "\"\xe2\x82\xac\""},                          // euro sign
      {"bad\xff", "\"bad\xef\xbf\xbd\""},                            // invalid byte replaced
      {"\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\""},                  // overlong encoding refused
      {"\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},  // surrogate refused
      {"\xe2\x82", "\"\xef\xbf\xbd\xef\xbf\xbd\""},                  // truncated sequence
  };
  for (const auto& [in, out] : cases)
    EXPECT_EQ(json_string(in), out) << in;
}

}  // namespace
}  // namespace a3
