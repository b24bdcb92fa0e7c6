#include "projections/backup.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <stdexcept>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/utilities/backup_engine.h>
#include <rocksdb/utilities/checkpoint.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "projections/projector.h"

namespace a3::projections::backup {

namespace {

namespace fs = std::filesystem;

std::string offsets_text(const Offsets& o) {
  std::string s;
  for (const auto& [p, off] : o)
    s += fmt::format("{}{}:{}", s.empty() ? "" : ",", p, off);
  return s;
}

Offsets parse_offsets(const std::string& s) {
  Offsets o;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto colon = item.find(':');
    if (colon == std::string::npos) continue;
    o[std::stoi(item.substr(0, colon))] = std::stoll(item.substr(colon + 1));
  }
  return o;
}

// app_metadata: "time_ms;view positions;log ends;has_log"
std::string metadata(const Manifest& m) {
  return fmt::format("a3v1;{};{};{};{}", m.time_ms, offsets_text(m.view_positions),
                     offsets_text(m.log_ends), m.has_log ? 1 : 0);
}

std::optional<Manifest> parse_metadata(std::uint32_t id, const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ';'))
    parts.push_back(part);
  if (parts.size() != 5 || parts[0] != "a3v1") return std::nullopt;
  Manifest m;
  m.id = id;
  m.time_ms = std::stoll(parts[1]);
  m.view_positions = parse_offsets(parts[2]);
  m.log_ends = parse_offsets(parts[3]);
  m.has_log = parts[4] == "1";
  return m;
}

std::unique_ptr<rocksdb::BackupEngine> engine(const fs::path& dir) {
  rocksdb::BackupEngine* be = nullptr;
  rocksdb::BackupEngineOptions options(dir.string());
  options.share_files_with_checksum = true;  // incremental, and verified on restore
  const auto s = rocksdb::BackupEngine::Open(rocksdb::Env::Default(), options, &be);
  if (!s.ok()) throw std::runtime_error(fmt::format("backup: {}: {}", dir.string(), s.ToString()));
  return std::unique_ptr<rocksdb::BackupEngine>(be);
}

void check(const rocksdb::Status& s, std::string_view what) {
  if (!s.ok()) throw std::runtime_error(fmt::format("{}: {}", what, s.ToString()));
}

bool covers(const Offsets& have, const Offsets& need) {
  for (const auto& [p, off] : need) {
    const auto it = have.find(p);
    if ((it == have.end() ? 0 : it->second) < off) return false;
  }
  return true;
}

Offsets ends_of(eventlog::EventLog& log) {
  Offsets o;
  for (std::int32_t p = 0; p < log.partitions(); ++p) {
    auto end = log.end_offset(p);
    if (!end) throw std::runtime_error("cannot read the log's end: " + end.error().message());
    o[p] = *end;
  }
  return o;
}

}  // namespace

Manifest create(const fs::path& dir, view::ViewDb& view, eventlog::local::LocalLog* log) {
  fs::create_directories(dir);
  Manifest m;
  m.time_ms = now_ms();
  m.view_positions = view.positions();
  m.has_log = log != nullptr;
  if (log) m.log_ends = ends_of(*log);
  // The view first: the log only grows, so a later copy of it covers every
  // position the view names.
  rocksdb::CreateBackupOptions opts;
  opts.flush_before_backup = true;
  rocksdb::BackupID id = 0;
  // The view may advance while it is copied (a hot backup), so the copy can
  // be ahead of the positions recorded here: restore() checks the positions
  // inside the restored view itself before using it.
  check(engine(dir / "view")->CreateNewBackupWithMetadata(opts, view.db(), metadata(m), &id),
        "backup of the view");
  m.id = id;
  if (log) {
    m.log_ends = ends_of(*log);
    log->with_rocks([&](rocksdb::DB* db) {
      if (!db) throw std::runtime_error("backup of the log: the log is reopening after a failure");
      check(engine(dir / "log")->CreateNewBackupWithMetadata(opts, db, metadata(m)),
            "backup of the log");
    });
  }
  return m;
}

namespace {

// The backups of one engine to delete under the retention rules.
std::vector<rocksdb::BackupID> expired(rocksdb::BackupEngine& be, std::size_t keep, int keep_days,
                                       std::int64_t now_s) {
  std::vector<rocksdb::BackupInfo> infos;
  be.GetBackupInfo(&infos, /*include_file_details=*/false);
  std::sort(infos.begin(), infos.end(), [](const auto& a, const auto& b) {
    return a.backup_id > b.backup_id;
  });  // newest first
  std::vector<rocksdb::BackupID> out;
  for (std::size_t i = 1; i < infos.size(); ++i) {  // the newest always stays
    const bool too_many = keep > 0 && i >= keep;
    const bool too_old =
        keep_days > 0 && infos[i].timestamp < now_s - std::int64_t{keep_days} * 86400;
    if (too_many || too_old) out.push_back(infos[i].backup_id);
  }
  return out;
}

}  // namespace

std::vector<std::uint32_t> prune(const fs::path& dir, std::size_t keep, int keep_days) {
  std::vector<std::uint32_t> deleted;
  const std::int64_t now_s = now_ms() / 1000;
  for (const char* part : {"view", "log"}) {
    if (!fs::exists(dir / part)) continue;
    auto be = engine(dir / part);
    for (const auto id : expired(*be, keep, keep_days, now_s)) {
      check(be->DeleteBackup(id), fmt::format("deleting backup {} of the {}", id, part));
      if (std::string_view(part) == "view") {
        deleted.push_back(id);
        std::error_code ec;
        fs::remove_all(dir / "sets" / std::to_string(id), ec);
      }
    }
    check(be->GarbageCollect(), fmt::format("collecting the {} backups' files", part));
  }
  return deleted;
}

