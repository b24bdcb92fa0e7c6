#include "eventlog/kafka/kafka_log.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "eventlog/kafka/handles.h"

namespace a3::eventlog::kafka {

namespace {

using std::chrono::milliseconds;

// One append in flight: owns the payload until the delivery report, since
// librdkafka is told not to copy it (a message may be tens of megabytes).
struct InFlight {
  std::string key;
  std::string value;
  AppendHandler done;
};

errc map_error(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
      return errc::too_large;
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
      return errc::out_of_range;
    default:
      return errc::unavailable;
  }
}

// Called by librdkafka from rd_kafka_poll() on the poll thread. Never throws.
void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void*) noexcept {
  std::unique_ptr<InFlight> f(static_cast<InFlight*>(msg->_private));
  if (!f) return;
  // Only PERSISTED counts: acks=all reached and acknowledged. A timed-out
  // message may be POSSIBLY_PERSISTED; the appender must not acknowledge it.
  const auto status = rd_kafka_message_status(msg);
  if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR && status == RD_KAFKA_MSG_STATUS_PERSISTED) {
    f->done(Position{msg->partition, msg->offset});
    return;
  }
  spdlog::warn("event log (kafka): append to partition {} failed: {} (status {})", msg->partition,
               rd_kafka_err2str(msg->err), static_cast<int>(status));
  f->done(map_error(msg->err));
}

void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) noexcept {
  auto* fatal = static_cast<std::atomic<bool>*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    const auto orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
    spdlog::error("event log (kafka): fatal producer error {}: {}; the producer will be replaced",
                  rd_kafka_err2name(orig), buf);
    if (fatal) fatal->store(true);
    return;
  }
  spdlog::warn("event log (kafka): {}: {}",
               rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
}

}  // namespace

// ---------------------------------------------------------------------------
// Reader: a consumer per reader, assigned to one partition at an explicit offset.

class KafkaReader final : public Reader {
 public:
  KafkaReader(Handle consumer, std::string topic, Position from)
      : rk_(std::move(consumer)), topic_(std::move(topic)), pos_(from) {}

  ~KafkaReader() override {
    if (rk_) rd_kafka_consumer_close(rk_.get());
  }

  boost::system::result<std::vector<Record>> init() {
    if (!assign()) return errc::unavailable;
    return std::vector<Record>{};
  }

  boost::system::result<std::vector<Record>> poll(std::size_t max_records,
                                                  milliseconds wait) override {
    std::vector<Record> out;
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (out.size() < max_records) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      const int timeout =
          out.empty() ? static_cast<int>(std::max<std::int64_t>(0, left.count())) : 0;
      MessagePtr m(rd_kafka_consumer_poll(rk_.get(), timeout));
      if (!m) break;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
      if (m->err) {
        spdlog::warn("event log (kafka): read at {} failed: {}", pos_.str(),
                     rd_kafka_message_errstr(m.get()));
        if (m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
            m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
          return errc::out_of_range;
        }
        return errc::unavailable;
      }
      // Messages fetched before a seek may still arrive: skip them.
      if (m->partition != pos_.partition || m->offset < pos_.offset) continue;
      Record r;
      r.position = {m->partition, m->offset};
      rd_kafka_timestamp_type_t tstype;
      r.timestamp_ms = rd_kafka_message_timestamp(m.get(), &tstype);
      if (m->key) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) r.value.assign(static_cast<const char*>(m->payload), m->len);
      pos_.offset = m->offset + 1;
      out.push_back(std::move(r));
      if (std::chrono::steady_clock::now() >= deadline && !out.empty()) break;
    }
    return out;
  }

  void seek(std::int64_t offset) override {
    pos_.offset = offset;
    assign();
  }

  Position position() const override { return pos_; }

 private:
  bool assign() {
    PartitionList list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), pos_.partition)->offset =
        pos_.offset;
    const auto err = rd_kafka_assign(rk_.get(), list.get());
    if (err) {
      spdlog::error("event log (kafka): assign {} failed: {}", pos_.str(), rd_kafka_err2str(err));
      return false;
    }
    return true;
  }

  Handle rk_;
  std::string topic_;
  Position pos_;
};

// ---------------------------------------------------------------------------

std::map<std::string, std::string> KafkaLog::base_config(const Options& o) {
  std::map<std::string, std::string> c{
      {"bootstrap.servers", o.brokers},
      {"client.id", "a3mailer"},
      {"reconnect.backoff.max.ms", "1000"},
      // Sized for the largest event (a message at smtp.max_message_size).
      {"message.max.bytes", std::to_string(std::max<std::size_t>(1'000'000, o.max_record_bytes))},
      {"fetch.max.bytes", std::to_string(std::max<std::size_t>(52'428'800, o.max_record_bytes))},
      {"receive.message.max.bytes",
       std::to_string(std::max<std::size_t>(100'000'000, o.max_record_bytes + 1'000'000))},
  };
  for (const auto& [k, v] : o.properties)
    c[k] = v;
  return c;
}

