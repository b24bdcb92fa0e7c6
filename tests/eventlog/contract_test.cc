// One contract for every EventLog backend: the same tests run against the
// local log and against Kafka (librdkafka's mock cluster).
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "eventlog/kafka/kafka_log.h"
#include "eventlog/local/local_log.h"
#include "tests/eventlog/mock_kafka.h"
#include "tests/test_util.h"

namespace a3::eventlog {
namespace {

using namespace std::chrono_literals;

struct LocalBackend {
  test::TempDir dir;
  std::unique_ptr<EventLog> open(int partitions, std::size_t max_record = 8 << 20) {
    local::Options o;
    o.path = dir.path() / "log";
    o.partitions = partitions;
    o.max_record_bytes = max_record;
    return local::LocalLog::open(o);
  }
};

struct KafkaBackend {
  std::unique_ptr<test::MockKafka> mock;
  std::unique_ptr<EventLog> open(int partitions, std::size_t max_record = 8 << 20) {
    if (!mock) mock = std::make_unique<test::MockKafka>(3, "a3.events", partitions);
    kafka::Options o;
    o.brokers = mock->bootstraps();
    o.partitions = partitions;
    o.delivery_timeout_ms = 10000;
    o.max_record_bytes = max_record;
    return kafka::KafkaLog::open(o);
  }
};

template <typename Backend>
class EventLogContract : public ::testing::Test {
 protected:
  Backend backend;

  // Reads [from, end) of a partition.
  std::vector<Record> read_all(EventLog& log, std::int32_t partition, std::int64_t from = 0) {
    auto end = log.end_offset(partition);
    EXPECT_TRUE(end) << end.error().message();
    std::vector<Record> out;
    auto reader = log.open_reader({partition, from});
    EXPECT_TRUE(reader);
    if (!reader || !end) return out;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while ((*reader)->position().offset < *end && std::chrono::steady_clock::now() < deadline) {
      auto batch = (*reader)->poll(1000, 1s);
      EXPECT_TRUE(batch) << batch.error().message();
      if (!batch) break;
      for (auto& r : *batch)
        out.push_back(std::move(r));
    }
    return out;
  }
};

using Backends = ::testing::Types<LocalBackend, KafkaBackend>;
class BackendNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, LocalBackend> ? "Local" : "Kafka";
  }
};
TYPED_TEST_SUITE(EventLogContract, Backends, BackendNames);

TYPED_TEST(EventLogContract, AppendsGetDenseOffsetsAndReadBackInOrder) {
  auto log = this->backend.open(1);
  for (int i = 0; i < 100; ++i) {
    auto pos = log->append("alice@example.test", "event-" + std::to_string(i));
    ASSERT_TRUE(pos) << pos.error().message();
    EXPECT_EQ(pos->partition, 0);
    EXPECT_EQ(pos->offset, i);
  }
  EXPECT_EQ(*log->end_offset(0), 100);
  auto records = this->read_all(*log, 0);
  ASSERT_EQ(records.size(), 100u);
  std::int64_t last_ts = 0;
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(records[i].position.offset, i);
    EXPECT_EQ(records[i].key, "alice@example.test");
    EXPECT_EQ(records[i].value, "event-" + std::to_string(i));
    EXPECT_GE(records[i].timestamp_ms, last_ts);
    last_ts = records[i].timestamp_ms;
  }
}

TYPED_TEST(EventLogContract, PartitionFollowsTheKeyHash) {
  auto log = this->backend.open(4);
  ASSERT_EQ(log->partitions(), 4);
  std::map<std::int32_t, std::int64_t> counts;
  for (int i = 0; i < 60; ++i) {
    const std::string key = "user" + std::to_string(i) + "@example.test";
    auto pos = log->append(key, key);
    ASSERT_TRUE(pos) << pos.error().message();
    EXPECT_EQ(pos->partition, partition_of(key, 4));
    EXPECT_EQ(pos->offset, counts[pos->partition]++) << "offsets are dense per partition";
  }
  EXPECT_EQ(counts.size(), 4u) << "60 keys should reach every partition";
  for (std::int32_t p = 0; p < 4; ++p) {
    EXPECT_EQ(*log->end_offset(p), counts[p]);
    for (const auto& r : this->read_all(*log, p)) {
      EXPECT_EQ(partition_of(r.key, 4), p);
      EXPECT_EQ(r.key, r.value);
    }
  }
}

TYPED_TEST(EventLogContract, ConcurrentAppendersAreEachReadBackOnceInTheirOrder) {
  auto log = this->backend.open(1);
  constexpr int kThreads = 16, kPerThread = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  std::mutex mu;
  std::map<std::string, std::int64_t> acked;  // value -> offset
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string v = fmt::format("t{}-{:03}", t, i);
        auto pos = log->append("shared-account", v);
        if (!pos) {
          ++failures;
          continue;
        }
        std::lock_guard lock(mu);
        acked[v] = pos->offset;
      }
    });
  }
  for (auto& th : threads)
    th.join();
  ASSERT_EQ(failures, 0);
  auto records = this->read_all(*log, 0);
  ASSERT_EQ(records.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::map<std::string, int> seen;
  std::map<int, std::string> last_of_thread;
  for (const auto& r : records) {
    ++seen[r.value];
    ASSERT_TRUE(acked.contains(r.value));
    EXPECT_EQ(acked[r.value], r.position.offset) << "acknowledged offset is where it is read";
    const int t = std::stoi(r.value.substr(1, r.value.find('-') - 1));
    EXPECT_LT(last_of_thread[t], r.value) << "one appender's records stay in its order";
    last_of_thread[t] = r.value;
  }
  for (const auto& [v, n] : seen)
    EXPECT_EQ(n, 1) << v;
}

