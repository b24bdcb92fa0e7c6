// a3ctl backup / restore: point-in-time backups by log offset.
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <libpq-fe.h>

#include "eventlog/local/local_log.h"
#include "eventlog/open.h"
#include "frontends/admin/protocol.h"
#include "projections/backup.h"
#include "projections/projector.h"
#include "projections/timeline.h"
#include "tools/a3ctl/commands.h"
#include "tools/a3ctl/output.h"
#include "tools/a3ctl/store_access.h"

extern char** environ;

namespace a3::ctl {

namespace {

namespace fs = std::filesystem;
using projections::backup::Offsets;

std::string time_text(std::int64_t ms) {
  const std::chrono::sys_time<std::chrono::milliseconds> t{std::chrono::milliseconds(ms)};
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", t);
}

}  // namespace

// "2026-11-25T22:00:00Z", "2026-11-25 22:00:00" (UTC) or "@<ms since epoch>".
std::optional<std::int64_t> parse_time_arg(const std::string& s) {
  if (s.size() > 1 && s[0] == '@') {
    try {
      return std::stoll(s.substr(1));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  tm t{};
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &t.tm_year, &t.tm_mon, &t.tm_mday,
                  &t.tm_hour, &t.tm_min, &t.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  const std::string rest = s.substr(static_cast<std::size_t>(consumed));
  if (!rest.empty() && rest != "Z") return std::nullopt;
  t.tm_year -= 1900;
  t.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&t)) * 1000;
}

namespace {

// Files a3ctl made as root under a directory owned by the daemon's user
// become that user's, or the daemon could not open them.
void give_to_owner(const fs::path& owner_of, const std::vector<fs::path>& paths) {
  if (geteuid() != 0) return;
  struct stat st {};
  if (::stat(owner_of.c_str(), &st) != 0 || st.st_uid == 0) return;
  for (const auto& p : paths) {
    std::error_code ec;
    if (!fs::exists(p, ec)) continue;
    (void)::lchown(p.c_str(), st.st_uid, st.st_gid);
    if (!fs::is_directory(p, ec)) continue;
    for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::end(it);
         it.increment(ec))
      (void)::lchown(it->path().c_str(), st.st_uid, st.st_gid);
  }
}

// `conninfo` without its password (a keyword string), and the password.
std::pair<std::string, std::string> split_password(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    std::string why = err ? err : "not a connection string";
    PQfreemem(err);
    throw std::runtime_error("the database's connection string: " + why);
  }
  std::string rest, password;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    const std::string key = o->keyword, val = o->val;
    if (key == "password") {
      password = val;
      continue;
    }
    std::string quoted = "'";
    for (char ch : val) {
      if (ch == '\'' || ch == '\\') quoted += '\\';
      quoted += ch;
    }
    rest += (rest.empty() ? "" : " ") + key + "=" + quoted + "'";
  }
  PQconninfoFree(opts);
  return {rest, password};
}

