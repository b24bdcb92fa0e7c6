// SHA-256 (OpenSSL EVP): message bodies are stored once by their hash, and
// retry-safe event ids are derived from one.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace a3 {

using Sha256 = std::array<std::uint8_t, 32>;

Sha256 sha256(std::string_view data);

// Lowercase hexadecimal, as in a3ctl's JSON and the audit trail.
std::string hex(const Sha256& digest);

// The digest of data fed in pieces (a body that arrives in chunks).
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void update(std::string_view bytes);
  // The digest of everything fed so far; the hasher is spent afterwards.
  Sha256 final();

 private:
  void* ctx_;  // EVP_MD_CTX, owned
};

}  // namespace a3
