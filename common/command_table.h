// Lookups in a protocol's command table: an array of entries whose `name`
// is the command's upper-case name (IMAP, SMTP and POP3 each have one).
#pragma once

#include <string_view>
#include <vector>

namespace a3 {

template <typename Table>
auto find_command(const Table& table, std::string_view name) -> decltype(&table[0]) {
  for (const auto& entry : table) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

template <typename Table>
std::vector<std::string_view> command_names(const Table& table) {
  std::vector<std::string_view> out;
  for (const auto& entry : table)
    out.push_back(entry.name);
  return out;
}

}  // namespace a3
