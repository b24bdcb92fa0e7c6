#include "eventlog/open.h"

#include "eventlog/kafka/kafka_log.h"
#include "eventlog/local/local_log.h"
#include "schemas/codec.h"

namespace a3::eventlog {

std::unique_ptr<EventLog> open(const config::Config& config, Access access) {
  const auto& c = config.eventlog;
  // The largest record is a message of the largest accepted size with its
  // envelope.
  const std::size_t max_record = schemas::max_encoded_size(
      static_cast<std::size_t>(std::max(config.smtp.max_message_size, config.imap.append_limit)));
  if (c.backend == "kafka") {
    kafka::Options o;
    o.brokers = c.kafka.brokers;
    o.topic = c.kafka.topic;
    o.partitions = c.partitions;
    o.compression = c.kafka.compression;
    o.delivery_timeout_ms = c.kafka.delivery_timeout_ms;
    o.linger_ms = c.kafka.linger_ms;
    o.max_record_bytes = max_record;
    o.properties = c.kafka.properties;
    return kafka::KafkaLog::open(o);
  }
  local::Options o;
  o.path = c.path;
  o.partitions = c.partitions;
  o.max_batch_records = static_cast<std::size_t>(c.group_commit_max_records);
  o.max_batch_bytes = static_cast<std::size_t>(c.group_commit_max_bytes);
  o.max_record_bytes = max_record;
  o.read_only = access != Access::read_write;
  o.follow = access == Access::read_only;
  return local::LocalLog::open(o);
}

}  // namespace a3::eventlog
