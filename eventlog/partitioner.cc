#include "eventlog/partitioner.h"

#include <cstring>

namespace a3::eventlog {

// MurmurHash2 (Austin Appleby), 32-bit, with Kafka's seed 0x9747b28c and
// little-endian word reads, as org.apache.kafka.common.utils.Utils.murmur2.
std::uint32_t murmur2(std::string_view key) {
  constexpr std::uint32_t m = 0x5bd1e995;
  constexpr int r = 24;
  const auto* data = reinterpret_cast<const unsigned char*>(key.data());
  std::size_t len = key.size();
  std::uint32_t h = 0x9747b28c ^ static_cast<std::uint32_t>(len);

  while (len >= 4) {
    std::uint32_t k =
        static_cast<std::uint32_t>(data[0]) | static_cast<std::uint32_t>(data[1]) << 8 |
        static_cast<std::uint32_t>(data[2]) << 16 | static_cast<std::uint32_t>(data[3]) << 24;
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
    data += 4;
    len -= 4;
  }
  switch (len) {
    case 3:
      h ^= static_cast<std::uint32_t>(data[2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= static_cast<std::uint32_t>(data[1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= data[0];
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return h;
}

}  // namespace a3::eventlog
