// The RocksDB database holding the mailbox view: column families, opening
// (writer or read-only follower), positions, and a digest for comparing views.
#pragma once

#include <array>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rocksdb {
class DB;
struct ReadOptions;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace a3::projections::view {

enum class Family : int {
  accounts = 0,  // index into handles; order of kFamilyNames
  addresses,
  mailboxes,
  mailbox_state,
  messages,
  expunged,
  blobs,
  blob_refs,
  mime,  // sha256 -> the body's MIME summary (mime::Summary)
  subscriptions,
  applied,
  meta,
  staging,    // started_ms | blob id | seq -> a BodyChunk's bytes, until used
  changes,    // mailbox | MODSEQ | UID -> "" (present) or "x" (expunged): CONDSTORE index
  queue,      // outbound: queue id -> QueueRecord
  queue_due,  // outbound: next attempt | queue id -> account
  count_,
};

// The layout of the view's column families; a view written by an older
// layout must be rebuilt (a3ctl replay) before this version uses it.
constexpr int kViewFormat = 2;

class ViewDb {
 public:
  // Opens (creating if needed) the view at `path`. read_only opens a RocksDB
  // read-only instance of a view the daemon writes: what it held at open;
  // catch_up() opens it again to see the daemon's latest state.
  // `block_cache` bytes of uncompressed blocks are kept in memory (the
  // guide's [performance] cache_size). Throws std::runtime_error with a
  // message for operators.
  static std::unique_ptr<ViewDb> open(const std::filesystem::path& path, bool read_only = false,
                                      std::size_t block_cache = 64u << 20);
  ~ViewDb();

  rocksdb::DB* db() const { return db_.get(); }
  rocksdb::ColumnFamilyHandle* cf(Family f) const { return handles_[static_cast<int>(f) + 1]; }
  bool read_only() const { return read_only_; }

  // Whether commits go through the WAL (default). Bulk rebuilds (replay,
  // restore, verify) turn it off: nothing follows them, and a crash just
  // means rebuilding again. The daemon keeps it on, because a3ctl's
  // read-only followers (RocksDB secondaries) see only what reached the WAL
  // or a flush.
  void set_wal(bool on) { wal_ = on; }
  bool wal() const { return wal_; }
  const std::filesystem::path& path() const { return path_; }

  void catch_up();  // read-only: see the writer's latest state (reopens: no iterator may be open)

  // The next offset to apply of each partition that has been applied.
  std::map<std::int32_t, std::int64_t> positions() const;

  // SHA-256 over every key and value of every column family, in order: two
  // views with the same digest hold the same state, byte for byte.
  std::string digest() const;
  // Both from one snapshot (a view that is being written: the daemon's).
  struct Digested {
    std::map<std::int32_t, std::int64_t> positions;
    std::string digest;
  };
  Digested digest_with_positions() const;

  void close();

 private:
  void check_format();
  std::map<std::int32_t, std::int64_t> positions(const rocksdb::ReadOptions& ro) const;
  std::string digest(rocksdb::ReadOptions ro) const;  // a copy: checksums are turned on
  ViewDb() = default;
  std::filesystem::path path_;
  bool read_only_ = false;
  std::size_t block_cache_ = 0;
  bool wal_ = true;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // default, then Family order
};

}  // namespace a3::projections::view
