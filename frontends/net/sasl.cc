#include "frontends/net/sasl.h"

#include <cstdint>

#include "common/ascii.h"

namespace a3::net {

// RFC 4648 base64, strict: no whitespace, correct padding.
std::optional<std::string> base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else if (pad || (v[k] = value(c)) < 0) {
        return std::nullopt;
      }
    }
    // RFC 4648 3.5: the bits padding leaves over must be zero, so that one
    // text stands for one value.
    if ((pad == 2 && (v[1] & 0xf) != 0) || (pad == 1 && (v[2] & 0x3) != 0)) return std::nullopt;
    const std::uint32_t n = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
    out.push_back(static_cast<char>(n >> 16));
    if (pad < 2) out.push_back(static_cast<char>(n >> 8 & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xff));
  }
  return out;
}

std::optional<PlainCredentials> parse_plain(std::string_view decoded) {
  const auto first = decoded.find('\0');
  const auto second = first == std::string_view::npos ? first : decoded.find('\0', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  const std::string_view authzid = decoded.substr(0, first);
  // authcid = 1*SAFE and passwd = 1*SAFE: neither is empty, neither holds NUL.
  if (second == first + 1 || second + 1 == decoded.size() ||
      decoded.find('\0', second + 1) != std::string_view::npos)
    return std::nullopt;
  PlainCredentials c;
  c.user = std::string(decoded.substr(first + 1, second - first - 1));
  c.password = std::string(decoded.substr(second + 1));
  c.other_identity = !authzid.empty() && !ascii::iequals(authzid, c.user);
  return c;
}

}  // namespace a3::net