rd_kafka_t* KafkaLog::make_producer() {
  auto settings = base_config(options_);
  settings["enable.idempotence"] = "true";  // no duplicates or reordering from retries
  settings["acks"] = "all";
  settings["compression.type"] = options_.compression;
  settings["linger.ms"] = std::to_string(options_.linger_ms);
  settings["message.timeout.ms"] = std::to_string(options_.delivery_timeout_ms);
  for (const auto& [k, v] : options_.properties)
    settings[k] = v;
  rd_kafka_conf_t* conf = make_conf(settings);  // throws on a bad setting
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_error_cb(conf, on_error);
  rd_kafka_conf_set_opaque(conf, &fatal_);
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(fmt::format("event log (kafka): cannot create producer: {}", err));
  }
  return rk;  // owns conf now
}

std::unique_ptr<KafkaLog> KafkaLog::open(const Options& options) {
  std::unique_ptr<KafkaLog> log(new KafkaLog());
  log->options_ = options;
  log->producer_ = log->make_producer();

  // The topic must exist with the configured partition count: the partition
  // of an account is part of its ordering guarantee.
  const rd_kafka_metadata_t* md = nullptr;
  TopicHandle rkt(rd_kafka_topic_new(log->producer_, options.topic.c_str(), nullptr));
  const auto err = rd_kafka_metadata(log->producer_, 0, rkt.get(), &md, 10000);
  if (err) {
    throw std::runtime_error(fmt::format("event log (kafka): cannot reach {}: {}", options.brokers,
                                         rd_kafka_err2str(err)));
  }
  std::unique_ptr<const rd_kafka_metadata_t, void (*)(const rd_kafka_metadata_t*)> guard(
      md, rd_kafka_metadata_destroy);
  if (md->topic_cnt != 1 || md->topics[0].err) {
    throw std::runtime_error(fmt::format(
        "event log (kafka): topic {} is not available ({}); create it with {} partitions and "
        "retention.ms=-1",
        options.topic, md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no metadata",
        options.partitions));
  }
  if (md->topics[0].partition_cnt != options.partitions) {
    throw std::runtime_error(
        fmt::format("event log (kafka): topic {} has {} partitions but eventlog.partitions = {}",
                    options.topic, md->topics[0].partition_cnt, options.partitions));
  }
  rkt.reset();
  guard.reset();
  log->poller_ = std::thread([l = log.get()] { l->poll_loop(); });
  return log;
}

KafkaLog::~KafkaLog() {
  close();
}

void KafkaLog::close() {
  if (closed_.exchange(true)) return;  // new appends now fail with errc::closed
  // Let in-flight appends complete (or time out) while the poll thread keeps
  // serving their delivery reports.
  const auto deadline =
      std::chrono::steady_clock::now() + milliseconds(options_.delivery_timeout_ms + 5000);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::shared_lock lock(producer_mu_);
      if (!producer_ || rd_kafka_outq_len(producer_) == 0) break;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  stop_ = true;
  if (poller_.joinable()) poller_.join();
  rd_kafka_t* rk = nullptr;
  {
    std::unique_lock lock(producer_mu_);
    std::swap(rk, producer_);
  }
  if (rk) drain_and_destroy(rk);
}

// Fails whatever the producer still holds and answers every appender, then
// destroys it. Runs without producer_mu_ held: a handler may append again.
void KafkaLog::drain_and_destroy(rd_kafka_t* rk) {
  rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  // rd_kafka_destroy drops undelivered messages without their reports, so
  // serve reports until none is left: every handler must be called.
  while (rd_kafka_outq_len(rk) > 0)
    rd_kafka_flush(rk, 1000);
  rd_kafka_destroy(rk);
}

// Only this thread replaces or destroys producer_ while it runs, so it reads
// the pointer without the lock; holding the lock across rd_kafka_poll would
// deadlock a delivery handler that appends again.
void KafkaLog::poll_loop() {
  while (!stop_) {
    if (fatal_) replace_fatal_producer();
    if (producer_) {
      rd_kafka_poll(producer_, 50);
    } else {
      std::this_thread::sleep_for(milliseconds(50));
    }
  }
}

