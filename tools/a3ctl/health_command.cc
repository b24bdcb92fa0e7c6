// a3ctl health: what the deployment guide's health-check script does, for
// this daemon: the service runs, its ports listen, the database answers,
// the log takes appends and the projectors keep up. One "OK:" or "ERROR:"
// line per check; exit 0 when all pass, 1 otherwise.
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "frontends/admin/protocol.h"
#include "projections/audit/pg.h"
#include "tools/a3ctl/commands.h"
#include "tools/a3ctl/store_access.h"

namespace a3::ctl {

namespace {

// Connects to host:port within `timeout_ms`; why not, or empty.
std::string try_connect(const std::string& bind, int timeout_ms) {
  const auto colon = bind.rfind(':');
  std::string host = bind.substr(0, colon);
  const std::string port = bind.substr(colon + 1);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  // A wildcard address is reached on loopback.
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host == "::") host = "::1";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (const int e = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); e != 0)
    return gai_strerror(e);
  std::string why;
  const int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::strerror(errno);
  } else if (connect(fd, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS) {
    why = std::strerror(errno);
  } else {
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (poll(&p, 1, timeout_ms) != 1) {
      why = "no answer";
    } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      why = std::strerror(err ? err : errno);
    }
  }
  if (fd >= 0) ::close(fd);
  freeaddrinfo(res);
  return why;
}

}  // namespace

int health_command(Context& ctx) {
  if (!ctx.args.empty()) return fmt::print(stderr, "a3ctl: health takes no arguments\n"), 2;
  const auto& c = ctx.config;
  int errors = 0;
  auto report = [&](bool ok, const std::string& text) {
    fmt::print("{}: {}\n", ok ? "OK" : "ERROR", text);
    if (!ok) ++errors;
  };

  // The service: its admin socket answers, and says how the log and the
  // projectors are.
  const std::string socket = admin_socket_path(c);
  const auto fd = admin::connect(socket);
  if (!fd) {
    report(false, fmt::format("a3mailer is not running (nothing answers on {})", socket));
  } else {
    const auto reply = admin::command(*fd, "health");
    ::close(*fd);
    if (!reply) {
      report(false, "a3mailer closed the admin connection");
    } else {
      report(true, "a3mailer is running");
      std::size_t start = 0;
      while (start < reply->text.size()) {
        const auto end = std::min(reply->text.find('\n', start), reply->text.size());
        const std::string line = reply->text.substr(start, end - start);
        start = end + 1;
        // "name: ok: detail" or "name: error: detail"; anything else (an
        // older daemon's "unknown command") is an error as it stands.
        const auto first = line.find(": ");
        if (first == std::string::npos) {
          report(false, line);
        } else if (line.compare(first, 6, ": ok: ") == 0) {
          report(true, line.substr(0, first) + ": " + line.substr(first + 6));
        } else if (line.compare(first, 9, ": error: ") == 0) {
          report(false, line.substr(0, first) + ": " + line.substr(first + 9));
        } else {
          report(false, line);
        }
      }
    }
  }

  // The ports.
  for (const auto& l : c.server.listeners) {
    const std::string why = try_connect(l.bind, 3000);
    report(why.empty(), fmt::format("{} on {} {}", l.protocol, l.bind,
                                    why.empty() ? "is listening" : "does not answer: " + why));
  }
  if (c.monitoring.enabled && !c.listener("http")) {
    const std::string why = try_connect(c.monitoring.bind, 3000);
    report(why.empty(), fmt::format("monitoring on {} {}", c.monitoring.bind,
                                    why.empty() ? "is listening" : "does not answer: " + why));
  }

  // The database, when the audit trail is on.
  if (c.audit_trail()) {
    const auto [answers, detail] = projections::audit::ping(c.database.conninfo());
    report(answers, detail);
  }

  if (errors == 0) fmt::print("OK: All health checks passed\n");
  return errors == 0 ? 0 : 1;
}

}  // namespace a3::ctl
