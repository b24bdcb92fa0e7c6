// librdkafka's mock cluster (the real Kafka protocol over loopback TCP),
// owned by a test.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <stdexcept>
#include <string>

namespace a3::test {

class MockKafka {
 public:
  MockKafka(int brokers, const std::string& topic, int partitions) : brokers_(brokers) {
    char err[512];
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof err);
    if (!rk_) throw std::runtime_error(err);
    mc_ = rd_kafka_mock_cluster_new(rk_, brokers);
    if (!mc_) throw std::runtime_error("rd_kafka_mock_cluster_new failed");
    if (rd_kafka_mock_topic_create(mc_, topic.c_str(), partitions, brokers >= 3 ? 3 : brokers)) {
      throw std::runtime_error("rd_kafka_mock_topic_create failed");
    }
  }
  ~MockKafka() {
    rd_kafka_mock_cluster_destroy(mc_);
    rd_kafka_destroy(rk_);
  }
  MockKafka(const MockKafka&) = delete;
  MockKafka& operator=(const MockKafka&) = delete;

  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(mc_); }
  rd_kafka_mock_cluster_t* cluster() const { return mc_; }

  void all_brokers(bool up) {
    for (int id = 1; id <= brokers_; ++id) {
      if (up) {
        rd_kafka_mock_broker_set_up(mc_, id);
      } else {
        rd_kafka_mock_broker_set_down(mc_, id);
      }
    }
  }

 private:
  int brokers_;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* mc_ = nullptr;
};

}  // namespace a3::test
