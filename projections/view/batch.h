// A set of changes to the view that is written atomically, readable before it
// is written (RocksDB WriteBatchWithIndex over the database): the projector
// applies many events into one batch and commits them with their positions.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <rocksdb/utilities/write_batch_with_index.h>

#include "projections/view/view_db.h"

namespace a3::projections::view {

class Batch {
 public:
  explicit Batch(ViewDb& db) : db_(db), wb_(rocksdb::BytewiseComparator(), 0, true) {}

  std::optional<std::string> get(Family f, std::string_view key);
  void put(Family f, std::string_view key, std::string_view value);
  void del(Family f, std::string_view key);
  // Visits keys starting with `prefix` in order, including this batch's
  // changes; stops when the visitor returns false.
  void scan(Family f, std::string_view prefix,
            const std::function<bool(std::string_view key, std::string_view value)>& visit);

  std::size_t count() { return static_cast<std::size_t>(wb_.GetWriteBatch()->Count()); }
  // Writes everything atomically. The view is rebuilt from the log, so the
  // write is not synced: a crash loses at most whole batches, positions
  // included, and they are applied again.
  rocksdb::Status commit();
  void clear() { wb_.Clear(); }

 private:
  ViewDb& db_;
  rocksdb::WriteBatchWithIndex wb_;
};

}  // namespace a3::projections::view
