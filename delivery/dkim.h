// DKIM signing (RFC 6376) with libopendkim: relaxed/relaxed, rsa-sha256
// or ed25519-sha256 (RFC 8463), one key per signing domain. A message is
// signed once, before it is queued, so every retry sends the same bytes.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"

namespace a3::delivery {

class DkimSigner {
 public:
  // Reads and checks every key; throws std::runtime_error naming the key
  // file and the reason.
  explicit DkimSigner(const std::vector<config::DkimKey>& keys);
  ~DkimSigner();
  DkimSigner(const DkimSigner&) = delete;
  DkimSigner& operator=(const DkimSigner&) = delete;

  bool signs(std::string_view domain) const;

  // One message being signed, fed as it arrives (large messages are never
  // whole in memory).
  class Signing {
   public:
    virtual ~Signing() = default;
    virtual void feed(std::string_view bytes) = 0;
    // The "DKIM-Signature: ..." header field with its CRLF, or nullopt if
    // the message could not be signed (then it is sent unsigned, and the
    // reason logged).
    virtual std::optional<std::string> finish() = 0;
  };
  // nullptr when there is no key for `domain` (case-insensitive).
  std::unique_ptr<Signing> start(std::string_view domain) const;

  // The whole message at once.
  std::optional<std::string> sign(std::string_view domain, std::string_view message) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace a3::delivery
