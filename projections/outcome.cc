#include "projections/outcome.h"

#include <fmt/format.h>

namespace a3::projections {

std::string_view to_string(OutcomeCode code) {
  switch (code) {
    case OutcomeCode::ok:
      return "ok";
    case OutcomeCode::duplicate:
      return "duplicate";
    case OutcomeCode::unknown_account:
      return "unknown account";
    case OutcomeCode::account_exists:
      return "account exists";
    case OutcomeCode::mailbox_missing:
      return "no such mailbox";
    case OutcomeCode::mailbox_exists:
      return "mailbox exists";
    case OutcomeCode::invalid:
      return "invalid";
  }
  return "unknown";
}

std::optional<errc> Outcome::error() const {
  switch (code) {
    case OutcomeCode::ok:
    case OutcomeCode::duplicate:
      return std::nullopt;
    case OutcomeCode::unknown_account:
    case OutcomeCode::mailbox_missing:
      return errc::not_found;
    case OutcomeCode::account_exists:
    case OutcomeCode::mailbox_exists:
      return errc::exists;
    case OutcomeCode::invalid:
      return errc::invalid;
  }
  return errc::invalid;
}

std::string Outcome::str() const {
  std::string s(to_string(code));
  if (!detail.empty()) s += ": " + detail;
  if (!uids.empty()) s += fmt::format(" uids={}", fmt::join(uids, ","));
  if (!modified.empty()) s += fmt::format(" modified={}", fmt::join(modified, ","));
  return s;
}

}  // namespace a3::projections
