#include "eventlog/local/local_log.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <shared_mutex>
#include <stdexcept>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <spdlog/spdlog.h>
#include <limits>

#include "common/clock.h"
#include "eventlog/local/record_format.h"
#include "eventlog/local/rocks_logger.h"

namespace a3::eventlog::local {

namespace {

using std::chrono::milliseconds;
namespace fs = std::filesystem;

constexpr const char* kMetaFamily = "meta";
constexpr const char* kPartitionsKey = "partitions";
constexpr std::size_t kMaxPollBytes = 64u << 20;  // per poll(), see LocalReader

rocksdb::Options rocks_options(const Options& o) {
  rocksdb::Options opts;
  opts.create_if_missing = !o.read_only;
  opts.create_missing_column_families = !o.read_only;
  if (o.env) opts.env = o.env;
  opts.info_log = rocks_logger("log");
  // The log is append-only and read mostly sequentially: large values go to
  // blob files so compactions do not rewrite message bodies.
  opts.compression = rocksdb::kLZ4Compression;
  opts.bottommost_compression = rocksdb::kZSTD;
  opts.enable_blob_files = true;
  opts.min_blob_size = 64 * 1024;
  opts.blob_compression_type = rocksdb::kLZ4Compression;
  // A torn WAL tail after a crash holds only writes that were never synced,
  // hence never acknowledged: recover up to it.
  opts.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  opts.paranoid_checks = true;
  if (o.read_only) opts.max_open_files = -1;  // required by secondary instances
  return opts;
}

std::string status_text(const rocksdb::Status& s) {
  return s.ToString();
}

}  // namespace

// ---------------------------------------------------------------------------
// Reader

class LocalReader final : public Reader {
 public:
  LocalReader(LocalLog& log, Position from) : log_(log), pos_(from) {}

  boost::system::result<std::vector<Record>> poll(std::size_t max_records,
                                                  milliseconds wait) override {
    std::vector<Record> out;
    if (log_.closed()) return errc::closed;
    std::int64_t end = log_.committed_end(pos_.partition);
    if (pos_.offset >= end) {
      if (!log_.wait_for_data(pos_.partition, pos_.offset, wait)) return out;
      end = log_.committed_end(pos_.partition);
    }
    // The writer reopens the database after a failed write (LocalLog::recover):
    // meanwhile there is nothing to read, for at most `wait`.
    std::shared_lock db_lock(log_.db_mu_);
    if (log_.closed()) return errc::closed;
    if (!log_.db_) {
      db_lock.unlock();
      log_.wait_for_reopen(wait);
      return errc::unavailable;
    }
    const std::string lower = record_key(pos_.partition, pos_.offset);
    const std::string upper = record_key(pos_.partition, end);
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    ro.verify_checksums = true;
    std::unique_ptr<rocksdb::Iterator> it(log_.db_->NewIterator(ro, log_.handles_[0]));
    // A batch of large records stops early: memory stays bounded whatever
    // the log holds (at least one record is always returned).
    std::size_t bytes = 0;
    for (it->Seek(lower); it->Valid() && out.size() < max_records && bytes < kMaxPollBytes;
         it->Next()) {
      Record r;
      auto k = parse_record_key(it->key().ToStringView());
      // Offsets are dense: a gap or a foreign key means the store is damaged.
      if (!k || k->partition != pos_.partition || k->offset != pos_.offset) {
        spdlog::error("event log: unexpected key at {}", pos_.str());
        return errc::corrupt;
      }
      if (!parse_record_value(it->value().ToStringView(), r)) {
        spdlog::error("event log: corrupt record at {}", pos_.str());
        return errc::corrupt;
      }
      r.position = pos_;
      bytes += r.value.size();
      out.push_back(std::move(r));
      ++pos_.offset;
    }
    if (!it->status().ok()) {
      spdlog::error("event log: read at {} failed: {}", pos_.str(), status_text(it->status()));
      return it->status().IsCorruption() ? errc::corrupt : errc::unavailable;
    }
    if (out.empty() && pos_.offset < end) return errc::corrupt;  // a committed record is missing
    return out;
  }

  void seek(std::int64_t offset) override { pos_.offset = offset; }
  Position position() const override { return pos_; }

