// On-disk encoding of local log records (RocksDB keys and values).
//
// key   = partition (4 bytes, big-endian) | offset (8 bytes, big-endian)
//         so that RocksDB's byte order is (partition, offset) order.
// value = version (1 byte, = 1) | timestamp ms (8 bytes, big-endian)
//       | key length (4 bytes, big-endian) | key | payload
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "eventlog/event_log.h"

namespace a3::eventlog::local {

std::string record_key(std::int32_t partition, std::int64_t offset);
std::optional<Position> parse_record_key(std::string_view key);

// The value without the payload: header | key. The payload follows it.
std::string encode_record_header(std::int64_t timestamp_ms, std::string_view key);
std::string encode_record_value(std::int64_t timestamp_ms, std::string_view key,
                                std::string_view payload);
// Fills timestamp_ms, key and value of `out`; false if the bytes are malformed.
bool parse_record_value(std::string_view bytes, Record& out);

}  // namespace a3::eventlog::local
