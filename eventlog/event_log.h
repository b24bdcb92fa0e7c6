// The event log: the store's source of truth. Two backends implement this
// interface with the same guarantees (tests/eventlog/contract_test.cc):
//   - local: embedded, RocksDB-backed, group-committed (the default);
//   - kafka: librdkafka, idempotent producer, acks=all.
//
// Guarantees:
//   - A record goes to partition partition_of(key, partitions()); all records
//     of one key are totally ordered.
//   - An append completes with a position only once the record is durable
//     (local: synced to disk; Kafka: acknowledged by all in-sync replicas).
//     Any other outcome is an error: the caller must not acknowledge.
//   - Offsets of a partition start at 0 and increase by one per record
//     (local: always dense; Kafka: dense for the idempotent producer).
//   - Record timestamps are the append time in ms; offset_for_time assumes
//     they do not decrease along a partition (the local log guarantees it).
//
// Threading: every method may be called from any thread. Append handlers run
// on a log-owned thread and must be quick (post the result elsewhere).
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include "eventlog/partitioner.h"

namespace a3::eventlog {

enum class errc {
  unavailable = 1,  // temporarily cannot append or read (broker down, timeout): retry later
  failed,           // a synced write failed (e.g. fsync, ENOSPC): appends are refused until
                    // the log has reopened itself from its files
  too_large,        // the record exceeds the log's maximum record size
  out_of_range,     // no such partition or offset
  read_only,        // opened for reading only
  closed,           // the log was closed
  corrupt,          // a stored record cannot be read back
  invalid_argument,
};

const boost::system::error_category& category() noexcept;
inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

struct Position {
  std::int32_t partition = 0;
  std::int64_t offset = 0;

  std::string str() const;                                      // "P:O"
  static std::optional<Position> parse(std::string_view text);  // "P:O"
  friend auto operator<=>(const Position&, const Position&) = default;
};

struct Record {
  Position position;
  std::int64_t timestamp_ms = 0;
  std::string key;
  std::string value;
};

using AppendResult = boost::system::result<Position>;
using AppendHandler = std::function<void(AppendResult)>;

// Reads one partition in offset order. Not thread-safe: one reader per thread.
class Reader {
 public:
  virtual ~Reader() = default;

  // Returns up to `max_records` records from the current position, waiting
  // up to `wait` for the first one; an empty vector means nothing new yet.
  // The position moves past the records returned. On errc::corrupt the
  // position stays at the offending record.
  [[nodiscard]] virtual boost::system::result<std::vector<Record>> poll(
      std::size_t max_records, std::chrono::milliseconds wait) = 0;

  virtual void seek(std::int64_t offset) = 0;
  virtual Position position() const = 0;  // the next record to be read
};

class EventLog {
 public:
  virtual ~EventLog() = default;

  virtual std::int32_t partitions() const = 0;
  std::int32_t partition_for(std::string_view key) const { return partition_of(key, partitions()); }

  // Appends `value` to the partition of `key`. `done` is called exactly once,
  // on a log thread: with the record's position once it is durable, or with an
  // error (then the record may or may not be in the log: a Kafka timeout can
  // hide a write, so consumers de-duplicate by event id).
  virtual void append_async(std::string key, std::string value, AppendHandler done) = 0;

  // Blocking form of append_async.
  [[nodiscard]] AppendResult append(std::string key, std::string value);

  [[nodiscard]] virtual boost::system::result<std::unique_ptr<Reader>> open_reader(
      Position from) = 0;

  // The offset the next record of `partition` will get.
  [[nodiscard]] virtual boost::system::result<std::int64_t> end_offset(std::int32_t partition) = 0;

  // The first offset of `partition` whose timestamp is >= `timestamp_ms`, or
  // the end offset if there is none. Binary search over record timestamps.
  [[nodiscard]] virtual boost::system::result<std::int64_t> offset_for_time(
      std::int32_t partition, std::int64_t timestamp_ms);

  // Blocks until some partition p may have records at or after next[p], or
  // `wait` passes; lets one thread follow every partition without spinning.
  // The default polls (sleeps briefly); a backend may wake at once.
  virtual void wait_for_records(const std::vector<std::int64_t>& next,
                                std::chrono::milliseconds wait);

  // Why the log refuses appends, or empty if it is healthy.
  virtual std::string failure() const = 0;

  // Stops accepting appends and completes or fails those in flight. Readers
  // must be destroyed before the log.
  virtual void close() = 0;
};

}  // namespace a3::eventlog

template <>
struct boost::system::is_error_code_enum<a3::eventlog::errc> : std::true_type {};