 private:
  LocalLog& log_;
  Position pos_;
};

// ---------------------------------------------------------------------------
// Opening and closing

std::unique_ptr<LocalLog> LocalLog::open(const Options& options) {
  if (options.partitions < 1) throw std::runtime_error("event log: partitions must be >= 1");
  std::unique_ptr<LocalLog> log(new LocalLog());
  log->options_ = options;
  {
    Opened o = log->open_db();
    log->db_ = std::move(o.db);
    log->handles_ = std::move(o.handles);
  }

  // The partition count is fixed when the log is created: changing it would
  // move accounts between partitions and break their ordering.
  std::string stored;
  rocksdb::Status s =
      log->db_->Get(rocksdb::ReadOptions(), log->handles_[1], kPartitionsKey, &stored);
  if (s.IsNotFound()) {
    if (options.read_only) throw std::runtime_error("event log: log has no partition count");
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = log->db_->Put(wo, log->handles_[1], kPartitionsKey, std::to_string(options.partitions));
    if (!s.ok()) throw std::runtime_error("event log: cannot initialise: " + s.ToString());
    log->partitions_ = options.partitions;
  } else if (s.ok()) {
    log->partitions_ = std::atoi(stored.c_str());
    if (log->partitions_ < 1) throw std::runtime_error("event log: bad stored partition count");
    if (!options.read_only && log->partitions_ != options.partitions) {
      throw std::runtime_error(fmt::format(
          "event log: {} was created with {} partitions but eventlog.partitions = {}; the "
          "partition count of a log cannot change",
          options.path.string(), log->partitions_, options.partitions));
    }
  } else {
    throw std::runtime_error("event log: cannot read metadata: " + s.ToString());
  }

  log->set_ends(log->read_ends(*log->db_, log->handles_[0]));

  if (!options.read_only) {
    log->completer_ = std::thread([l = log.get()] { l->completer_loop(); });
    log->writer_ = std::thread([l = log.get()] { l->writer_loop(); });
  }
  return log;
}

// Opens the log's RocksDB database. Throws.
LocalLog::Opened LocalLog::open_db() {
  const rocksdb::Options opts = rocks_options(options_);
  std::vector<rocksdb::ColumnFamilyDescriptor> families{
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(opts)},
      {kMetaFamily, rocksdb::ColumnFamilyOptions(opts)}};
  Opened out;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (options_.read_only) {
    if (!fs::exists(options_.path / "CURRENT")) {
      throw std::runtime_error(fmt::format("event log: no log at {}", options_.path.string()));
    }
    // A secondary instance keeps its own info log and manifest copy in a
    // private directory; it never writes to the primary's files.
    std::string tmpl = (fs::temp_directory_path() / "a3-log-secondary-XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
      throw std::runtime_error("event log: cannot create a temp directory");
    secondary_dir_ = tmpl;
    s = options_.follow ? rocksdb::DB::OpenAsSecondary(opts, options_.path.string(), tmpl, families,
                                                       &out.handles, &raw)
                        : rocksdb::DB::OpenForReadOnly(opts, options_.path.string(), families,
                                                       &out.handles, &raw);
  } else {
    std::error_code ec;
    fs::create_directories(options_.path, ec);
    if (ec) {
      throw std::runtime_error(
          fmt::format("event log: cannot create {}: {}", options_.path.string(), ec.message()));
    }
    s = rocksdb::DB::Open(opts, options_.path.string(), families, &out.handles, &raw);
  }
  if (!s.ok()) {
    std::string hint;
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      hint = " (is another a3mailer running on this data directory?)";
    }
    throw std::runtime_error(
        fmt::format("event log: cannot open {}: {}{}", options_.path.string(), s.ToString(), hint));
  }
  out.db.reset(raw);
  return out;
}

void LocalLog::close_rocks(Opened& o) {
  if (!o.db) return;
  for (auto* h : o.handles)
    o.db->DestroyColumnFamilyHandle(h);
  o.handles.clear();
  const rocksdb::Status s = o.db->Close();
  if (!s.ok()) spdlog::warn("event log: closing the database: {}", s.ToString());
  o.db.reset();
}

// Closes db_; the caller holds db_mu_ exclusively (or no reader exists).
void LocalLog::close_db() {
  Opened o{std::move(db_), std::move(handles_)};
  handles_.clear();
  close_rocks(o);
}

// Each partition's end and last timestamp, from its last record. Throws.
LocalLog::Ends LocalLog::read_ends(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* records) const {
  const auto n = static_cast<std::size_t>(partitions_);
  Ends e{std::vector<std::int64_t>(n, 0), std::vector<std::int64_t>(n, 0)};
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), records));
  for (std::int32_t p = 0; p < partitions_; ++p) {
    it->SeekForPrev(record_key(p, std::numeric_limits<std::int64_t>::max()));
    if (!it->Valid()) continue;
    auto k = parse_record_key(it->key().ToStringView());
    if (!k || k->partition != p) continue;
    Record r;
    if (!parse_record_value(it->value().ToStringView(), r)) {
      throw std::runtime_error(fmt::format("event log: corrupt last record at {}", k->str()));
    }
    e.next[static_cast<std::size_t>(p)] = k->offset + 1;
    e.last_ts[static_cast<std::size_t>(p)] = r.timestamp_ms;
  }
  if (!it->status().ok()) {
    throw std::runtime_error("event log: cannot scan partitions: " + it->status().ToString());
  }
  return e;
}

