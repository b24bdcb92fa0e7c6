// The store's timelines: which history of the log this data directory holds.
// A restore (a3ctl restore) cuts the log at its target and starts the next
// timeline there, as PostgreSQL's point-in-time recovery does; the events
// appended after it reuse the offsets of the discarded ones. The audit
// trail reads the history to keep them apart (docs/recovery.md).
//
// Kept in data_dir/timeline, one line per timeline after the first (no file:
// timeline 1 alone); backup sets keep a copy, so that a store restored on a
// new machine goes on counting.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <vector>

namespace a3::projections {

struct Timeline {
  int id = 1;
  std::map<std::int32_t, std::int64_t> branched_at;  // the log's ends where it began
  std::int64_t at_ms = 0;                            // when it began
};

// Every timeline after the first, oldest first. `file` is data_dir/timeline
// (or a backup set's copy). Throws std::runtime_error for a file that is
// not a timeline history.
std::vector<Timeline> read_timelines(const std::filesystem::path& file);
// The newest: the last of the history, or timeline 1.
Timeline current_timeline(const std::vector<Timeline>& history);
// Atomically (a temporary file, fsync, rename). Throws std::runtime_error.
void write_timelines(const std::filesystem::path& file, const std::vector<Timeline>& history);

}  // namespace a3::projections
