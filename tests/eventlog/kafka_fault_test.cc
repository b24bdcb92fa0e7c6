// Kafka backend under faults injected through the mock cluster's API. The
// invariant: every append that was acknowledged is read back, once, in order.
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "eventlog/kafka/kafka_log.h"
#include "tests/eventlog/mock_kafka.h"

namespace a3::eventlog::kafka {
namespace {

using namespace std::chrono_literals;

constexpr std::int16_t kProduceApi = 0;  // Kafka protocol ApiKey of Produce

class KafkaFaults : public ::testing::Test {
 protected:
  test::MockKafka mock{3, "a3.events", 1};

  std::unique_ptr<KafkaLog> open(int delivery_timeout_ms = 10000) {
    Options o;
    o.brokers = mock.bootstraps();
    o.delivery_timeout_ms = delivery_timeout_ms;
    o.properties["socket.timeout.ms"] = "2000";
    o.properties["reconnect.backoff.ms"] = "50";
    o.properties["reconnect.backoff.max.ms"] = "200";
    return KafkaLog::open(o);
  }

  std::vector<Record> read_all(EventLog& log) {
    std::vector<Record> out;
    auto end = log.end_offset(0);
    EXPECT_TRUE(end);
    auto reader = log.open_reader({0, 0});
    EXPECT_TRUE(reader);
    if (!end || !reader) return out;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while ((*reader)->position().offset < *end && std::chrono::steady_clock::now() < deadline) {
      auto batch = (*reader)->poll(1000, 1s);
      if (!batch) break;
      for (auto& r : *batch)
        out.push_back(std::move(r));
    }
    return out;
  }

  // Every acknowledged value appears exactly once, at its acknowledged
  // offset, and acknowledged values keep their append order.
  void expect_acked_exactly_once(EventLog& log, const std::map<std::string, std::int64_t>& acked) {
    std::map<std::string, int> seen;
    std::int64_t last_acked_offset = -1;
    for (const auto& r : read_all(log)) {
      ++seen[r.value];
      auto it = acked.find(r.value);
      if (it == acked.end()) continue;
      EXPECT_EQ(it->second, r.position.offset) << r.value;
      EXPECT_GT(r.position.offset, last_acked_offset);
      last_acked_offset = r.position.offset;
    }
    for (const auto& [v, offset] : acked)
      EXPECT_EQ(seen[v], 1) << v << " at " << offset;
  }
};

TEST_F(KafkaFaults, RetriableProduceErrorsAreRetriedTransparently) {
  auto log = open();
  ASSERT_TRUE(log->append("k", "warm-up"));
  rd_kafka_mock_push_request_errors(
      mock.cluster(), kProduceApi, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
      RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
  std::map<std::string, std::int64_t> acked{{"warm-up", 0}};
  for (int i = 0; i < 20; ++i) {
    const std::string v = "v" + std::to_string(i);
    auto pos = log->append("k", v);
    ASSERT_TRUE(pos) << v << ": " << pos.error().message();
    acked[v] = pos->offset;
  }
  expect_acked_exactly_once(*log, acked);
  EXPECT_EQ(*log->end_offset(0), 21) << "no duplicates from the retries";
}

TEST_F(KafkaFaults, BrokersDownFailsAppendsWithoutAcknowledgingThenRecovers) {
  auto log = open(3000);
  std::map<std::string, std::int64_t> acked;
  for (int i = 0; i < 5; ++i) {
    auto pos = log->append("k", "before" + std::to_string(i));
    ASSERT_TRUE(pos);
    acked["before" + std::to_string(i)] = pos->offset;
  }
  mock.all_brokers(false);
  std::atomic<int> failed{0}, succeeded{0};
  std::vector<std::thread> threads;
  std::mutex mu;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string v = "down" + std::to_string(t);
      auto pos = log->append("k", v);
      if (pos) {
        ++succeeded;
        std::lock_guard lock(mu);
        acked[v] = pos->offset;
      } else {
        EXPECT_EQ(pos.error(), make_error_code(errc::unavailable));
        ++failed;
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(failed, 4) << "no append may be acknowledged while every broker is down";
  mock.all_brokers(true);
  // The log recovers by itself: new appends succeed once brokers are back.
  bool recovered = false;
  for (int i = 0; i < 30 && !recovered; ++i) {
    const std::string v = "after" + std::to_string(i);
    auto pos = log->append("k", v);
    if (pos) {
      acked[v] = pos->offset;
      recovered = true;
    } else {
      std::this_thread::sleep_for(200ms);
    }
  }
  ASSERT_TRUE(recovered);
  expect_acked_exactly_once(*log, acked);
}

TEST_F(KafkaFaults, MessageTooLargeFromTheBrokerFailsOnlyThatAppend) {
  auto log = open();
  ASSERT_TRUE(log->append("k", "first"));
  rd_kafka_mock_push_request_errors(mock.cluster(), kProduceApi, 1,
                                    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  auto pos = log->append("k", "rejected");
  ASSERT_FALSE(pos);
  EXPECT_EQ(pos.error(), make_error_code(errc::too_large));
  auto next = log->append("k", "next");
  ASSERT_TRUE(next) << next.error().message();
  expect_acked_exactly_once(*log, {{"first", 0}, {"next", next->offset}});
}

TEST_F(KafkaFaults, FatalIdempotenceErrorReplacesTheProducer) {
  auto log = open();
  ASSERT_TRUE(log->append("k", "first"));
  rd_kafka_mock_push_request_errors(mock.cluster(), kProduceApi, 1,
                                    RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
  auto pos = log->append("k", "fatal");
  EXPECT_FALSE(pos) << "an append the producer could not confirm is not acknowledged";
  std::map<std::string, std::int64_t> acked{{"first", 0}};
  bool recovered = false;
  for (int i = 0; i < 50 && !recovered; ++i) {
    const std::string v = "after" + std::to_string(i);
    auto p = log->append("k", v);
    if (p) {
      acked[v] = p->offset;
      recovered = true;
    } else {
      std::this_thread::sleep_for(100ms);
    }
  }
  ASSERT_TRUE(recovered) << "a fresh producer takes over after a fatal error";
  EXPECT_TRUE(log->failure().empty());
  expect_acked_exactly_once(*log, acked);
}

TEST_F(KafkaFaults, MissingTopicOrWrongPartitionCountStopsOpening) {
  Options o;
  o.brokers = mock.bootstraps();
  o.partitions = 4;
  try {
    KafkaLog::open(o);
    FAIL() << "opening with the wrong partition count must fail";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("has 1 partitions"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace a3::eventlog::kafka
