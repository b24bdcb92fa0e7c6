// Password hashing: Argon2id (RFC 9106) through libargon2, stored as PHC
// strings ("$argon2id$v=19$m=...,t=...,p=...$salt$hash"). Clear passwords are
// never stored or logged.
#pragma once

#include <string>
#include <string_view>

namespace a3::password {

// Hashes with a fresh random salt. Throws std::runtime_error if libargon2
// fails (out of memory).
std::string hash(std::string_view password);

// Constant-time verification against a PHC string; false for a malformed hash.
bool verify(std::string_view encoded_hash, std::string_view password);

}  // namespace a3::password
