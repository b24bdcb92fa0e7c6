// Mailbox names as the commands check and match them.
#pragma once

#include <string>
#include <string_view>

namespace a3::imap {

// A name we create or rename to: "/"-separated non-empty parts, none "." or
// "..", no control characters, no LIST wildcards.
bool valid_name(const std::string& name);

// LIST wildcard match (RFC 9051 6.3.9): '*' matches anything, '%' anything
// but the hierarchy delimiter.
bool wildcard(std::string_view pattern, std::string_view name);

}  // namespace a3::imap