void LocalLog::set_ends(Ends e) {
  next_ = e.next;
  last_ts_ = std::move(e.last_ts);
  std::lock_guard lock(mu_);
  committed_ = std::move(e.next);
}

void LocalLog::wait_for_reopen(milliseconds wait) {
  std::unique_lock lock(mu_);
  data_cv_.wait_for(lock, wait, [&] { return !reopening_ || closing_; });
}

LocalLog::~LocalLog() {
  close();
}

void LocalLog::close() {
  // Once; a concurrent caller waits until the first one has finished.
  std::call_once(close_once_, [this] { shut_down(); });
}

void LocalLog::shut_down() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
  }
  work_cv_.notify_all();
  data_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lock(done_mu_);
    writer_finished_ = true;
  }
  done_cv_.notify_all();
  if (completer_.joinable()) completer_.join();  // every appender has been answered
  std::unique_lock db_lock(db_mu_);              // after every reader has let go
  close_db();
  if (!secondary_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(secondary_dir_, ec);
    secondary_dir_.clear();
  }
}

// ---------------------------------------------------------------------------
// Appending

void LocalLog::append_async(std::string key, std::string value, AppendHandler done) {
  if (options_.read_only) return done(errc::read_only);
  if (value.size() + key.size() > options_.max_record_bytes) return done(errc::too_large);
  const std::int32_t partition = partition_for(key);
  errc refused;
  {
    std::lock_guard lock(mu_);
    if (!closing_ && failure_.empty()) {
      queue_.push_back({partition, std::move(key), std::move(value), std::move(done)});
      // Wake the writer only if it sleeps: while it syncs, appends just queue.
      if (writer_idle_) work_cv_.notify_one();
      return;
    }
    refused = closing_ ? errc::closed : errc::failed;
  }
  done(refused);  // outside the lock: a handler may append again
}

