// The embedded event log: one RocksDB database, records keyed by
// big-endian (partition, offset), appended by one writer thread that
// group-commits: every append waiting while a sync is in progress joins the
// next synced WriteBatch, so many appenders share one fsync.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "eventlog/event_log.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Env;
}  // namespace rocksdb

namespace a3::eventlog::local {

struct Options {
  std::filesystem::path path;
  std::int32_t partitions = 1;
  std::size_t max_batch_records = 4096;
  std::size_t max_batch_bytes = 64 << 20;
  std::size_t max_record_bytes = 256 << 20;
  // Read-only follower of a log another process writes (RocksDB secondary
  // instance); it catches up on every poll. Appends fail with read_only.
  bool read_only = false;
  // With read_only: follow the writer (a secondary instance), or read the
  // log as it is at open (a read-only instance: no following, but safe with
  // blob files, which RocksDB 7.8's secondary instances crash on).
  bool follow = true;
  // For fault-injection tests only: the RocksDB environment to use.
  rocksdb::Env* env = nullptr;
};

struct Stats {
  std::uint64_t records = 0;
  std::uint64_t batches = 0;  // synced writes
  std::uint64_t bytes = 0;
};

class LocalLog final : public EventLog {
 public:
  // Opens (creating if needed, unless read_only) the log. Throws
  // std::runtime_error with a message for operators (path, reason).
  static std::unique_ptr<LocalLog> open(const Options& options);
  ~LocalLog() override;

  std::int32_t partitions() const override { return partitions_; }
  void append_async(std::string key, std::string value, AppendHandler done) override;
  boost::system::result<std::unique_ptr<Reader>> open_reader(Position from) override;
  boost::system::result<std::int64_t> end_offset(std::int32_t partition) override;
  void wait_for_records(const std::vector<std::int64_t>& next,
                        std::chrono::milliseconds wait) override;
  std::string failure() const override;
  void close() override;

  Stats stats() const;

  // For backups and restores (projections/backup.h): runs `f` with the
  // RocksDB handle of the log (null while it is being reopened after a
  // failed write), and cuts a closed log's copy at per-partition end
  // offsets (records at or after them are deleted; the copy is a new
  // timeline).
  template <class F>
  auto with_rocks(F&& f) const {
    std::shared_lock lock(db_mu_);
    return f(db_.get());
  }
  static void truncate(const std::filesystem::path& path,
                       const std::map<std::int32_t, std::int64_t>& ends);

 private:
  friend class LocalReader;
  struct Pending {
    std::int32_t partition;
    std::string key;
    std::string value;
    AppendHandler done;
  };

  LocalLog() = default;
  struct Opened {
    std::unique_ptr<rocksdb::DB> db;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;  // default, meta
  };
  struct Ends {
    std::vector<std::int64_t> next, last_ts;
  };
  Opened open_db();
  static void close_rocks(Opened& o);
  void close_db();
  Ends read_ends(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* records) const;
  void set_ends(Ends e);
  void wait_for_reopen(std::chrono::milliseconds wait);
  void writer_loop();
  void recover();
  void completer_loop();
  void shut_down();
  bool closed() const;
  std::int64_t committed_end(std::int32_t partition);  // read-only: catches up first
  bool wait_for_data(std::int32_t partition, std::int64_t offset, std::chrono::milliseconds wait);

  Options options_;
  std::int32_t partitions_ = 1;
  // Shared by readers, exclusive while the writer reopens the database.
  mutable std::shared_mutex db_mu_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // default, meta
  std::filesystem::path secondary_dir_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // writer waits for appends
  std::condition_variable data_cv_;  // readers wait for commits
  std::deque<Pending> queue_;
  bool closing_ = false;
  bool writer_idle_ = false;  // the writer waits on work_cv_
  bool reopening_ = false;    // recover() runs: db_ may be null
  std::string failure_;
  std::vector<std::int64_t> committed_;  // per partition, guarded by mu_
  std::vector<std::int64_t> last_ts_;    // per partition, writer thread only
  std::vector<std::int64_t> next_;       // per partition, writer thread only
  Stats stats_;                          // guarded by mu_
  std::mutex catch_up_mu_;               // read-only mode
  std::thread writer_;

  // Synced batches waiting for their appenders to be answered. A thread of
  // its own answers them, so that waking dozens of appenders overlaps the
  // next batch's fsync instead of delaying it.
  struct Synced {
    std::deque<Pending> batch;
    std::vector<Position> positions;
    std::optional<errc> error;  // the whole batch failed
  };
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::deque<Synced> done_queue_;
  std::size_t completing_ = 0;  // batches handed to the completer, not yet answered
  bool writer_finished_ = false;
  std::thread completer_;
  std::once_flag close_once_;
};

}  // namespace a3::eventlog::local
