// The guide's access-control file (config.h AccessControl): the
// [access_control] table, in its own file or in the main one.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "common/config.h"
#include "common/config_section.h"
#include "common/files.h"
#include "common/idna.h"

namespace a3::config::detail {

namespace {

// A domain of an access list: its ASCII form (IDNA A-labels, common/idna.h)
// in lower case, without its trailing dot; labels of letters, digits, '-'
// and '_'.
std::optional<std::string> access_domain(std::string_view d) {
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  auto ascii = idna_ascii(d);
  if (!ascii || ascii->empty() || ascii->size() > 253) return std::nullopt;
  std::size_t label = 0;
  for (const char ch : *ascii) {
    if (ch == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
    } else if (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_') {
      if (++label > 63) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  if (label == 0) return std::nullopt;
  return ascii;
}

// Codes ISO 3166-1 leaves to its users: no country has them, so no
// address is ever in one (the guide's example writes "XX").
bool user_assigned_country(std::string_view cc) {
  return cc == "AA" || cc == "ZZ" || (cc[0] == 'Q' && cc[1] >= 'M') || cc[0] == 'X';
}

}  // namespace

// The keys of an [access_control] table (config.h AccessControl); `base`
// is the directory relative paths start from.
void read_access(Section& s, const fs::path& base, AccessControl& a) {
  // The i-th entry of the array `key`, for an error at its own line.
  auto entry = [&](std::string_view key, std::size_t i) -> const toml::node* {
    const toml::node* n = s.table() ? s.table()->get(key) : nullptr;
    const toml::array* arr = n ? n->as_array() : nullptr;
    return arr && i < arr->size() ? arr->get(i) : n;
  };
  auto domains = [&](std::string_view key, std::vector<std::string>& list) {
    s.strings(key, list);
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (auto norm = access_domain(list[i])) {
        list[i] = std::move(*norm);
      } else {
        s.fail(key, entry(key, i), fmt::format("\"{}\" is not a domain", list[i]));
      }
    }
  };
  auto countries = [&](std::string_view key, std::vector<std::string>& list) {
    s.strings(key, list);
    for (std::size_t i = 0; i < list.size(); ++i) {
      std::string& cc = list[i];
      if (cc.size() != 2 || !std::isalpha(static_cast<unsigned char>(cc[0])) ||
          !std::isalpha(static_cast<unsigned char>(cc[1]))) {
        s.fail(key, entry(key, i),
               fmt::format("\"{}\" is not a two-letter country code (ISO 3166-1 alpha-2)", cc));
        continue;
      }
      for (auto& ch : cc)
        ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      if (user_assigned_country(cc))
        s.warn(key, fmt::format("\"{}\" is a user-assigned code: no address is in it", cc));
    }
  };
  domains("allow_domains", a.allow_domains);
  domains("block_domains", a.block_domains);
  countries("allow_countries", a.allow_countries);
  countries("block_countries", a.block_countries);
  // One entry in both lists would mean two things.
  auto both = [&](std::string_view key, const std::vector<std::string>& allow,
                  const std::vector<std::string>& block, std::string_view other) {
    for (const auto& e : block) {
      if (std::find(allow.begin(), allow.end(), e) != allow.end())
        s.fail_key(key, fmt::format("\"{}\" is in {} too", e, s.qualified(other)));
    }
  };
  both("block_domains", a.allow_domains, a.block_domains, "allow_domains");
  both("block_countries", a.allow_countries, a.block_countries, "allow_countries");
  s.path("country_database", a.country_database);
  if (a.country_database.is_relative()) a.country_database = base / a.country_database;
  if (a.has_countries()) {
    std::string why;
    const int fd = open_regular_file(a.country_database, why);
    if (fd < 0) {
      s.fail_key("country_database",
                 fmt::format("cannot read {} ({}); the country lists need libloc's database "
                             "(Debian's package libloc-database)",
                             a.country_database.string(), why));
    } else {
      ::close(fd);
    }
  }
  s.finish();
}

// The access-control file [security] access_control_file names: its
// [access_control] table, read into `a` (errors name that file).
void read_access_file(const fs::path& file, AccessControl& a, std::vector<std::string>& errors,
                      std::vector<std::string>& warnings) {
  std::string why;
  const auto text = read_regular_file(file, 1 << 20, why);
  if (!text) {
    errors.push_back(
        fmt::format("{}: cannot read the access-control file: {}", file.string(), why));
    return;
  }
  toml::table root;
  try {
    root = toml::parse(*text, file.string());
  } catch (const toml::parse_error& e) {
    errors.push_back(fmt::format("{}: {}", where(file, e.source()), e.description()));
    return;
  }
  Section top(file, "", &root, errors, warnings);
  Section s = top.sub("access_control");
  if (!s.table()) top.fail_key("access_control", "the file has no [access_control] table");
  read_access(s, file.has_parent_path() ? file.parent_path() : fs::path("."), a);
  top.finish();
}

}  // namespace a3::config::detail