void LocalLog::writer_loop() {
  std::deque<Pending> batch;
  for (;;) {
    {
      // Appenders answered from the previous batch usually append again at
      // once (a session's next event): let the completer finish answering
      // them, briefly, so that they join this batch instead of splitting
      // into cohorts that each pay for a sync.
      std::unique_lock done_lock(done_mu_);
      done_cv_.wait_for(done_lock, std::chrono::milliseconds(1), [&] { return completing_ == 0; });
    }
    {
      std::unique_lock lock(mu_);
      writer_idle_ = true;
      work_cv_.wait(lock, [&] { return !queue_.empty() || closing_; });
      writer_idle_ = false;
      if (queue_.empty()) return;  // closing with nothing left to write
      // Group commit: take everything that queued up while the previous
      // batch was syncing, within the batch bounds.
      std::size_t bytes = 0;
      while (!queue_.empty() && batch.size() < options_.max_batch_records &&
             (batch.empty() || bytes + queue_.front().value.size() <= options_.max_batch_bytes)) {
        bytes += queue_.front().value.size();
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }

    rocksdb::WriteBatch wb;
    std::deque<std::string> headers;
    std::vector<Position> positions;
    positions.reserve(batch.size());
    std::vector<std::int64_t> next = next_;
    std::vector<std::int64_t> last_ts = last_ts_;
    const std::int64_t now = now_ms();
    std::uint64_t bytes = 0;
    for (const auto& p : batch) {
      // Timestamps never go backwards along a partition, even if the clock
      // does, so that time -> offset is a binary search.
      auto& ts = last_ts[p.partition];
      ts = std::max(ts, now);
      const Position pos{p.partition, next[p.partition]++};
      // The payload is referenced, not copied, into the batch's single buffer.
      const std::string k = record_key(pos.partition, pos.offset);
      headers.push_back(encode_record_header(ts, p.key));
      const rocksdb::Slice value_parts[] = {headers.back(), p.key, p.value};
      const rocksdb::Slice key_part(k);
      wb.Put(handles_[0], rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(value_parts, 3));
      positions.push_back(pos);
      bytes += p.value.size();
    }

    // Durability: sync=true fsyncs the WAL before Write returns; only then is
    // any appender answered.
    rocksdb::WriteOptions wo;
    wo.sync = true;
    const rocksdb::Status s = db_->Write(wo, &wb);
    if (!s.ok()) {
      // A failed write or fsync leaves the file in an unknown state (the
      // kernel may have dropped the dirty pages): never retry the batch into
      // an acknowledgement. Refuse, then reopen from the files (recover).
      spdlog::critical("event log: synced write failed, refusing appends: {}", s.ToString());
      std::deque<Pending> rest;
      {
        std::lock_guard lock(mu_);
        failure_ = "synced write failed: " + s.ToString();
        rest.swap(queue_);
      }
      data_cv_.notify_all();
      // Answered by the completer, after the batches synced before this one.
      {
        std::lock_guard lock(done_mu_);
        done_queue_.push_back({std::move(batch), {}, errc::failed});
        done_queue_.push_back({std::move(rest), {}, errc::failed});
        completing_ += 2;
      }
      done_cv_.notify_all();
      batch.clear();
      recover();  // appends fail at once meanwhile
      continue;
    }
    next_ = std::move(next);
    last_ts_ = std::move(last_ts);
    {
      std::lock_guard lock(mu_);
      for (std::int32_t p = 0; p < partitions_; ++p)
        committed_[p] = next_[p];
      stats_.records += batch.size();
      stats_.batches += 1;
      stats_.bytes += bytes;
    }
    data_cv_.notify_all();
    {
      std::lock_guard lock(done_mu_);
      done_queue_.push_back({std::move(batch), std::move(positions), {}});
      ++completing_;
    }
    done_cv_.notify_all();
    batch.clear();
  }
}

// After a failed synced write, on the writer thread, with failure_ set (so
// appends are refused: errc::failed, a temporary failure for clients): close
// the database and open it again from its files, as a restart would, until
// that works (the disk has space again, the device answers). RocksDB then
// recovers its WAL up to the last whole record into new, synced files, so
// what is on disk decides the fate of the failed batch: never acknowledged,
// it may or may not be there; everything acknowledged before it is.
void LocalLog::recover() {
  {
    std::lock_guard lock(mu_);
    reopening_ = true;
  }
  {
    std::unique_lock db_lock(db_mu_);  // no reader is in the database
    close_db();
  }
  auto backoff = milliseconds(100);
  for (int attempt = 1;; ++attempt) {
    {
      std::unique_lock lock(mu_);
      work_cv_.wait_for(lock, backoff, [&] { return closing_; });
      if (closing_) return;
    }
    // Opened without the lock: readers meanwhile get errc::unavailable at
    // once instead of waiting for a slow recovery.
    Opened o;
    Ends ends;
    std::string error;
    try {
      o = open_db();
      ends = read_ends(*o.db, o.handles[0]);
    } catch (const std::exception& e) {
      error = e.what();
      close_rocks(o);
    }
    if (!error.empty()) {
      if (attempt == 1 || attempt % 20 == 0) {
        spdlog::error("event log: reopening after the failed write failed (attempt {}): {}",
                      attempt, error);
      }
      backoff = std::min(backoff * 2, milliseconds(5000));
      continue;
    }
    std::string lost;
    for (std::size_t p = 0; p < next_.size(); ++p) {
      if (ends.next[p] < next_[p]) {
        // Acknowledged records are gone: the disk lost synced data. Their
        // offsets must never be handed out again.
        lost += fmt::format("{}partition {} ends at {}, below the acknowledged {}",
                            lost.empty() ? "" : "; ", p, ends.next[p], next_[p]);
      } else if (ends.next[p] > next_[p]) {
        spdlog::warn(
            "event log: {} records of the failed write to partition {} reached the disk; they "
            "were refused to their clients, who may send them again",
            ends.next[p] - next_[p], p);
      }
    }
    if (!lost.empty()) {
      spdlog::critical(
          "event log: acknowledged records are missing after reopening ({}); "
          "refusing appends until an operator restores the log",
          lost);
      {
        std::unique_lock db_lock(db_mu_);
        db_ = std::move(o.db);
        handles_ = std::move(o.handles);
      }
      std::lock_guard lock(mu_);
      failure_ = "acknowledged records are missing after reopening: " + lost;
      reopening_ = false;
      data_cv_.notify_all();
      return;
    }
    {
      std::unique_lock db_lock(db_mu_);
      db_ = std::move(o.db);
      handles_ = std::move(o.handles);
    }
    set_ends(std::move(ends));
    {
      std::lock_guard lock(mu_);
      failure_.clear();
      reopening_ = false;
    }
    data_cv_.notify_all();
    spdlog::warn("event log: reopened after the failed write (attempt {}); taking appends",
                 attempt);
    return;
  }
}

void LocalLog::completer_loop() {
  for (;;) {
    std::deque<Synced> ready;
    {
      std::unique_lock lock(done_mu_);
      done_cv_.wait(lock, [&] { return !done_queue_.empty() || writer_finished_; });
      if (done_queue_.empty()) return;
      ready.swap(done_queue_);
    }
    // In batch order, so handlers see positions in commit order.
    for (auto& synced : ready) {
      for (std::size_t i = 0; i < synced.batch.size(); ++i) {
        if (synced.error) {
          synced.batch[i].done(*synced.error);
        } else {
          synced.batch[i].done(synced.positions[i]);
        }
      }
    }
    {
      std::lock_guard lock(done_mu_);
      completing_ -= ready.size();
    }
    done_cv_.notify_all();
  }
}

// ---------------------------------------------------------------------------
// Reading

std::int64_t LocalLog::committed_end(std::int32_t partition) {
  if (!options_.read_only) {
    std::lock_guard lock(mu_);
    return committed_[partition];
  }
  // A secondary instance sees the primary's writes after catching up with
  // its WAL and manifest.
  std::lock_guard lock(catch_up_mu_);
  if (options_.follow) {
    const rocksdb::Status s = db_->TryCatchUpWithPrimary();
    if (!s.ok()) spdlog::warn("event log: catching up with the writer failed: {}", s.ToString());
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_[0]));
  it->SeekForPrev(record_key(partition, std::numeric_limits<std::int64_t>::max()));
  std::int64_t end = 0;
  if (it->Valid()) {
    auto k = parse_record_key(it->key().ToStringView());
    if (k && k->partition == partition) end = k->offset + 1;
  }
  committed_[partition] = end;
  return end;
}

