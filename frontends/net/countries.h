// The country of a client address, from IPFire's location database
// (libloc; Debian's libloc-database installs it): ADR 0015.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/ip/address.hpp>

struct loc_ctx;
struct loc_database;

namespace a3::net {

class CountryDatabase {
 public:
  // Opens `file`; std::runtime_error (the file and the reason) if it is
  // not a location database.
  explicit CountryDatabase(const std::filesystem::path& file);
  ~CountryDatabase();
  CountryDatabase(const CountryDatabase&) = delete;
  CountryDatabase& operator=(const CountryDatabase&) = delete;

  // The ISO 3166-1 code of the network holding `ip`, or nullopt when the
  // database places it nowhere. Loopback, private, link-local and shared
  // (CGN) addresses are never in a country, whatever the file says.
  std::optional<std::string> country(const boost::asio::ip::address& ip) const;

  const std::filesystem::path& file() const { return file_; }
  // When the database was made (its own header).
  std::int64_t created_at() const;

  // Whether `ip` is in one of the networks no country owns (the list
  // above); exposed for the tests.
  static bool local(const boost::asio::ip::address& ip);

 private:
  std::filesystem::path file_;
  loc_ctx* ctx_ = nullptr;
  loc_database* db_ = nullptr;
  // libloc's reference counts are not atomic: one lookup at a time.
  mutable std::mutex mu_;
};

}  // namespace a3::net
