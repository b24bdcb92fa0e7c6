// The Kafka event log (librdkafka): an idempotent producer with acks=all
// appends; readers are consumers that assign explicit offsets (no committed
// group offsets are relied on for correctness).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <thread>

#include "eventlog/event_log.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_topic_s rd_kafka_topic_t;

namespace a3::eventlog::kafka {

struct Options {
  std::string brokers;
  std::string topic = "a3.events";
  std::int32_t partitions = 1;  // must equal the topic's partition count
  std::string compression = "lz4";
  int delivery_timeout_ms = 30000;
  int linger_ms = 2;
  std::size_t max_record_bytes = 64 << 20;
  std::map<std::string, std::string> properties;  // extra librdkafka settings
};

class KafkaLog final : public EventLog {
 public:
  // Connects, checks that the topic exists with `partitions` partitions.
  // Throws std::runtime_error with a message for operators.
  static std::unique_ptr<KafkaLog> open(const Options& options);
  ~KafkaLog() override;

  std::int32_t partitions() const override { return options_.partitions; }
  void append_async(std::string key, std::string value, AppendHandler done) override;
  boost::system::result<std::unique_ptr<Reader>> open_reader(Position from) override;
  boost::system::result<std::int64_t> end_offset(std::int32_t partition) override;
  std::string failure() const override;
  void close() override;

  // The librdkafka configuration both producers and readers start from.
  static std::map<std::string, std::string> base_config(const Options& options);

 private:
  KafkaLog() = default;
  rd_kafka_t* make_producer();
  void poll_loop();
  void replace_fatal_producer();
  static void drain_and_destroy(rd_kafka_t* rk);

  Options options_;
  // Appends hold it shared; swapping in a new producer (after a fatal
  // idempotence error, or at close) holds it exclusively.
  mutable std::shared_mutex producer_mu_;
  rd_kafka_t* producer_ = nullptr;
  std::atomic<bool> fatal_{false};
  std::atomic<bool> stop_{false};
  std::atomic<bool> closed_{false};
  std::thread poller_;
  mutable std::mutex failure_mu_;
  std::string last_error_;
};

}  // namespace a3::eventlog::kafka
