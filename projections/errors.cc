#include "projections/errors.h"

#include <string>

namespace a3::projections {

namespace {

class Category : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "a3.store"; }
  std::string message(int ev) const override {
    return std::string(to_string(static_cast<errc>(ev)));
  }
};

}  // namespace

const boost::system::error_category& store_category() noexcept {
  static const Category c;
  return c;
}

errc to_errc(const boost::system::error_code& ec) {
  if (ec.category() == store_category()) return static_cast<errc>(ec.value());
  return errc::unavailable;
}

std::string_view to_string(errc e) {
  switch (e) {
    case errc::not_found:
      return "not found";
    case errc::exists:
      return "already exists";
    case errc::in_use:
      return "in use by another session";
    case errc::over_quota:
      return "over quota";
    case errc::exceeds_quota:
      return "larger than the quota";
    case errc::conflict:
      return "changed concurrently";
    case errc::unavailable:
      return "the mail store cannot take changes now";
    case errc::pending:
      return "logged, not applied yet";
    case errc::invalid:
      return "invalid";
    case errc::limit:
      return "over a limit";
  }
  return "unknown store error";
}

}  // namespace a3::projections