// The rest of a backup set, beside the store's backup `id`: the
// configuration in force (0600: it may hold secrets), the timeline history,
// and, with the audit trail on, its tables as pg_dump writes them (custom
// format: compressed, for pg_restore). Throws std::runtime_error when the
// dump fails (the rest is in place).
void complete_set(const config::Config& c, const fs::path& dir, std::uint32_t id) {
  const fs::path set = dir / "sets" / std::to_string(id);
  fs::create_directories(set);
  fs::copy_file(c.source, set / "config.toml", fs::copy_options::overwrite_existing);
  fs::permissions(set / "config.toml", fs::perms::owner_read | fs::perms::owner_write);
  if (fs::exists(c.server.data_dir / "timeline"))
    fs::copy_file(c.server.data_dir / "timeline", set / "timeline",
                  fs::copy_options::overwrite_existing);
  if (!c.audit_trail()) return;
  // The password goes through the environment, never the command line
  // (which ps shows); everything is built before the child exists.
  const auto [conninfo, password] = split_password(c.database.conninfo());
  const std::string out = (set / "audit.pgdump").string();
  std::vector<std::string> args = {"pg_dump",
                                   "--format=custom",
                                   "--table=audit_*",
                                   "--table=a3_schema_migrations",
                                   "--dbname=" + conninfo,
                                   "--file=" + out};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (!std::string_view(*e).starts_with("PGPASSWORD=")) env.emplace_back(*e);
  if (!password.empty()) env.push_back("PGPASSWORD=" + password);
  std::vector<char*> argv, envp;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  if (const int e = posix_spawnp(&pid, "pg_dump", nullptr, nullptr, argv.data(), envp.data()))
    throw std::runtime_error(fmt::format(
        "the store's backup {} is taken, but pg_dump cannot run: {} (install postgresql-client)",
        id, std::strerror(e)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waiting for pg_dump failed");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::error_code ec;
    fs::remove(out, ec);
    throw std::runtime_error(fmt::format(
        "the store's backup {} is taken, but pg_dump of the audit trail failed (exit {})", id,
        WIFEXITED(status) ? WEXITSTATUS(status) : -1));
  }
}

std::optional<long> number(const std::string& s) {
  long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

}  // namespace

int backup_command(Context& ctx) {
  const auto& c = ctx.config;
  bool list = false;
  std::optional<fs::path> dir;
  std::size_t keep = 0;
  int keep_days = 0;
  const auto& a = ctx.args;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "--list") {
      list = true;
    } else if ((a[i] == "--keep" || a[i] == "--keep-days") && i + 1 < a.size()) {
      const auto n = number(a[i + 1]);
      if (!n || *n == 0 || *n > 100000)
        return fmt::print(stderr, "a3ctl: {} expects a number from 1 to 100000 (got '{}')\n", a[i],
                          a[i + 1]),
               2;
      if (a[i] == "--keep") {
        keep = static_cast<std::size_t>(*n);
      } else {
        keep_days = static_cast<int>(*n);
      }
      ++i;
    } else if (!dir && !a[i].starts_with("--")) {
      dir = a[i];
    } else {
      fmt::print(stderr, "a3ctl: unexpected argument '{}'\n", a[i]);
      return 2;
    }
  }
  if (!dir) return fmt::print(stderr, "a3ctl: backup needs a DIR\n"), 2;
  fs::create_directories(*dir);
  give_to_owner(c.server.data_dir, {*dir});  // the daemon writes hot backups there
  // One backup, set and pruning in DIR at a time (a timer and a cron line
  // may overlap): pruning must not collect files a backup is writing.
  const int lock = ::open((*dir / ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0 || ::flock(lock, LOCK_EX) != 0)
    return fmt::print(stderr, "a3ctl: cannot lock {}: {}\n", (*dir / ".lock").string(),
                      std::strerror(errno)),
           1;
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock};
  if (list) {
    for (const auto& m : projections::backup::list(*dir)) {
      const fs::path set = *dir / "sets" / std::to_string(m.id);
      std::string extras;
      if (fs::exists(set / "config.toml")) extras += "  config";
      if (fs::exists(set / "audit.pgdump")) extras += "  audit";
      fmt::print("backup {}  {}  view at {}  log {}{}\n", m.id, time_text(m.time_ms),
                 offsets_text(m.view_positions),
                 m.has_log ? "ends " + offsets_text(m.log_ends) : std::string("not included"),
                 extras);
    }
    return 0;
  }
  if (auto fd = admin::connect(admin_socket_path(c))) {
    // Hot backup: the running daemon takes it. The path must mean the same
    // to it, so make it absolute.
    auto reply = admin::command(*fd, "backup " + fs::absolute(*dir).string());
    ::close(*fd);
    if (!reply) return fmt::print(stderr, "a3ctl: the daemon closed the admin connection\n"), 1;
    if (!reply->ok) return fmt::print(stderr, "a3ctl: {}\n", reply->text), 1;
    fmt::print("{}\n", reply->text);
  } else {
    auto log = eventlog::open(c, eventlog::Access::read_write);
    auto view = projections::view::ViewDb::open(c.store.path);
    {
      // The backup holds an up-to-date view.
      projections::Projector projector(*log, *view);
      if (!projector.catch_up()) throw std::runtime_error(projector.failure());
    }
    auto* local = dynamic_cast<eventlog::local::LocalLog*>(log.get());
    const auto m = projections::backup::create(*dir, *view, local);
    fmt::print("backup {} in {}: view at {}, log {}\n", m.id, fs::absolute(*dir).string(),
               offsets_text(m.view_positions),
               local ? "ends " + offsets_text(m.log_ends)
                     : std::string("not included (Kafka keeps it: retention.ms=-1)"));
  }
  // The newest backup is the one just taken (the lock keeps others out).
  const auto all = projections::backup::list(*dir);
  if (all.empty()) throw std::runtime_error("the backup is not in " + dir->string());
  const std::uint32_t id =
      std::max_element(all.begin(), all.end(), [](auto& x, auto& y) { return x.id < y.id; })->id;
  std::string dump_failed;
  try {
    complete_set(c, *dir, id);
  } catch (const std::exception& e) {
    dump_failed = e.what();  // the store's backup is good: retention still runs
  }
  if (dump_failed.empty()) {
    fmt::print("set {}: the configuration{}\n", id,
               fs::exists(*dir / "sets" / std::to_string(id) / "audit.pgdump")
                   ? " and the audit trail (audit.pgdump)"
                   : "");
  }
  if (keep || keep_days) {
    const auto gone = projections::backup::prune(*dir, keep, keep_days);
    fmt::print("retention: {} backup{} deleted{}\n", gone.size(), gone.size() == 1 ? "" : "s",
               gone.empty() ? std::string() : fmt::format(" ({})", fmt::join(gone, ", ")));
  }
  give_to_owner(c.server.data_dir, {*dir});
  if (!dump_failed.empty()) return fmt::print(stderr, "a3ctl: {}\n", dump_failed), 1;
  return 0;
}

