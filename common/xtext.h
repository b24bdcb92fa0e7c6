// RFC 3461 4: xtext, the encoding of DSN parameters (ENVID, ORCPT): "+"
// and two upper-case hex digits for a byte outside "!".."~", "+" and "=".
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace a3 {

// nullopt if malformed.
std::optional<std::string> xtext_decode(std::string_view in);
std::string xtext_encode(std::string_view in);

}  // namespace a3
