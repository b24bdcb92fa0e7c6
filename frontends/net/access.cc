#include "frontends/net/access.h"

#include <fmt/format.h>

#include "common/idna.h"

namespace a3::net {

AccessRules::AccessRules(const config::AccessControl& access)
    : only_allowed_domains_(!access.allow_domains.empty()),
      allow_countries_(access.allow_countries.begin(), access.allow_countries.end()),
      block_countries_(access.block_countries.begin(), access.block_countries.end()) {
  for (const auto& d : access.allow_domains)
    domains_.emplace(d, true);
  for (const auto& d : access.block_domains)
    domains_.emplace(d, false);  // never in both (config.cc)
  if (access.has_countries())
    db_ = std::make_shared<const CountryDatabase>(access.country_database);
}

std::optional<std::string> AccessRules::refuses_sender(std::string_view sender_domain) const {
  if (domains_.empty()) return std::nullopt;
  // The entries are A-labels: an SMTPUTF8 sender's U-labels are looked up
  // as theirs (one that is not a valid IDN stays as it is, and matches no
  // entry).
  const std::string domain = idna_ascii(sender_domain).value_or(std::string(sender_domain));
  // The domain, then each parent: "a.b.example" "b.example" "example".
  for (std::string_view d = domain; !d.empty();) {
    if (const auto it = domains_.find(d); it != domains_.end()) {
      if (it->second) return std::nullopt;
      return fmt::format("Sender domain {} is blocked here", domain);
    }
    const auto dot = d.find('.');
    if (dot == std::string_view::npos) break;
    d.remove_prefix(dot + 1);
  }
  if (!only_allowed_domains_) return std::nullopt;
  return fmt::format("Sender domain {} is not among the domains accepted here", domain);
}

std::optional<std::string> AccessRules::refuses_country(const boost::asio::ip::address& ip) const {
  if (!db_ || CountryDatabase::local(ip)) return std::nullopt;
  const auto cc = db_->country(ip);
  if (cc && block_countries_.contains(*cc))
    return fmt::format("Connections from country {} are refused here", *cc);
  if (allow_countries_.empty()) return std::nullopt;
  if (!cc) return std::string("Connections from addresses of no known country are refused here");
  if (!allow_countries_.contains(*cc))
    return fmt::format("Connections from country {} are not accepted here", *cc);
  return std::nullopt;
}

}  // namespace a3::net
