#include "frontends/admin/protocol.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace a3::admin {

bool write_all(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, void* data, std::size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_u32(int fd, std::uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v >> 24),
                              static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  return write_all(fd, b, 4);
}

std::optional<std::uint32_t> read_u32(int fd) {
  unsigned char b[4];
  if (!read_all(fd, b, 4)) return std::nullopt;
  return static_cast<std::uint32_t>(b[0]) << 24 | static_cast<std::uint32_t>(b[1]) << 16 |
         static_cast<std::uint32_t>(b[2]) << 8 | b[3];
}

std::optional<int> connect(const std::string& socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) return std::nullopt;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  return fd;
}

namespace {

// status:u8 length:u32 text
std::optional<Reply> read_reply(int fd) {
  unsigned char status;
  if (!read_all(fd, &status, 1)) return std::nullopt;
  auto len = read_u32(fd);
  if (!len || *len > (1u << 20)) return std::nullopt;
  Reply r;
  r.ok = status == 0;
  r.text.resize(*len);
  if (!read_all(fd, r.text.data(), r.text.size())) return std::nullopt;
  return r;
}

}  // namespace

std::optional<Reply> command(int fd, const std::string& text) {
  if (!write_u32(fd, kCommandMarker) || !write_u32(fd, static_cast<std::uint32_t>(text.size())) ||
      !write_all(fd, text.data(), text.size())) {
    return std::nullopt;
  }
  auto n = read_u32(fd);
  if (!n || *n != 1) return std::nullopt;
  return read_reply(fd);
}

std::optional<std::vector<Reply>> call(int fd, const std::vector<std::string>& events) {
  if (!write_u32(fd, static_cast<std::uint32_t>(events.size()))) return std::nullopt;
  for (const auto& e : events) {
    if (!write_u32(fd, static_cast<std::uint32_t>(e.size())) ||
        !write_all(fd, e.data(), e.size())) {
      return std::nullopt;
    }
  }
  auto n = read_u32(fd);
  if (!n || *n != events.size()) return std::nullopt;
  std::vector<Reply> out;
  for (std::uint32_t i = 0; i < *n; ++i) {
    auto r = read_reply(fd);
    if (!r) return std::nullopt;
    out.push_back(std::move(*r));
  }
  return out;
}

}  // namespace a3::admin
