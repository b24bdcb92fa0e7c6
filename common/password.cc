#include "common/password.h"

#include <argon2.h>
#include <openssl/rand.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace a3::password {

namespace {

// OWASP's Argon2id baseline (m = 19 MiB, t = 2, p = 1): ~30 ms per hash here,
// enough to make offline guessing expensive without making logins slow.
constexpr std::uint32_t kTimeCost = 2;
constexpr std::uint32_t kMemoryKiB = 19 * 1024;
constexpr std::uint32_t kParallelism = 1;
constexpr std::size_t kSaltLen = 16;
constexpr std::size_t kHashLen = 32;

}  // namespace

std::string hash(std::string_view password) {
  unsigned char salt[kSaltLen];
  if (RAND_bytes(salt, sizeof salt) != 1) throw std::runtime_error("no randomness for a salt");
  std::vector<char> encoded(
      argon2_encodedlen(kTimeCost, kMemoryKiB, kParallelism, kSaltLen, kHashLen, Argon2_id));
  const int rc =
      argon2id_hash_encoded(kTimeCost, kMemoryKiB, kParallelism, password.data(), password.size(),
                            salt, sizeof salt, kHashLen, encoded.data(), encoded.size());
  if (rc != ARGON2_OK) {
    throw std::runtime_error(std::string("argon2id: ") + argon2_error_message(rc));
  }
  return std::string(encoded.data());
}

bool verify(std::string_view encoded_hash, std::string_view password) {
  if (!encoded_hash.starts_with("$argon2id$")) return false;
  const std::string h(encoded_hash);  // libargon2 wants a NUL-terminated string
  return argon2id_verify(h.c_str(), password.data(), password.size()) == ARGON2_OK;
}

}  // namespace a3::password
