// Minimal JSON output helpers (escaping), for logs and --json outputs.
#pragma once

#include <string>
#include <string_view>

namespace a3 {

// Appends `s` as a JSON string literal (with quotes). Bytes that are not
// valid UTF-8, and NUL, are replaced by U+FFFD so that the output is always
// valid JSON that PostgreSQL's jsonb accepts.
void append_json_string(std::string& out, std::string_view s);

// `s` with every byte that is not part of valid UTF-8 (and NUL) replaced by
// U+FFFD: safe for PostgreSQL text columns and JSON.
std::string sanitize_utf8(std::string_view s);

inline std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

}  // namespace a3
