// a3ctl replay and verify: the view is a function of the log, so it can be
// rebuilt from it at any time, and checked against a rebuild.
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sstream>

#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "eventlog/open.h"
#include "frontends/admin/protocol.h"
#include "projections/projector.h"
#include "projections/view/view_db.h"
#include "tools/a3ctl/commands.h"
#include "tools/a3ctl/output.h"
#include "tools/a3ctl/store_access.h"

namespace a3::ctl {

namespace {

namespace fs = std::filesystem;

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
             offsets_text(positions), digest);
  return 0;
}

int verify_command(Context& ctx) {
  const auto& c = ctx.config;
  // The live view, as the daemon (or the last run) left it: through the
  // daemon when it runs, else opened here. (Not as a RocksDB secondary:
  // RocksDB 7.8 crashes reading blob files through one.)
  std::map<std::int32_t, std::int64_t> positions;
  std::string live_digest;
  if (auto fd = admin::connect(admin_socket_path(c))) {
    auto reply = admin::command(*fd, "digest");
    ::close(*fd);
    if (!reply || !reply->ok) {
      fmt::print(stderr, "a3ctl: the daemon did not give its view's digest: {}\n",
                 reply ? reply->text : std::string("connection closed"));
      return 1;
    }
    const auto nl = reply->text.find('\n');
    live_digest = reply->text.substr(nl + 1);
    std::istringstream words(reply->text.substr(0, nl));
    std::string po;
    while (words >> po) {
      const auto colon = po.find(':');
      positions[std::stoi(po.substr(0, colon))] = std::stoll(po.substr(colon + 1));
    }
  } else {
    auto live = projections::view::ViewDb::open(c.store.path);
    const auto d = live->digest_with_positions();
    positions = d.positions;
    live_digest = d.digest;
  }

  auto log = eventlog::open(c, eventlog::Access::snapshot);
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
  fmt::print("live view   at {}: {}\nfresh replay at {}: {}\n", offsets_text(positions),
             live_digest, offsets_text(positions), fresh_digest);
  if (live_digest != fresh_digest) {
    fmt::print("MISMATCH: the view differs from its log; rebuild it with a3ctl replay\n");
    return 1;
  }
  fmt::print("OK: the view is exactly what its log says\n");
  return 0;
}

}  // namespace a3::ctl
