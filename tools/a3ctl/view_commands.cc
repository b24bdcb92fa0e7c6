// a3ctl replay and verify: the view is a function of the log, so it can be
// rebuilt from it at any time, and checked against a rebuild.
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "eventlog/open.h"
#include "frontends/admin/protocol.h"
#include "projections/projector.h"
#include "projections/view/view_db.h"
#include "tools/a3ctl/commands.h"
#include "tools/a3ctl/store_access.h"

namespace a3::ctl {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// "replay: 120000/200000 events (60%)  95000 events/s  ETA 1s" on one line.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label) : label_(std::move(label)), start_(Clock::now()) {}
  void operator()(std::int64_t done, std::int64_t total) {
    const auto now = Clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    rate_ = secs > 0 ? static_cast<double>(done) / secs : 0;
    const double eta = rate_ > 0 ? static_cast<double>(total - done) / rate_ : 0;
    const int pct = total ? static_cast<int>(100 * done / total) : 100;
    const int width = 30, filled = width * pct / 100;
    fmt::print(stderr, "\r{}: [{}{}] {}/{} events ({}%)  {:.0f} events/s  ETA {:.0f}s   ", label_,
               std::string(filled, '#'), std::string(width - filled, '.'), done, total, pct, rate_,
               eta);
    if (done >= total) fmt::print(stderr, "\n");
  }
  double rate() const { return rate_; }

 private:
  std::string label_;
  Clock::time_point start_, last_{};
  double rate_ = 0;
};

bool daemon_running(const config::Config& config) {
  if (auto fd = admin::connect(admin_socket_path(config))) {
    ::close(*fd);
    return true;
  }
  return false;
}

std::string positions_text(const std::map<std::int32_t, std::int64_t>& p) {
  std::string s;
  for (const auto& [part, next] : p)
    s += fmt::format("{}{}:{}", s.empty() ? "" : " ", part, next);
  return s.empty() ? "(empty)" : s;
}

}  // namespace

int replay_command(Context& ctx) {
  const auto& c = ctx.config;
  if (daemon_running(c)) {
    fmt::print(stderr,
               "a3ctl: the daemon is running; stop it first (a replay swaps the view it uses)\n");
    return 1;
  }
  // Holding the log for writing keeps a daemon from starting mid-replay.
  auto log = eventlog::open(c, eventlog::Access::read_write);
  const fs::path live = c.store.path;
  const fs::path fresh = live.string() + fmt::format(".replay-{}", ::getpid());
  fs::remove_all(fresh);
  std::map<std::int32_t, std::int64_t> positions;
  std::string digest;
  {
    auto view = projections::view::ViewDb::open(fresh);
    view->set_wal(false);  // a bulk rebuild: nothing follows it
    projections::Projector projector(*log, *view, 4096);
    ProgressBar bar("replay");
    if (!projector.catch_up(std::ref(bar))) {
      fmt::print(stderr, "\na3ctl: replay failed: {}\n", projector.failure());
      return 1;
    }
    positions = view->positions();
    digest = view->digest();
  }
  // Swap the rebuilt view in atomically (renameat2 RENAME_EXCHANGE): at every
  // instant there is a complete view at the live path. If none existed yet,
  // a plain rename.
  if (fs::exists(live)) {
    if (::renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, live.c_str(), RENAME_EXCHANGE) != 0) {
      fmt::print(stderr, "a3ctl: cannot swap {} into place: {}\n", fresh.string(),
                 std::strerror(errno));
      return 1;
    }
    fs::remove_all(fresh);  // now the old view
  } else {
    fs::rename(fresh, live);
  }
  fmt::print("replayed the log into {}: positions {}, digest {}\n", live.string(),
             positions_text(positions), digest);
  return 0;
}

int verify_command(Context& ctx) {
  const auto& c = ctx.config;
  // The live view, as the daemon (or the last run) left it.
  auto live = projections::view::ViewDb::open(c.store.path, /*read_only=*/true);
  live->catch_up();
  const auto positions = live->positions();
  const std::string live_digest = live->digest();
  live.reset();

  auto log = eventlog::open(c, eventlog::Access::read_only);
  const fs::path scratch = fs::temp_directory_path() / fmt::format("a3-verify-{}", ::getpid());
  fs::remove_all(scratch);
  std::string fresh_digest;
  {
    auto view = projections::view::ViewDb::open(scratch);
    view->set_wal(false);
    projections::Projector projector(*log, *view, 4096);
    ProgressBar bar("verify");
    const bool ok = projector.catch_up(std::ref(bar), &positions);
    fresh_digest = view->digest();
    if (!ok) {
      fmt::print(stderr, "a3ctl: replay failed: {}\n", projector.failure());
      fs::remove_all(scratch);
      return 1;
    }
  }
  fs::remove_all(scratch);
  fmt::print("live view   at {}: {}\nfresh replay at {}: {}\n", positions_text(positions),
             live_digest, positions_text(positions), fresh_digest);
  if (live_digest != fresh_digest) {
    fmt::print("MISMATCH: the view differs from its log; rebuild it with a3ctl replay\n");
    return 1;
  }
  fmt::print("OK: the view is exactly what its log says\n");
  return 0;
}

}  // namespace a3::ctl
