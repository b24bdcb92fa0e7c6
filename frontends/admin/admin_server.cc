#include "frontends/admin/admin_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "frontends/admin/protocol.h"
#include "schemas/codec.h"

namespace a3::admin {

AdminServer::AdminServer(const std::filesystem::path& socket_path, projections::Store& store,
                         CommandHandler commands)
    : path_(socket_path), store_(store), commands_(std::move(commands)) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string p = path_.string();
  if (p.size() >= sizeof addr.sun_path) {
    throw std::runtime_error(fmt::format("admin socket path too long: {}", p));
  }
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  // A socket left by a process that died: we hold the store's locks, so no
  // other daemon can be using it.
  ::unlink(p.c_str());
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  // Created with no permissions for group and others, before anyone can connect.
  const mode_t old = ::umask(0177);
  const int rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (listen_fd_ < 0 || rc != 0 || ::listen(listen_fd_, 16) != 0) {
    const std::string why = std::strerror(errno);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    throw std::runtime_error(fmt::format("admin socket {}: {}", p, why));
  }
  thread_ = std::thread([this] { serve(); });
}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::stop() {
  if (stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  ::unlink(path_.c_str());
}

void AdminServer::serve() {
  while (!stop_) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 200) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    // The socket's mode already keeps others out; check the peer anyway.
    ucred peer{};
    socklen_t len = sizeof peer;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 ||
        (peer.uid != 0 && peer.uid != ::geteuid())) {
      spdlog::warn("admin: refused a connection from uid {}", peer.uid);
      ::close(fd);
      continue;
    }
    // Requests are rare and short (operators' commands): one at a time.
    timeval tv{30, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    handle(fd);
    ::close(fd);
  }
}

void AdminServer::handle(int fd) {
  auto count = read_u32(fd);
  if (count && *count == kCommandMarker) {
    auto len = read_u32(fd);
    if (!len || *len > 4096) return;
    std::string text(*len, '\0');
    if (!read_all(fd, text.data(), text.size())) return;
    spdlog::info("admin: command {}", text);
    Reply r = commands_ ? commands_(text) : Reply{false, "no commands here"};
    const unsigned char status = r.ok ? 0 : 1;
    write_u32(fd, 1) && write_all(fd, &status, 1) &&
        write_u32(fd, static_cast<std::uint32_t>(r.text.size())) &&
        write_all(fd, r.text.data(), r.text.size());
    return;
  }
  if (!count || *count > kMaxEvents) return;
  std::vector<std::string> events;
  std::uint64_t total = 0;
  for (std::uint32_t i = 0; i < *count; ++i) {
    auto len = read_u32(fd);
    if (!len || *len > kMaxEventBytes) return;
    total += *len;
    if (total > kMaxEventBytes) return;  // one request holds at most that much
    std::string e(*len, '\0');
    if (!read_all(fd, e.data(), e.size())) return;
    events.push_back(std::move(e));
  }
  if (!write_u32(fd, *count)) return;
  for (const auto& bytes : events) {
    Reply r;
    auto event = schemas::decode(bytes);
    if (!event) {
      r.text = "invalid event: " + event.error().detail;
    } else {
      spdlog::info("admin: {} for {}", schemas::kind_name(event->body), event->account);
      auto outcome = store_.execute_blocking(*event);
      if (!outcome) {
        r.text = outcome.error().message();
      } else {
        r.ok = true;
        r.text = outcome->str();
      }
    }
    const unsigned char status = r.ok ? 0 : 1;
    if (!write_all(fd, &status, 1) || !write_u32(fd, static_cast<std::uint32_t>(r.text.size())) ||
        !write_all(fd, r.text.data(), r.text.size())) {
      return;
    }
  }
}

}  // namespace a3::admin
