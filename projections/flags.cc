#include "projections/flags.h"

#include <algorithm>

#include "common/ascii.h"

namespace a3::projections {

using ascii::iequals;

bool has_flag(const std::vector<std::string>& flags, std::string_view f) {
  for (const auto& x : flags) {
    if (iequals(x, f)) return true;
  }
  return false;
}

std::vector<std::string> normalize_flags(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& f : in) {
    if (f.empty() || iequals(f, "\\Recent") || has_flag(out, f)) continue;
    static constexpr std::string_view system[] = {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted",
                                                  "\\Draft"};
    std::string canon = f;
    if (f[0] == '\\') {
      for (auto sys : system) {
        if (iequals(f, sys)) canon = sys;
      }
    }
    out.push_back(std::move(canon));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace a3::projections
