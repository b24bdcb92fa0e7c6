#include "frontends/net/staged.h"

#include <set>

#include "mime/mime.h"

namespace a3::net {

std::vector<std::string> chunk_keys(
    const std::vector<std::string>& accounts,
    const std::function<std::int32_t(std::string_view)>& partition) {
  std::vector<std::string> keys;
  std::set<std::int32_t> seen;
  for (const auto& a : accounts) {
    if (seen.insert(partition ? partition(a) : 0).second) keys.push_back(a);
  }
  return keys;
}

std::vector<schemas::Event> chunk_events(StagedStream& stream, const std::vector<std::string>& keys,
                                         std::string_view data, const schemas::Actor& actor,
                                         std::int64_t now_ms) {
  if (stream.chunks == 0) {
    stream.started_ms = now_ms;
    stream.message_id = mime::message_id(data).value_or("");
  }
  stream.hash.update(data);
  std::vector<schemas::Event> out;
  for (const auto& key : keys) {
    out.push_back(schemas::make_event(
        key, actor,
        schemas::BodyChunk{stream.blob_id, stream.started_ms, stream.chunks, std::string(data)}));
    out.back().at_ms = now_ms;  // the projector ages chunks by event time
  }
  ++stream.chunks;
  stream.size += data.size();
  return out;
}

}  // namespace a3::net
