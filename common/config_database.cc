// The [database] section as a libpq connection string (config.h Database).
#include <cctype>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/config.h"

namespace a3::config {

namespace {

// A libpq keyword value, quoted when it has to be.
std::string conninfo_value(const std::string& v) {
  if (!v.empty() && v.find_first_of(" '\\") == std::string::npos) return v;
  std::string out = "'";
  for (char ch : v) {
    if (ch == '\'' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "'";
}

}  // namespace

std::string Database::conninfo() const {
  if (!url.empty()) {
    // A URL names its own password; $STALWART_DB_PASSWORD fills in a missing one.
    if (password.empty()) return url;
    if (url.find("://") == std::string::npos) return url + " password=" + conninfo_value(password);
    std::string encoded;  // RFC 3986 unreserved characters stay
    for (unsigned char ch : password) {
      if (std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
        encoded += static_cast<char>(ch);
      } else {
        encoded += fmt::format("%{:02X}", ch);
      }
    }
    return url + (url.find('?') == std::string::npos ? "?" : "&") + "password=" + encoded;
  }
  std::vector<std::string> parts;
  if (!host.empty()) parts.push_back("host=" + conninfo_value(host));
  if (port) parts.push_back(fmt::format("port={}", port));
  if (!name.empty()) parts.push_back("dbname=" + conninfo_value(name));
  if (!username.empty()) parts.push_back("user=" + conninfo_value(username));
  if (!password.empty()) parts.push_back("password=" + conninfo_value(password));
  if (connect_timeout_s) parts.push_back(fmt::format("connect_timeout={}", connect_timeout_s));
  return fmt::format("{}", fmt::join(parts, " "));
}

}  // namespace a3::config
