// Domains in one spelling: the ASCII form of IDNA 2008 (RFC 5890), so that
// "bücher.example" and "xn--bcher-kva.example" are the same domain, in
// lower case, through libidn2 (UTS #46 non-transitional, NFC).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace a3 {

// `domain` with its U-labels as A-labels and ASCII in lower case; nullopt
// if it is not a valid internationalised domain name. An ASCII domain is
// only lowercased (its syntax is the caller's to check).
std::optional<std::string> idna_ascii(std::string_view domain);

}  // namespace a3
