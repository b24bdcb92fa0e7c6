// The PROXY protocol, versions 1 (text) and 2 (binary), as haproxy's
// proxy-protocol.txt specifies it: the header a proxy sends before its
// client's first byte, naming the client's address. Sans-I/O: the caller
// peeks at the connection's first bytes, parses, and takes exactly the
// header's size off the socket.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

namespace a3::net::proxy {

// A v1 header is at most 107 octets with its CRLF (spec 2.1); a v2 header
// is 16 octets and up to 65535 more.
inline constexpr std::size_t kMaxV1 = 107;
inline constexpr std::size_t kV2Fixed = 16;

struct Header {
  int version = 0;  // 1 or 2
  // The client (source) and the address it reached on the proxy
  // (destination). Unset for v1 "UNKNOWN" and v2 LOCAL: the connection is
  // the proxy's own (a health check), and its peer address stands. (A v2
  // PROXY header without a TCP address, UNSPEC or AF_UNIX, is invalid.)
  std::optional<boost::asio::ip::tcp::endpoint> source, destination;
  std::size_t size = 0;  // octets of the header, to take off the connection
};

enum class Status {
  incomplete,  // a header's start: more bytes are needed
  ok,
  invalid,  // not a PROXY header, or a malformed one: close the connection
};

struct Result {
  Status status = Status::incomplete;
  Header header;
  std::string error;  // why it is invalid
};

// Parses the start of a connection's bytes (which may hold more than the
// header). Never reads past `bytes`.
Result parse(std::string_view bytes);

}  // namespace a3::net::proxy
