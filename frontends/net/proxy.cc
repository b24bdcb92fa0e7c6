#include "frontends/net/proxy.h"

#include <array>
#include <charconv>
#include <cstdint>

namespace a3::net::proxy {

namespace ip = boost::asio::ip;

namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);

Result invalid(std::string why) {
  Result r;
  r.status = Status::invalid;
  r.error = std::move(why);
  return r;
}

// Whether `bytes` could still become `prefix` (it is a prefix of it).
bool could_be(std::string_view bytes, std::string_view prefix) {
  return bytes.size() < prefix.size() && prefix.starts_with(bytes);
}

// The next field of a v1 line up to a single space (or the end).
std::string_view field(std::string_view& rest) {
  const auto sp = rest.find(' ');
  const std::string_view f = rest.substr(0, sp);
  rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
  return f;
}

// A v1 port: 0 to 65535 in decimal, no sign, no leading zero.
std::optional<unsigned short> port(std::string_view s) {
  unsigned v = 0;
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v > 65535) return std::nullopt;
  return static_cast<unsigned short>(v);
}

// A v1 address of the family its protocol names, in its usual text form.
std::optional<ip::address> address(std::string_view s, bool v6) {
  boost::system::error_code ec;
  if (s.empty() || s.size() > 39) return std::nullopt;
  if (!v6) {
    const auto a = ip::make_address_v4(std::string(s), ec);
    if (ec) return std::nullopt;
    return ip::address(a);
  }
  const auto a = ip::make_address_v6(std::string(s), ec);
  if (ec || a.scope_id() != 0) return std::nullopt;
  return ip::address(a);
}

Result parse_v1(std::string_view bytes) {
  const std::size_t end = bytes.find("\r\n");
  if (end == std::string_view::npos) {
    if (bytes.size() >= kMaxV1) return invalid("PROXY v1 line longer than 107 octets");
    // Whatever may still come, these octets are already wrong (a lone CR
    // at the end may be the start of the CRLF).
    const std::string_view seen = bytes.ends_with('\r') ? bytes.substr(0, bytes.size() - 1) : bytes;
    for (const char ch : seen)
      if (ch < 0x20 || ch > 0x7e) return invalid("PROXY v1: a control or non-ASCII octet");
    return {};
  }
  if (end + 2 > kMaxV1) return invalid("PROXY v1 line longer than 107 octets");
  // Printable US-ASCII only (a bare LF, a NUL or a control character is
  // no part of any header, and a NUL would end an address early).
  for (const char ch : bytes.substr(0, end))
    if (ch < 0x20 || ch > 0x7e) return invalid("PROXY v1: a control or non-ASCII octet");
  std::string_view rest = bytes.substr(kV1Prefix.size(), end - kV1Prefix.size());
  Result r;
  r.header.version = 1;
  r.header.size = end + 2;
  const std::string_view proto = field(rest);
  if (proto == "UNKNOWN") {
    // Anything may follow up to the CRLF; the receiver ignores it.
    r.status = Status::ok;
    return r;
  }
  if (proto != "TCP4" && proto != "TCP6") return invalid("PROXY v1: unknown protocol");
  const bool v6 = proto == "TCP6";
  const auto src = address(field(rest), v6);
  const auto dst = address(field(rest), v6);
  const auto sport = port(field(rest));
  const std::string_view last = rest;
  const auto dport = last.find(' ') == std::string_view::npos ? port(last) : std::nullopt;
  if (!src || !dst || !sport || !dport) return invalid("PROXY v1: malformed addresses or ports");
  r.header.source = ip::tcp::endpoint(*src, *sport);
  r.header.destination = ip::tcp::endpoint(*dst, *dport);
  r.status = Status::ok;
  return r;
}

std::uint16_t be16(std::string_view b, std::size_t at) {
  return static_cast<std::uint16_t>((static_cast<unsigned char>(b[at]) << 8) |
                                    static_cast<unsigned char>(b[at + 1]));
}

Result parse_v2(std::string_view bytes) {
  if (bytes.size() < kV2Fixed) return {};
  const auto ver_cmd = static_cast<unsigned char>(bytes[12]);
  const auto fam = static_cast<unsigned char>(bytes[13]);
  const std::size_t len = be16(bytes, 14);
  if ((ver_cmd >> 4) != 2) return invalid("PROXY v2: unknown version");
  const unsigned command = ver_cmd & 0x0f;
  if (command > 1) return invalid("PROXY v2: unknown command");
  if (bytes.size() < kV2Fixed + len) return {};
  Result r;
  r.header.version = 2;
  r.header.size = kV2Fixed + len;
  r.status = Status::ok;
  if (command == 0) return r;  // LOCAL: the proxy's own connection; addresses ignored
  // PROXY: TCP over IPv4 (0x11) or IPv6 (0x21). The spec lets a receiver
  // refuse UNSPEC (0x00) and leaves AF_UNIX (0x31) to it: both would give
  // the client the proxy's own address, out of reach of every per-client
  // control, so they are refused; anything else is not in the spec.
  if (fam == 0x00 || fam == 0x31)
    return invalid("PROXY v2: no client address (UNSPEC or AF_UNIX); refused");
  if (fam != 0x11 && fam != 0x21) return invalid("PROXY v2: unknown address family");
  const std::string_view body = bytes.substr(kV2Fixed, len);
  if (fam == 0x11) {  // AF_INET: 4 + 4 + 2 + 2, then TLVs (ignored)
    if (len < 12) return invalid("PROXY v2: IPv4 addresses cut short");
    std::array<unsigned char, 4> s{}, d{};
    std::copy(body.begin(), body.begin() + 4, s.begin());
    std::copy(body.begin() + 4, body.begin() + 8, d.begin());
    r.header.source = ip::tcp::endpoint(ip::address_v4(s), be16(body, 8));
    r.header.destination = ip::tcp::endpoint(ip::address_v4(d), be16(body, 10));
  } else {  // AF_INET6: 16 + 16 + 2 + 2
    if (len < 36) return invalid("PROXY v2: IPv6 addresses cut short");
    std::array<unsigned char, 16> s{}, d{};
    std::copy(body.begin(), body.begin() + 16, s.begin());
    std::copy(body.begin() + 16, body.begin() + 32, d.begin());
    r.header.source = ip::tcp::endpoint(ip::address_v6(s), be16(body, 32));
    r.header.destination = ip::tcp::endpoint(ip::address_v6(d), be16(body, 34));
  }
  return r;
}

}  // namespace

Result parse(std::string_view bytes) {
  if (bytes.starts_with(kV1Prefix)) return parse_v1(bytes);
  if (bytes.starts_with(kV2Signature)) return parse_v2(bytes);
  if (could_be(bytes, kV1Prefix) || could_be(bytes, kV2Signature)) return {};
  return invalid("not a PROXY protocol header");
}

}  // namespace a3::net::proxy
