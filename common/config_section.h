// Reading one TOML table of the configuration (common/config.cc): every key
// taken is remembered, so whatever remains at the end is an unknown key (a
// typo must not be silently ignored). Errors are collected, so that every
// one of a file is reported at once; a key in error keeps its default.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <toml++/toml.h>

namespace a3::config {
struct AccessControl;
}  // namespace a3::config

namespace a3::config::detail {

namespace fs = std::filesystem;

inline std::string where(const fs::path& file, const toml::source_region& src) {
  if (src.begin.line == 0) return file.string();
  return fmt::format("{}:{}:{}", file.string(), src.begin.line, src.begin.column);
}

class Section {
 public:
  Section(const fs::path& file, std::string name, const toml::table* table,
          std::vector<std::string>& errors, std::vector<std::string>& warnings)
      : file_(file), name_(std::move(name)), table_(table), errors_(errors), warnings_(warnings) {}

  void fail(std::string_view key, const toml::node* node, std::string_view reason) const {
    const auto src = node ? node->source() : (table_ ? table_->source() : toml::source_region{});
    errors_.push_back(fmt::format("{}: {}: {}", where(file_, src), qualified(key), reason));
  }

  void fail_key(std::string_view key, std::string_view reason) const {
    fail(key, table_ ? table_->get(key) : nullptr, reason);
  }

  void warn(std::string_view key, std::string_view reason) const {
    const toml::node* n = table_ ? table_->get(key) : nullptr;
    const auto src = n ? n->source() : (table_ ? table_->source() : toml::source_region{});
    warnings_.push_back(fmt::format("{}: {}: {}", where(file_, src), qualified(key), reason));
  }

  // A key of the deployment guide that cannot apply to this design: taken
  // (never "unknown"), with one warning that says why.
  void ignored(std::string_view key, std::string_view why) {
    if (take(key)) warn(key, fmt::format("ignored: {}", why));
  }

