// The guide's access-control file in force (config::AccessControl): which
// sender domains the MX takes, and which countries may connect. Built
// whole before it replaces the one in force (a SIGHUP that cannot open the
// country database changes nothing).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <boost/asio/ip/address.hpp>

#include "common/config.h"
#include "frontends/net/countries.h"

namespace a3::net {

class AccessRules {
 public:
  AccessRules() = default;  // no rule: everyone, everything
  // Opens the country database when a country list is set; throws
  // std::runtime_error (the file and the reason) if it cannot.
  explicit AccessRules(const config::AccessControl& access);

  bool has_domains() const { return !domains_.empty(); }
  bool has_countries() const { return db_ != nullptr; }

  // Why the MX refuses mail from a sender in `domain` (ASCII in lower
  // case, or UTF-8 from an SMTPUTF8 sender), for a 550 5.7.1, or nullopt. The longest entry of
  // allow_domains and block_domains that is the domain or one of its parents decides; none refuses
  // only when allow_domains is set.
  std::optional<std::string> refuses_sender(std::string_view sender_domain) const;

  // Why a connection from `ip` is refused by the country lists, or nullopt.
  // Local networks (loopback, private, link-local) are never in a country
  // and never refused; an address the database places nowhere is refused
  // only when allow_countries is set.
  std::optional<std::string> refuses_country(const boost::asio::ip::address& ip) const;

 private:
  std::map<std::string, bool, std::less<>> domains_;  // domain -> allowed
  bool only_allowed_domains_ = false;
  std::set<std::string, std::less<>> allow_countries_, block_countries_;
  std::shared_ptr<const CountryDatabase> db_;
};

}  // namespace a3::net
