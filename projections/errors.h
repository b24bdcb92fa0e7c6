// One taxonomy of what the mail store can answer instead of doing what was
// asked, shared by every protocol. Each protocol maps it to its replies in
// one table (imap/replies.h, smtp/replies.h, pop3/replies.h), so the same
// condition gets the same answer wherever it comes from.
#pragma once

#include <optional>
#include <string_view>

#include <boost/system/error_code.hpp>

namespace a3::projections {

enum class errc {
  not_found = 1,  // no such account, mailbox or message
  exists,         // an account or mailbox of that name exists already
  in_use,         // held by another session (a POP3 maildrop)
  over_quota,     // the account is full now; may fit once mail is deleted
  exceeds_quota,  // larger than the account's whole quota: will never fit
  conflict,       // changed concurrently (a condition on the state failed)
  unavailable,    // the log did not take the change: nothing happened, retry later
  pending,        // logged (durable) but not applied in time: it will happen
  invalid,        // cannot apply as asked (e.g. renaming INBOX)
  limit,          // a configured limit refuses it (rate, size, count)
};

const boost::system::error_category& store_category() noexcept;
inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), store_category()};
}
std::string_view to_string(errc e);
// The taxonomy's name for any error a store call returns: its own, or
// unavailable for the log's (nothing was done).
errc to_errc(const boost::system::error_code& ec);

}  // namespace a3::projections

template <>
struct boost::system::is_error_code_enum<a3::projections::errc> : std::true_type {};