TYPED_TEST(EventLogContract, ReaderWaitsForNewRecords) {
  auto log = this->backend.open(1);
  ASSERT_TRUE(log->append("k", "first"));
  auto reader = log->open_reader({0, 1});
  ASSERT_TRUE(reader);
  auto none = (*reader)->poll(10, 200ms);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  std::thread later([&] {
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(log->append("k", "second"));
  });
  std::vector<Record> got;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (got.empty() && std::chrono::steady_clock::now() < deadline) {
    auto batch = (*reader)->poll(10, 5s);
    ASSERT_TRUE(batch);
    got = std::move(*batch);
  }
  later.join();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, "second");
  EXPECT_EQ(got[0].position.offset, 1);
  EXPECT_EQ((*reader)->position().offset, 2);
}

TYPED_TEST(EventLogContract, SeekRereadsFromAnyOffset) {
  auto log = this->backend.open(1);
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(log->append("k", std::to_string(i)));
  auto reader = log->open_reader({0, 15});
  ASSERT_TRUE(reader);
  auto batch = (*reader)->poll(2, 5s);
  ASSERT_TRUE(batch);
  ASSERT_FALSE(batch->empty());
  EXPECT_EQ(batch->front().value, "15");
  (*reader)->seek(3);
  std::vector<Record> got;
  while (got.empty()) {
    auto b = (*reader)->poll(1, 5s);
    ASSERT_TRUE(b);
    if (!b->empty()) got = std::move(*b);
  }
  EXPECT_EQ(got.front().value, "3");
  EXPECT_EQ(got.front().position.offset, 3);
}

TYPED_TEST(EventLogContract, LargeRecordsRoundTrip) {
  auto log = this->backend.open(1);
  std::string big(3 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 131 % 251);
  auto pos = log->append("k", big);
  ASSERT_TRUE(pos) << pos.error().message();
  auto records = this->read_all(*log, 0);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_TRUE(records[0].value == big);
}

TYPED_TEST(EventLogContract, OversizedRecordIsRefusedAndNothingIsWritten) {
  auto log = this->backend.open(1, 1 << 20);
  ASSERT_TRUE(log->append("k", "small"));
  auto pos = log->append("k", std::string((1 << 20) + 1, 'x'));
  ASSERT_FALSE(pos);
  EXPECT_EQ(pos.error(), make_error_code(errc::too_large));
  EXPECT_EQ(*log->end_offset(0), 1);
  EXPECT_TRUE(log->append("k", "after"));
  EXPECT_EQ(*log->end_offset(0), 2);
}

TYPED_TEST(EventLogContract, OffsetForTimeFindsTheFirstRecordAtOrAfter) {
  auto log = this->backend.open(1);
  for (int group = 0; group < 3; ++group) {
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(log->append("k", fmt::format("{}-{}", group, i)));
    std::this_thread::sleep_for(30ms);
  }
  auto records = this->read_all(*log, 0);
  ASSERT_EQ(records.size(), 15u);
  for (std::size_t probe = 0; probe < records.size(); ++probe) {
    const std::int64_t t = records[probe].timestamp_ms;
    std::int64_t expected = 0;
    while (records[expected].timestamp_ms < t)
      ++expected;
    auto got = log->offset_for_time(0, t);
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(*got, expected) << "t=" << t;
  }
  EXPECT_EQ(*log->offset_for_time(0, 0), 0);
  EXPECT_EQ(*log->offset_for_time(0, records.back().timestamp_ms + 1), 15);
}

TYPED_TEST(EventLogContract, RecordsSurviveReopening) {
  {
    auto log = this->backend.open(2);
    for (int i = 0; i < 10; ++i)
      ASSERT_TRUE(log->append("a" + std::to_string(i), "v"));
    log->close();
  }
  auto log = this->backend.open(2);
  std::int64_t total = 0;
  for (std::int32_t p = 0; p < 2; ++p)
    total += *log->end_offset(p);
  EXPECT_EQ(total, 10);
  auto pos = log->append("a0", "after-reopen");
  ASSERT_TRUE(pos);
  const auto records = this->read_all(*log, pos->partition);
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.back().value, "after-reopen");
  EXPECT_EQ(records.back().position.offset, static_cast<std::int64_t>(records.size()) - 1);
}

TYPED_TEST(EventLogContract, AppendAfterCloseFails) {
  auto log = this->backend.open(1);
  log->close();
  auto pos = log->append("k", "v");
  ASSERT_FALSE(pos);
  EXPECT_EQ(pos.error(), make_error_code(errc::closed));
}

TYPED_TEST(EventLogContract, BadPositionsAreOutOfRange) {
  auto log = this->backend.open(2);
  EXPECT_FALSE(log->open_reader({2, 0}));
  EXPECT_FALSE(log->open_reader({-1, 0}));
  EXPECT_FALSE(log->end_offset(5));
  EXPECT_FALSE(log->offset_for_time(7, 0));
}

}  // namespace
}  // namespace a3::eventlog
