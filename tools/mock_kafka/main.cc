// a3-mock-kafka: librdkafka's mock cluster as a standalone process, so that
// several processes (two daemons, kcat) can share one "Kafka" in tests.
// Prints "BOOTSTRAP <servers>" on standard output, then serves until SIGTERM
// or SIGINT. SIGUSR1 takes every broker down, SIGUSR2 brings them back (for
// tests of the log being unavailable). The mock keeps everything in memory.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <string_view>

#include <fmt/format.h>

int main(int argc, char** argv) {
  int brokers = 3;
  std::string topic = "a3.events";
  int partitions = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--brokers" && i + 1 < argc) {
      brokers = std::atoi(argv[++i]);
    } else if (a == "--topic" && i + 1 < argc) {
      topic = argv[++i];
    } else if (a == "--partitions" && i + 1 < argc) {
      partitions = std::atoi(argv[++i]);
    } else {
      fmt::print(stderr,
                 "usage: a3-mock-kafka [--brokers N] [--topic NAME] [--partitions N]\n"
                 "Starts librdkafka's in-memory mock cluster on loopback and prints\n"
                 "BOOTSTRAP <servers>; stops on SIGTERM/SIGINT.\n");
      return 2;
    }
  }
  if (brokers < 1 || partitions < 1) {
    fmt::print(stderr, "a3-mock-kafka: --brokers and --partitions must be >= 1\n");
    return 2;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGUSR1);
  sigaddset(&stop, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  // The mock cluster lives inside a client instance; this one never produces.
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The host instance never connects anywhere: silence its configuration notices.
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    fmt::print(stderr, "a3-mock-kafka: {}\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) {
    fmt::print(stderr, "a3-mock-kafka: cannot create the mock cluster\n");
    return 1;
  }
  const int rf = brokers >= 3 ? 3 : brokers;
  if (auto e = rd_kafka_mock_topic_create(mc, topic.c_str(), partitions, rf)) {
    fmt::print(stderr, "a3-mock-kafka: cannot create topic {}: {}\n", topic, rd_kafka_err2str(e));
    return 1;
  }
  fmt::print("BOOTSTRAP {}\n", rd_kafka_mock_cluster_bootstraps(mc));
  std::fflush(stdout);
  for (int sig = 0;;) {
    sigwait(&stop, &sig);
    if (sig != SIGUSR1 && sig != SIGUSR2) break;
    for (int id = 1; id <= brokers; ++id) {
      if (sig == SIGUSR1) {
        rd_kafka_mock_broker_set_down(mc, id);
      } else {
        rd_kafka_mock_broker_set_up(mc, id);
      }
    }
    fmt::print(stderr, "a3-mock-kafka: brokers {}\n", sig == SIGUSR1 ? "down" : "up");
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
