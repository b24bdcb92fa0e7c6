#include "tools/a3ctl/store_access.h"

#include <unistd.h>

#include <stdexcept>

#include <fmt/format.h>

#include "eventlog/open.h"
#include "schemas/codec.h"

namespace a3::ctl {

std::string admin_socket_path(const config::Config& config) {
  return (config.server.data_dir / "admin.sock").string();
}

bool daemon_running(const config::Config& config) {
  if (auto fd = admin::connect(admin_socket_path(config))) {
    ::close(*fd);
    return true;
  }
  return false;
}

std::unique_ptr<StoreAccess> StoreAccess::open(const config::Config& config) {
  std::unique_ptr<StoreAccess> a(new StoreAccess());
  a->config_ = config;
  a->socket_path_ = admin_socket_path(config);
  if (auto fd = admin::connect(a->socket_path_)) {
    ::close(*fd);
    a->via_daemon_ = true;
    a->view_ = projections::view::ViewDb::open(config.store.path, /*read_only=*/true);
    a->store_ = std::make_unique<projections::Store>(nullptr, *a->view_, nullptr);
    return a;
  }
  try {
    a->log_ = eventlog::open(config, eventlog::Access::read_write);
  } catch (const std::exception& e) {
    throw std::runtime_error(
        fmt::format("{}\n(no daemon answers on {}; if one is running, check that it is this "
                    "configuration's and that you are its user or root)",
                    e.what(), a->socket_path_));
  }
  a->view_ = projections::view::ViewDb::open(config.store.path);
  a->projector_ = std::make_unique<projections::Projector>(*a->log_, *a->view_);
  if (!a->projector_->catch_up()) throw std::runtime_error(a->projector_->failure());
  a->projector_->start();
  a->store_ = std::make_unique<projections::Store>(a->log_.get(), *a->view_, a->projector_.get());
  return a;
}

StoreAccess::~StoreAccess() {
  store_.reset();
  if (projector_) projector_->stop();
  projector_.reset();
  view_.reset();
  if (log_) log_->close();
}

std::vector<admin::Reply> StoreAccess::execute(const std::vector<schemas::Event>& events) {
  std::vector<admin::Reply> out;
  if (via_daemon_) {
    std::vector<std::string> encoded;
    for (const auto& e : events)
      encoded.push_back(schemas::encode(e));
    auto fd = admin::connect(socket_path_);
    if (!fd) throw std::runtime_error("the daemon stopped answering on " + socket_path_);
    auto replies = admin::call(*fd, encoded);
    ::close(*fd);
    if (!replies) throw std::runtime_error("the daemon closed the admin connection");
    return *replies;
  }
  for (const auto& e : events) {
    auto r = store_->execute_blocking(e);
    out.push_back(r ? admin::Reply{true, r->str()} : admin::Reply{false, r.error().message()});
  }
  return out;
}

eventlog::EventLog& StoreAccess::log() {
  // As it is now (a read-only instance): a secondary one would crash on
  // bodies in blob files.
  if (!log_) log_ = eventlog::open(config_, eventlog::Access::snapshot);
  return *log_;
}

projections::Store& StoreAccess::store() {
  if (via_daemon_) view_->catch_up();
  return *store_;
}

int run_events(StoreAccess& access, const std::vector<schemas::Event>& events,
               std::string_view done) {
  if (events.empty()) return fmt::print("nothing to {}\n", done), 0;
  std::size_t failures = 0;
  const auto replies = access.execute(events);
  for (const auto& r : replies) {
    if (!r.ok || !r.text.starts_with("ok")) {
      fmt::print(stderr, "a3ctl: {}\n", r.text);
      ++failures;
    }
  }
  fmt::print("{} {} of {}\n", done, events.size() - failures, events.size());
  return failures ? 1 : 0;
}

}  // namespace a3::ctl
