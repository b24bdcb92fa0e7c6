// The daemon's admin endpoint: a Unix socket (mode 0600) under the data
// directory through which a3ctl's writes reach the running daemon (RocksDB
// admits one writing process). Every event received is verified before use.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <thread>

#include "frontends/admin/protocol.h"
#include "projections/store.h"

namespace a3::admin {

class AdminServer {
 public:
  // Binds the socket; throws std::runtime_error with the reason.
  // Runs an admin command ("backup DIR") and answers it.
  using CommandHandler = std::function<Reply(const std::string&)>;

  AdminServer(const std::filesystem::path& socket_path, projections::Store& store,
              CommandHandler commands = {});
  ~AdminServer();
  void stop();

 private:
  void serve();
  void handle(int fd);

  std::filesystem::path path_;
  projections::Store& store_;
  CommandHandler commands_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace a3::admin