bool LocalLog::wait_for_data(std::int32_t partition, std::int64_t offset, milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  if (options_.read_only) {
    // No notification crosses processes: poll the writer's files.
    while (std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::min<milliseconds>(wait, milliseconds(100)));
      if (committed_end(partition) > offset) return true;
    }
    return false;
  }
  std::unique_lock lock(mu_);
  return data_cv_.wait_until(lock, deadline, [&] {
    return committed_[partition] > offset || closing_;
  }) && committed_[partition] > offset;
}

boost::system::result<std::unique_ptr<Reader>> LocalLog::open_reader(Position from) {
  if (from.partition < 0 || from.partition >= partitions_ || from.offset < 0) {
    return errc::out_of_range;
  }
  if (closed()) return errc::closed;
  return std::unique_ptr<Reader>(new LocalReader(*this, from));
}

boost::system::result<std::int64_t> LocalLog::end_offset(std::int32_t partition) {
  if (partition < 0 || partition >= partitions_) return errc::out_of_range;
  if (closed()) return errc::closed;
  return committed_end(partition);
}

void LocalLog::wait_for_records(const std::vector<std::int64_t>& next,
                                std::chrono::milliseconds wait) {
  if (options_.read_only) return EventLog::wait_for_records(next, wait);
  std::unique_lock lock(mu_);
  data_cv_.wait_for(lock, wait, [&] {
    if (closing_) return true;
    if (reopening_) return false;  // nothing can be read until it has reopened
    for (std::size_t p = 0; p < next.size() && p < committed_.size(); ++p) {
      if (committed_[p] > next[p]) return true;
    }
    return false;
  });
}

void LocalLog::truncate(const std::filesystem::path& path,
                        const std::map<std::int32_t, std::int64_t>& ends) {
  Options o;
  o.path = path;
  // The partition count is read from the copy itself.
  {
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    const rocksdb::Options opts = rocks_options(o);
    std::vector<rocksdb::ColumnFamilyDescriptor> families{
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(opts)},
        {kMetaFamily, rocksdb::ColumnFamilyOptions(opts)}};
    auto s = rocksdb::DB::Open(opts, path.string(), families, &handles, &raw);
    if (!s.ok())
      throw std::runtime_error("event log: cannot open " + path.string() + ": " + s.ToString());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteBatch wb;
    for (const auto& [p, end] : ends) {
      wb.DeleteRange(handles[0], record_key(p, end),
                     record_key(p, std::numeric_limits<std::int64_t>::max()));
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db->Write(wo, &wb);
    for (auto* h : handles)
      db->DestroyColumnFamilyHandle(h);
    db->Close();
    if (!s.ok()) throw std::runtime_error("event log: cannot truncate: " + s.ToString());
  }
}

bool LocalLog::closed() const {
  std::lock_guard lock(mu_);
  return closing_;
}

std::string LocalLog::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

Stats LocalLog::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace a3::eventlog::local
