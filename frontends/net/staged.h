// Large message bodies as BodyChunk events (events.fbs StagedBody, ADR 0006),
// shared by SMTP (streamed while DATA comes in) and IMAP (large APPENDs).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/sha256.h"
#include "schemas/event.h"

namespace a3::net {

// A message body on its way to the log as BodyChunk events while it comes
// in, so that no session holds a large message whole, nor one copy per
// recipient (events.fbs, StagedBody).
struct StagedStream {
  static constexpr std::size_t kChunkBytes = 512 * 1024;  // below Kafka's 1 MB default
  // The projector drops chunks a day after they started; a message that took
  // longer than this to arrive is refused (451) well before that.
  static constexpr std::int64_t kMaxAgeMs = 6 * 3'600'000;

  schemas::Uuid blob_id = schemas::Uuid::v7();
  std::int64_t started_ms = 0;
  std::uint32_t chunks = 0;
  std::uint64_t size = 0;
  std::string message_id;  // from the first chunk's header section
  Sha256Hasher hash;
  bool failed = false;  // a chunk was not appended: the message gets 451
};

// One account per partition among `accounts`: the keys under which a staged
// body's chunks go, so each partition holds them before the MessageAppended
// events that name them.
std::vector<std::string> chunk_keys(const std::vector<std::string>& accounts,
                                    const std::function<std::int32_t(std::string_view)>& partition);

// The BodyChunk events (one per key) carrying `data`, the next piece of the
// body; advances `stream`.
std::vector<schemas::Event> chunk_events(StagedStream& stream, const std::vector<std::string>& keys,
                                         std::string_view data, const schemas::Actor& actor,
                                         std::int64_t now_ms);

}  // namespace a3::net
