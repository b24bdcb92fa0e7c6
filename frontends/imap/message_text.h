// Helpers shared by the IMAP session's source files (not part of its API).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace a3::imap {

// Whether `flags` holds `f` (system flags compare case-insensitively).
bool has_flag(const std::vector<std::string>& flags, std::string_view f);
// "(\\Seen $Work)", with \\Recent added for a recent message (IMAP4rev1).
std::string flag_text(const std::vector<std::string>& flags, bool recent);
// The header lines of `header` whose names are (or, with `exclude`, are
// not) in `fields`, and the blank line (BODY[HEADER.FIELDS], SEARCH HEADER).
std::string header_fields(std::string_view header, const std::vector<std::string>& fields,
                          bool exclude);

}  // namespace a3::imap