std::vector<Manifest> list(const fs::path& dir) {
  std::vector<Manifest> out;
  if (!fs::exists(dir / "view")) return out;
  std::vector<rocksdb::BackupInfo> infos;
  engine(dir / "view")->GetBackupInfo(&infos, /*include_file_details=*/false);
  for (const auto& i : infos) {
    if (auto m = parse_metadata(i.backup_id, i.app_metadata)) out.push_back(*m);
  }
  return out;
}

Restored restore(const fs::path& dir, const fs::path& log_path, const fs::path& view_path,
                 const fs::path& aside_root, std::int32_t partitions, const Target& target,
                 const std::function<void(std::int64_t, std::int64_t)>& progress) {
  Restored result;
  const std::string suffix = fmt::format(".restore-{}", ::getpid());
  const fs::path new_log = log_path.string() + suffix, new_view = view_path.string() + suffix;
  const fs::path backup_log = log_path.string() + suffix + "-source";
  // Whatever happens, no half-built store is left behind.
  struct Cleanup {
    std::vector<fs::path> paths;
    ~Cleanup() {
      std::error_code ec;
      for (const auto& p : paths)
        fs::remove_all(p, ec);
    }
  } cleanup{{new_log, new_view, backup_log}};
  fs::remove_all(new_log);
  fs::remove_all(new_view);
  fs::remove_all(backup_log);

  // The source of events: the live log if it reaches the target, else the
  // newest backup of the log.
  eventlog::local::Options lo;
  lo.partitions = partitions;
  std::unique_ptr<eventlog::local::LocalLog> source;
  auto open_live = [&] {
    lo.path = log_path;
    return eventlog::local::LocalLog::open(lo);
  };
  auto open_backup = [&] {
    if (!fs::exists(dir / "log")) throw std::runtime_error("the backup holds no event log");
    check(engine(dir / "log")->RestoreDBFromLatestBackup(backup_log.string(), backup_log.string()),
          "restoring the log backup");
    lo.path = backup_log;
    return eventlog::local::LocalLog::open(lo);
  };
  if (fs::exists(log_path / "CURRENT")) source = open_live();

  auto resolve = [&](eventlog::EventLog& log) {
    Offsets ends = ends_of(log);
    if (target.offsets) {
      for (const auto& [p, off] : *target.offsets)
        ends[p] = off;
    } else if (target.time_ms) {
      for (auto& [p, off] : ends) {
        auto at = log.offset_for_time(p, *target.time_ms);
        if (!at) throw std::runtime_error("cannot resolve the time: " + at.error().message());
        off = *at;
      }
    }
    return ends;
  };
  Offsets targets = source ? resolve(*source) : Offsets{};
  if (!source || !covers(ends_of(*source), targets)) {
    source.reset();
    source = open_backup();
    targets = resolve(*source);
    if (!covers(ends_of(*source), targets)) {
      throw std::runtime_error(
          fmt::format("neither the live log nor the backup reaches {}", offsets_text(targets)));
    }
  }

  // The new log: a checkpoint (hard links) of the source, cut at the target.
  {
    source->with_rocks([&](rocksdb::DB* db) {
      rocksdb::Checkpoint* cp = nullptr;
      check(rocksdb::Checkpoint::Create(db, &cp), "checkpoint");
      std::unique_ptr<rocksdb::Checkpoint> owner(cp);
      check(cp->CreateCheckpoint(new_log.string()), "checkpoint of the log");
    });
  }
  source->close();
  source.reset();
  fs::remove_all(backup_log);
  eventlog::local::LocalLog::truncate(new_log, targets);

  // The view: the newest backup at or before the target, then replay. A
  // hot backup's copy may be ahead of its manifest: check the positions
  // stored in the restored view itself, and fall back to an older backup.
  std::vector<Manifest> candidates;
  for (const auto& m : list(dir)) {
    if (covers(targets, m.view_positions)) candidates.push_back(m);
  }
  while (!candidates.empty()) {
    const Manifest m = candidates.back();
    candidates.pop_back();
    fs::remove_all(new_view);
    check(engine(dir / "view")->RestoreDBFromBackup(m.id, new_view.string(), new_view.string()),
          "restoring the view backup");
    Offsets actual;
    {
      auto probe = view::ViewDb::open(new_view);
      actual = probe->positions();
    }
    if (covers(targets, actual)) {
      result.base = m;
      result.base->view_positions = actual;
      break;
    }
  }
  if (!result.base) fs::remove_all(new_view);
  {
    lo.path = new_log;
    auto log = eventlog::local::LocalLog::open(lo);
    auto view = view::ViewDb::open(new_view);
    view->set_wal(false);  // a bulk rebuild; closed (and flushed) before it is used
    Projector projector(*log, *view, 4096);
    if (!projector.catch_up(progress)) throw std::runtime_error(projector.failure());
    result.ends = ends_of(*log);
    result.digest = view->digest();
  }

  // Swap: the replaced store goes aside as a timeline; nothing is deleted.
  const std::chrono::sys_seconds now =
      std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  const std::string stamp = fmt::format("{:%Y%m%dT%H%M%SZ}", now);
  result.aside = aside_root / stamp;
  for (int n = 2; fs::exists(result.aside); ++n) {
    result.aside = aside_root / fmt::format("{}-{}", stamp, n);
  }
  fs::create_directories(result.aside);
  if (fs::exists(log_path)) fs::rename(log_path, result.aside / "log");
  if (fs::exists(view_path)) fs::rename(view_path, result.aside / "view");
  fs::rename(new_log, log_path);
  fs::rename(new_view, view_path);
  return result;
}

}  // namespace a3::projections::backup
