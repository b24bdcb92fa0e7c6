// IMAP flags as the mailbox view stores them (RFC 9051 2.3.2).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace a3::projections {

// Whether `flags` holds `f` (case-insensitively: system flags are).
bool has_flag(const std::vector<std::string>& flags, std::string_view f);

// System flags compare case-insensitively (RFC 9051 2.3.2) and are stored
// in their canonical case; \Recent is session state, never stored (RFC
// 3501 2.3.2). Keywords keep their case; duplicates are dropped; sorted.
std::vector<std::string> normalize_flags(const std::vector<std::string>& in);

}  // namespace a3::projections
