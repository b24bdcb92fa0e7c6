// The admin endpoint's wire format (a Unix socket under the data directory,
// mode 0600: the service user and root only). a3ctl sends events it built;
// the daemon verifies, appends and applies them, then answers each.
//
//   request  = count:u32 { length:u32 event-bytes }*count
//   response = count:u32 { status:u8 length:u32 text }*count
//   status   = 0 applied (text: the outcome), 1 error (text: why)
// Integers are big-endian. One request per connection.
//
// A command request (an operation that is not an event, e.g. a hot backup):
//   request  = 0xFFFFFFFF length:u32 command-text   ("backup /path")
//   response = 1 { status:u8 length:u32 text }
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace a3::admin {

constexpr std::uint32_t kMaxEvents = 10000;
constexpr std::uint32_t kMaxEventBytes = 256u << 20;
constexpr std::uint32_t kCommandMarker = 0xFFFFFFFFu;

struct Reply {
  bool ok = false;
  std::string text;
};

// Blocking helpers over a connected socket; false on EOF or error.
bool write_all(int fd, const void* data, std::size_t n);
bool read_all(int fd, void* data, std::size_t n);
bool write_u32(int fd, std::uint32_t v);
std::optional<std::uint32_t> read_u32(int fd);

// Client side: connects to `socket_path`; nullopt if no daemon listens there.
std::optional<int> connect(const std::string& socket_path);
// Sends events and reads the replies; nullopt if the connection failed.
std::optional<std::vector<Reply>> call(int fd, const std::vector<std::string>& events);
// Sends a command; its reply, or nullopt if the connection failed.
std::optional<Reply> command(int fd, const std::string& text);

}  // namespace a3::admin
