#include "eventlog/local/record_format.h"

namespace a3::eventlog::local {

namespace {

constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kHeader = 1 + 8 + 4;

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}

std::uint64_t get_be(std::string_view in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v = v << 8 | static_cast<std::uint8_t>(in[at + i]);
  return v;
}

}  // namespace

std::string record_key(std::int32_t partition, std::int64_t offset) {
  std::string k;
  k.reserve(12);
  put_be(k, static_cast<std::uint32_t>(partition), 4);
  put_be(k, static_cast<std::uint64_t>(offset), 8);
  return k;
}

std::optional<Position> parse_record_key(std::string_view key) {
  if (key.size() != 12) return std::nullopt;
  Position p{static_cast<std::int32_t>(get_be(key, 0, 4)),
             static_cast<std::int64_t>(get_be(key, 4, 8))};
  if (p.partition < 0 || p.offset < 0) return std::nullopt;
  return p;
}

std::string encode_record_header(std::int64_t timestamp_ms, std::string_view key) {
  std::string v;
  v.reserve(kHeader);
  v.push_back(static_cast<char>(kVersion));
  put_be(v, static_cast<std::uint64_t>(timestamp_ms), 8);
  put_be(v, key.size(), 4);
  return v;
}

std::string encode_record_value(std::int64_t timestamp_ms, std::string_view key,
                                std::string_view payload) {
  std::string v;
  v.reserve(kHeader + key.size() + payload.size());
  v.push_back(static_cast<char>(kVersion));
  put_be(v, static_cast<std::uint64_t>(timestamp_ms), 8);
  put_be(v, key.size(), 4);
  v.append(key);
  v.append(payload);
  return v;
}

bool parse_record_value(std::string_view bytes, Record& out) {
  if (bytes.size() < kHeader || static_cast<std::uint8_t>(bytes[0]) != kVersion) return false;
  const auto key_len = get_be(bytes, 9, 4);
  if (key_len > bytes.size() - kHeader) return false;
  out.timestamp_ms = static_cast<std::int64_t>(get_be(bytes, 1, 8));
  out.key.assign(bytes.substr(kHeader, key_len));
  out.value.assign(bytes.substr(kHeader + key_len));
  return true;
}

}  // namespace a3::eventlog::local
