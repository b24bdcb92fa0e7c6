// A set of changes to the view that is written atomically and readable
// before it is written: the projector applies many events into one batch and
// commits them with their positions in one RocksDB write.
//
// Changes are kept in an ordered overlay (the latest value of each key), so
// an event reads what earlier events of the batch wrote, and a key written by
// many events of the batch (a mailbox's counters, a message's flags) is
// written to RocksDB once. Message bodies skip the overlay: they go straight
// into the write batch and are never read back while applying.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <rocksdb/status.h>
#include <rocksdb/write_batch.h>

#include "projections/view/view_db.h"

namespace a3::projections::view {

class Batch {
 public:
  explicit Batch(ViewDb& db) : db_(db) {}

  std::optional<std::string> get(Family f, std::string_view key);
  void put(Family f, std::string_view key, std::string_view value);
  void del(Family f, std::string_view key);
  // Visits keys starting with `prefix` in order, including this batch's
  // changes; stops when the visitor returns false.
  void scan(Family f, std::string_view prefix,
            const std::function<bool(std::string_view key, std::string_view value)>& visit);

  // Visits keys from `begin` to before `end` in order, including this
  // batch's changes.
  void scan_range(Family f, std::string_view begin, std::string_view end,
                  const std::function<void(std::string_view key)>& visit);

  // Bytes of message bodies in the batch, to bound its memory.
  std::size_t body_bytes() const { return body_bytes_; }

  // Writes everything atomically, unsynced (and without the WAL during bulk
  // rebuilds): a crash loses at most whole batches, positions included, and
  // they are applied again from the log.
  rocksdb::Status commit();

 private:
  static std::string overlay_key(Family f, std::string_view key);

  ViewDb& db_;
  std::map<std::string, std::optional<std::string>> writes_;  // family byte | key
  std::unordered_map<std::string, std::optional<std::string>> reads_;
  rocksdb::WriteBatch bodies_;
  std::size_t body_bytes_ = 0;
};

}  // namespace a3::projections::view
