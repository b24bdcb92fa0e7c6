#include <librdkafka/rdkafka.h>

#include <gtest/gtest.h>

#include <random>

#include "eventlog/partitioner.h"

namespace a3::eventlog {
namespace {

// Our murmur2 must place keys exactly where librdkafka's (and the Java
// client's) murmur2 partitioner does, so both backends agree and Kafka
// tooling agrees with us.
TEST(Partitioner, MatchesLibrdkafkaMurmur2) {
  std::mt19937 rng(42);
  std::vector<std::string> keys = {
      "", "a", "ab", "abc", "abcd", "alice@example.test", "bob@example.test", "\xff\xfe\x00\x01"};
  for (int i = 0; i < 2000; ++i) {
    std::string k(rng() % 40, '\0');
    for (auto& c : k)
      c = static_cast<char>(rng());
    keys.push_back(std::move(k));
  }
  for (const auto& key : keys) {
    for (std::int32_t n : {1, 2, 3, 7, 16, 100}) {
      const auto theirs =
          rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(), n, nullptr, nullptr);
      ASSERT_EQ(partition_of(key, n), theirs) << "key of " << key.size() << " bytes, n=" << n;
    }
  }
}

// Kafka's own test vectors (org.apache.kafka.common.utils.UtilsTest).
TEST(Partitioner, KafkaTestVectors) {
  EXPECT_EQ(static_cast<std::int32_t>(murmur2("21")), -973932308);
  EXPECT_EQ(static_cast<std::int32_t>(murmur2("foobar")), -790332482);
  EXPECT_EQ(static_cast<std::int32_t>(murmur2("a-little-bit-long-string")), -985981536);
  EXPECT_EQ(static_cast<std::int32_t>(murmur2("a-little-bit-longer-string")), -1486304829);
  EXPECT_EQ(static_cast<std::int32_t>(murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8")),
            -58897971);
  EXPECT_EQ(static_cast<std::int32_t>(murmur2(std::string_view("abc", 3))), 479470107);
}

}  // namespace
}  // namespace a3::eventlog
