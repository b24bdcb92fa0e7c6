// Point-in-time backups and restores of the store.
//
// A backup holds, in RocksDB BackupEngine directories (incremental: files
// already backed up are shared; every file is checksummed), the mailbox view
// and, in local mode, the event log, with a manifest of offsets: the view's
// positions and the log's ends when it was taken.
//
// A restore to a target (per-partition end offsets, or a time resolved to
// offsets) builds a new store whose log ends exactly at the target and whose
// view is the newest backup at or before the target, replayed up to it. The
// store it replaces is moved aside under data_dir/timelines/, never deleted:
// like PostgreSQL's PITR, a restore starts a new timeline.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "eventlog/local/local_log.h"
#include "projections/view/view_db.h"

namespace a3::projections::backup {

using Offsets = std::map<std::int32_t, std::int64_t>;

struct Manifest {
  std::uint32_t id = 0;  // the view backup's id
  std::int64_t time_ms = 0;
  Offsets view_positions;  // next offsets the view had applied
  Offsets log_ends;        // the backed-up log's ends (local mode)
  bool has_log = false;
};

// Backs up `view` and, if given, the local `log` into `dir`. The view goes
// first: the log, which only grows, then covers every position it names.
// Throws std::runtime_error.
Manifest create(const std::filesystem::path& dir, view::ViewDb& view,
                eventlog::local::LocalLog* log);

std::vector<Manifest> list(const std::filesystem::path& dir);

// Retention: keeps the newest `keep` backups (0: no such limit) and those
// younger than `keep_days` (0: no such limit); the newest is always kept.
// The log's backups are pruned the same way, and the sets/<id>/ folders of
// deleted backups (the audit dump, the configuration) go with them.
// Returns the ids deleted. Throws std::runtime_error.
std::vector<std::uint32_t> prune(const std::filesystem::path& dir, std::size_t keep, int keep_days);

struct Target {
  std::optional<Offsets> offsets;       // restore so that the log ends here
  std::optional<std::int64_t> time_ms;  // or: the first offsets at or after this time
};

struct Restored {
  Offsets ends;                  // the new log's ends
  std::string digest;            // the new view's digest
  std::optional<Manifest> base;  // the view backup it started from
  std::filesystem::path aside;   // where the previous store went
};

// Offline (the daemon stopped): builds the new store at log_path/view_path.
// `progress` is called while replaying. Throws std::runtime_error.
Restored restore(const std::filesystem::path& dir, const std::filesystem::path& log_path,
                 const std::filesystem::path& view_path, const std::filesystem::path& aside_root,
                 std::int32_t partitions, const Target& target,
                 const std::function<void(std::int64_t, std::int64_t)>& progress = {});

}  // namespace a3::projections::backup