int restore_command(Context& ctx) {
  const auto& c = ctx.config;
  std::optional<fs::path> dir;
  projections::backup::Target target;
  const auto& a = ctx.args;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "--to-offset" && i + 1 < a.size()) {
      auto p = eventlog::Position::parse(a[++i]);
      if (!p) return fmt::print(stderr, "a3ctl: --to-offset expects P:O (got '{}')\n", a[i]), 2;
      if (!target.offsets) target.offsets.emplace();
      (*target.offsets)[p->partition] = p->offset;
    } else if (a[i] == "--to-time" && i + 1 < a.size()) {
      target.time_ms = parse_time_arg(a[++i]);
      if (!target.time_ms) {
        fmt::print(stderr, "a3ctl: --to-time expects 2026-11-25T22:00:00Z or @<ms> (got '{}')\n",
                   a[i]);
        return 2;
      }
    } else if (!dir && !a[i].starts_with("--")) {
      dir = a[i];
    } else {
      fmt::print(stderr, "a3ctl: unexpected argument '{}'\n", a[i]);
      return 2;
    }
  }
  if (!dir) return fmt::print(stderr, "a3ctl: restore needs the backup DIR\n"), 2;
  if (target.offsets && target.time_ms) {
    return fmt::print(stderr, "a3ctl: give --to-offset or --to-time, not both\n"), 2;
  }
  if (c.eventlog.backend != "local") {
    fmt::print(stderr,
               "a3ctl: restoring to a point in time needs the local log; with Kafka, rebuild the "
               "view with a3ctl replay\n");
    return 1;
  }
  if (daemon_running(c)) {
    fmt::print(stderr, "a3ctl: the daemon is running; stop it first\n");
    return 1;
  }
  if (target.offsets) {
    for (const auto& [p, off] : *target.offsets) {
      if (p >= c.eventlog.partitions) {
        return fmt::print(stderr, "a3ctl: the log has {} partitions\n", c.eventlog.partitions), 2;
      }
      (void)off;
    }
  }
  ProgressBar progress("restore");
  const auto r = projections::backup::restore(*dir, c.eventlog.path, c.store.path,
                                              c.server.data_dir / "timelines",
                                              c.eventlog.partitions, target, progress);
  fmt::print("restored: the log ends at {}; view digest {}\n", offsets_text(r.ends), r.digest);
  fmt::print("started from {}\n",
             r.base ? fmt::format("backup {} (view at {})", r.base->id,
                                  offsets_text(r.base->view_positions))
                    : std::string("an empty view (no backup at or before the target)"));
  fmt::print("the previous store (with any later events) is kept in {}\n", r.aside.string());
  // A new history from here: the audit trail keeps the two apart. It goes
  // on from the longest history known, here or in the backup's sets (a
  // store restored on a new machine).
  auto history = projections::read_timelines(c.server.data_dir / "timeline");
  std::error_code ec;
  for (const auto& set : fs::directory_iterator(*dir / "sets", ec)) {
    auto kept = projections::read_timelines(set.path() / "timeline");
    if (projections::current_timeline(kept).id > projections::current_timeline(history).id)
      history = std::move(kept);
  }
  projections::Timeline t;
  t.id = projections::current_timeline(history).id + 1;
  t.branched_at = r.ends;
  t.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  history.push_back(t);
  projections::write_timelines(c.server.data_dir / "timeline", history);
  give_to_owner(c.server.data_dir, {c.eventlog.path, c.store.path, c.server.data_dir / "timeline"});
  fmt::print("timeline {} begins at {}\n", t.id, offsets_text(r.ends));
  return 0;
}

}  // namespace a3::ctl