  // Every key of the table ignored, with one warning naming them.
  void ignore_all(std::string_view why) {
    if (!table_ || table_->empty()) return;
    std::vector<std::pair<toml::source_position, std::string>> found;  // in the file's order
    for (const auto& [k, v] : *table_) {
      found.emplace_back(v.source().begin, std::string(k.str()));
      seen_.insert(std::string(k.str()));
    }
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
      return std::pair(a.first.line, a.first.column) < std::pair(b.first.line, b.first.column);
    });
    std::vector<std::string> keys;
    for (auto& f : found)
      keys.push_back(std::move(f.second));
    warnings_.push_back(fmt::format("{}: {} ({}): ignored: {}", where(file_, table_->source()),
                                    name_, fmt::join(keys, ", "), why));
  }

  bool has(std::string_view key) const { return table_ && table_->get(key) != nullptr; }

  // Two names for one key (ours and the guide's): whichever is present;
  // both is an error, since one of them would be silently ignored.
  std::string_view either(std::string_view ours, std::string_view guide) {
    if (has(ours) && has(guide)) {
      take(guide);
      fail_key(guide, fmt::format("set only one of {} and {}", qualified(ours), qualified(guide)));
      return ours;
    }
    return has(guide) ? guide : ours;
  }

  std::string qualified(std::string_view key) const {
    return name_.empty() ? std::string(key) : fmt::format("{}.{}", name_, key);
  }

  const toml::node* take(std::string_view key) {
    if (!table_) return nullptr;
    seen_.insert(std::string(key));
    return table_->get(key);
  }

  void string(std::string_view key, std::string& out) {
    const toml::node* n = take(key);
    if (!n) return;
    const auto* s = n->as_string();
    if (!s) return fail(key, n, "expected a string");
    out = expand_env(key, n, s->get());
  }

  void one_of(std::string_view key, std::string& out, std::initializer_list<std::string_view> ok) {
    const std::string before = out;
    const std::size_t errors = errors_.size();
    string(key, out);
    if (errors_.size() != errors) return;
    for (auto v : ok) {
      if (out == v) return;
    }
    fail(key, table_ ? table_->get(key) : nullptr,
         fmt::format("\"{}\" is not one of: {}", out, fmt::join(ok, ", ")));
    out = before;
  }

  void path(std::string_view key, fs::path& out) {
    std::string s;
    string(key, s);
    if (!s.empty()) out = s;
  }

  template <typename Int>
  void integer(std::string_view key, Int& out, std::int64_t min, std::int64_t max) {
    const toml::node* n = take(key);
    if (!n) return;
    const auto* v = n->as_integer();
    if (!v) return fail(key, n, "expected an integer");
    const std::int64_t x = v->get();
    if (x < min || x > max)
      return fail(key, n, fmt::format("must be between {} and {} (got {})", min, max, x));
    out = static_cast<Int>(x);
  }

  // A size in bytes: an integer, or a string with a unit (B, KB, MB, GB,
  // TB, or KiB ... TiB; both powers of 1024, as logrotate and spdlog count).
  void size(std::string_view key, std::int64_t& out, std::int64_t min, std::int64_t max) {
    const toml::node* n = take(key);
    if (!n) return;
    std::int64_t x = 0;
    if (const auto* v = n->as_integer()) {
      x = v->get();
    } else if (const auto* str = n->as_string()) {
      if (!parse_size(str->get(), x))
        return fail(key, n, fmt::format("\"{}\" is not a size (e.g. 100MB, 1GB)", str->get()));
    } else {
      return fail(key, n, "expected a size (an integer, or a string like \"100MB\")");
    }
    if (x < min || x > max)
      return fail(key, n, fmt::format("must be between {} and {} bytes (got {})", min, max, x));
    out = x;
  }

  static bool parse_size(std::string_view s, std::int64_t& out) {
    std::size_t i = 0;
    std::int64_t n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (n > (std::int64_t{1} << 50)) return false;
      n = n * 10 + (s[i++] - '0');
    }
    if (i == 0) return false;
    while (i < s.size() && s[i] == ' ')
      ++i;
    std::string unit;
    for (; i < s.size(); ++i)
      unit += static_cast<char>(std::toupper(static_cast<unsigned char>(s[i])));
    int shift = 0;
    if (unit.empty() || unit == "B") {
      shift = 0;
    } else if (unit == "K" || unit == "KB" || unit == "KIB") {
      shift = 10;
    } else if (unit == "M" || unit == "MB" || unit == "MIB") {
      shift = 20;
    } else if (unit == "G" || unit == "GB" || unit == "GIB") {
      shift = 30;
    } else if (unit == "T" || unit == "TB" || unit == "TIB") {
      shift = 40;
    } else {
      return false;
    }
    if (shift && n > (std::int64_t{1} << (62 - shift))) return false;
    out = n << shift;
    return true;
  }

  void boolean(std::string_view key, bool& out) {
    const toml::node* n = take(key);
    if (!n) return;
    const auto* v = n->as_boolean();
    if (!v) return fail(key, n, "expected true or false");
    out = v->get();
  }

  void strings(std::string_view key, std::vector<std::string>& out) {
    const toml::node* n = take(key);
    if (!n) return;
    const auto* arr = n->as_array();
    if (!arr) return fail(key, n, "expected an array of strings");
    out.clear();
    for (const auto& e : *arr) {
      const auto* s = e.as_string();
      if (!s) {
        fail(key, &e, "expected an array of strings");
        continue;
      }
      out.push_back(expand_env(key, &e, s->get()));
    }
  }

  // One string or an array of them (the guide writes both for `bind`).
  void string_or_strings(std::string_view key, std::vector<std::string>& out) {
    const toml::node* n = table_ ? table_->get(key) : nullptr;
    if (n && n->is_string()) {
      std::string one;
      string(key, one);
      out = {one};
      return;
    }
    if (n && !n->is_array()) {
      take(key);
      return fail(key, n, "expected a string or an array of strings");
    }
    strings(key, out);
  }

  // An array of tables ([[section.key]]): `each` reads one as a Section
  // named section.key[i], and every key of it must have been taken.
  template <typename F>
  void tables(std::string_view key, F&& each) {
    const toml::node* n = take(key);
    if (!n) return;
    const auto* arr = n->as_array();
    if (!arr)
      return fail(key, n, fmt::format("expected an array of tables ([[{}]])", qualified(key)));
    int i = 0;
    for (const auto& e : *arr) {
      if (!e.is_table()) {
        fail(key, &e, "expected a table");
        continue;
      }
      Section t(file_, fmt::format("{}[{}]", qualified(key), i++), e.as_table(), errors_,
                warnings_);
      each(t);
      t.finish();
    }
  }

  // A sub-table; absent is an empty section.
  Section sub(std::string_view key) {
    const toml::node* n = take(key);
    if (n && !n->is_table()) fail(key, n, "expected a table");
    return Section(file_, qualified(key), n ? n->as_table() : nullptr, errors_, warnings_);
  }

  const toml::table* table() const { return table_; }
  const std::string& name() const { return name_; }

  // Every key of the table must have been taken.
  void finish() const {
    if (!table_) return;
    for (const auto& [k, v] : *table_) {
      if (!seen_.contains(std::string(k.str()))) fail(k.str(), &v, "unknown key");
    }
  }

 private:
  std::string expand_env(std::string_view key, const toml::node* n, const std::string& v) const {
    if (v.size() > 3 && v.starts_with("${") && v.ends_with("}")) {
      const std::string var = v.substr(2, v.size() - 3);
      const char* value = std::getenv(var.c_str());
      if (!value) {
        fail(key, n, fmt::format("environment variable {} is not set", var));
        return "";
      }
      return value;
    }
    return v;
  }

  const fs::path& file_;
  std::string name_;
  const toml::table* table_;
  std::set<std::string> seen_;
  std::vector<std::string>& errors_;
  std::vector<std::string>& warnings_;
};

// common/config_access.cc: the keys of an [access_control] table (`base`:
// where its relative paths start), and the file security.access_control_file
// names (its errors name that file).
void read_access(Section& s, const fs::path& base, AccessControl& a);
void read_access_file(const fs::path& file, AccessControl& a, std::vector<std::string>& errors,
                      std::vector<std::string>& warnings);

}  // namespace a3::config::detail
