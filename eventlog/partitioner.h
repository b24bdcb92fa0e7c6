// The partition of a key, the same in both backends so that a store can move
// from the local log to Kafka without reordering any account's events.
#pragma once

#include <cstdint>
#include <string_view>

namespace a3::eventlog {

// Kafka's murmur2 (the Java client's hash, also librdkafka's "murmur2"
// partitioner): keyed records land where Kafka tooling expects them.
std::uint32_t murmur2(std::string_view key);

// (murmur2(key) & 0x7fffffff) % partitions, as Kafka's default partitioner.
inline std::int32_t partition_of(std::string_view key, std::int32_t partitions) {
  return static_cast<std::int32_t>((murmur2(key) & 0x7fffffffu) %
                                   static_cast<std::uint32_t>(partitions));
}

}  // namespace a3::eventlog
