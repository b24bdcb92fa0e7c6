// The store's timeline: which history of the log this data directory holds.
// A restore (a3ctl restore) cuts the log at its target and starts the next
// timeline there, as PostgreSQL's point-in-time recovery does; the events
// appended after it reuse the offsets of the discarded ones. The audit
// trail reads the timeline to keep the two histories apart
// (docs/recovery.md). Kept in data_dir/timeline; no file is timeline 1.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>

namespace a3::projections {

struct Timeline {
  int id = 1;
  std::map<std::int32_t, std::int64_t> branched_at;  // the log's ends where it began
  std::int64_t at_ms = 0;                            // when it began
};

// Throws std::runtime_error for a file that is not a timeline.
Timeline read_timeline(const std::filesystem::path& data_dir);
// Atomically (a temporary file, fsync, rename). Throws std::runtime_error.
void write_timeline(const std::filesystem::path& data_dir, const Timeline& t);

}  // namespace a3::projections
