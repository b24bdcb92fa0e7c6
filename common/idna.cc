#include "common/idna.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>

#include <idn2.h>

namespace a3 {

std::optional<std::string> idna_ascii(std::string_view domain) {
  auto lower = [](std::string s) {
    for (auto& ch : s)
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  };
  const bool ascii = std::all_of(domain.begin(), domain.end(),
                                 [](char ch) { return static_cast<unsigned char>(ch) < 0x80; });
  if (ascii) return lower(std::string(domain));
  if (domain.find('\0') != std::string_view::npos) return std::nullopt;
  char* out = nullptr;
  const std::string in(domain);
  if (idn2_to_ascii_8z(in.c_str(), &out, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK)
    return std::nullopt;
  const std::unique_ptr<char, decltype(&idn2_free)> owned(out, &idn2_free);
  return lower(out);
}

}  // namespace a3
