#include "frontends/net/staged.h"

#include <set>

#include <openssl/evp.h>

#include "projections/mime/mime.h"

namespace a3::net {

BodyHash::BodyHash() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}

BodyHash::~BodyHash() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

void BodyHash::update(std::string_view bytes) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), bytes.data(), bytes.size());
}

std::array<std::uint8_t, 32> BodyHash::final() {
  std::array<std::uint8_t, 32> out{};
  unsigned int n = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), out.data(), &n);
  return out;
}

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
    stream.message_id = projections::mime::message_id(data).value_or("");
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