// An idempotent producer that hit a fatal error (e.g. OUT_OF_ORDER_SEQUENCE)
// cannot produce again: a fresh one takes over, then the old one's appends
// are failed.
void KafkaLog::replace_fatal_producer() {
  rd_kafka_t* old = producer_;
  if (old) {
    char buf[512];
    rd_kafka_fatal_error(old, buf, sizeof buf);
    std::lock_guard fl(failure_mu_);
    last_error_ = std::string("fatal producer error: ") + buf;
  }
  rd_kafka_t* fresh = nullptr;
  try {
    fresh = make_producer();
  } catch (const std::exception& e) {
    // Settings were accepted before, so this is not expected; keep trying.
    spdlog::error("{}", e.what());
  }
  {
    std::unique_lock lock(producer_mu_);
    producer_ = fresh;
    fatal_ = fresh == nullptr;
  }
  if (old) drain_and_destroy(old);
  if (fresh) {
    spdlog::info("event log (kafka): producer replaced");
  } else {
    std::this_thread::sleep_for(milliseconds(500));
  }
}

void KafkaLog::append_async(std::string key, std::string value, AppendHandler done) {
  if (closed_) return done(errc::closed);
  if (value.size() + key.size() > options_.max_record_bytes) return done(errc::too_large);
  const std::int32_t partition = partition_for(key);
  auto f = std::make_unique<InFlight>(InFlight{std::move(key), std::move(value), std::move(done)});
  std::shared_lock lock(producer_mu_);
  if (!producer_ || fatal_) {
    lock.unlock();
    return f->done(errc::unavailable);
  }
  for (int attempt = 0;; ++attempt) {
    const auto err = rd_kafka_producev(
        producer_, RD_KAFKA_V_TOPIC(options_.topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(f->key.data(), f->key.size()),
        RD_KAFKA_V_VALUE(f->value.data(), f->value.size()), RD_KAFKA_V_TIMESTAMP(now_ms()),
        RD_KAFKA_V_OPAQUE(f.get()), RD_KAFKA_V_END);
    if (!err) {
      f.release();  // owned by librdkafka until the delivery report
      return;
    }
    // A full local queue drains as the poll thread serves delivery reports.
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 100) {
      lock.unlock();
      std::this_thread::sleep_for(milliseconds(10));
      lock.lock();
      if (!producer_ || fatal_) break;
      continue;
    }
    spdlog::warn("event log (kafka): cannot enqueue append: {}", rd_kafka_err2str(err));
    lock.unlock();
    return f->done(map_error(err));
  }
  lock.unlock();
  f->done(errc::unavailable);
}

boost::system::result<std::unique_ptr<Reader>> KafkaLog::open_reader(Position from) {
  if (from.partition < 0 || from.partition >= options_.partitions || from.offset < 0) {
    return errc::out_of_range;
  }
  auto settings = base_config(options_);
  // A group id is required by the consumer API, but nothing is committed and
  // nothing is subscribed: positions come from the caller (assign).
  settings["group.id"] = "a3mailer-reader";
  settings["enable.auto.commit"] = "false";
  settings["enable.auto.offset.store"] = "false";
  settings["auto.offset.reset"] = "error";
  settings["fetch.wait.max.ms"] = "50";
  settings["enable.partition.eof"] = "false";
  Handle rk;
  try {
    rd_kafka_conf_t* conf = make_conf(settings);
    char err[512];
    rk.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err));
    if (!rk) {
      rd_kafka_conf_destroy(conf);
      spdlog::error("event log (kafka): cannot create consumer: {}", err);
      return errc::unavailable;
    }
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return errc::invalid_argument;
  }
  rd_kafka_poll_set_consumer(rk.get());
  auto reader = std::make_unique<KafkaReader>(std::move(rk), options_.topic, from);
  if (auto r = reader->init(); !r) return r.error();
  return std::unique_ptr<Reader>(std::move(reader));
}

boost::system::result<std::int64_t> KafkaLog::end_offset(std::int32_t partition) {
  if (partition < 0 || partition >= options_.partitions) return errc::out_of_range;
  std::shared_lock lock(producer_mu_);
  if (!producer_) return errc::closed;
  std::int64_t low = 0, high = 0;
  const auto err = rd_kafka_query_watermark_offsets(producer_, options_.topic.c_str(), partition,
                                                    &low, &high, 10000);
  if (err) {
    spdlog::warn("event log (kafka): end offset of {} unavailable: {}", partition,
                 rd_kafka_err2str(err));
    return errc::unavailable;
  }
  return high;
}

std::string KafkaLog::failure() const {
  if (!fatal_) return {};
  std::lock_guard lock(failure_mu_);
  return last_error_;
}

}  // namespace a3::eventlog::kafka
