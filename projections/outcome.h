// What applying one event did to the mailbox view. Events that cannot apply
// (unknown account, mailbox gone...) are deterministic no-ops whose outcome
// says why; they are never skipped and never stop the projection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "projections/errors.h"
#include "schemas/event.h"

namespace a3::projections {

enum class OutcomeCode {
  ok = 0,
  duplicate,        // this event id was applied before (a Kafka retry wrote it twice)
  unknown_account,  // the account does not exist (or was deleted)
  account_exists,
  mailbox_missing,  // the mailbox id is unknown or belongs to another account
  mailbox_exists,   // a mailbox of that name already exists
  invalid,          // the event cannot apply as written (e.g. renaming INBOX)
};
std::string_view to_string(OutcomeCode code);

struct Outcome {
  OutcomeCode code = OutcomeCode::ok;
  std::string detail;
  std::uint64_t modseq = 0;       // MODSEQ of the change (offset + 1)
  std::uint32_t uidvalidity = 0;  // of the target mailbox, for APPENDUID/COPYUID
  // Append: the new UID. Copy/move: the new UIDs, in the order of
  // source_uids. Flags: the UIDs whose flags changed. Expunge: removed UIDs.
  std::vector<std::uint32_t> uids;
  std::vector<std::uint32_t> source_uids;  // copy/move: the source UIDs that existed
  std::vector<std::uint32_t> modified;     // UNCHANGEDSINCE refused these (RFC 7162 3.1.3)
  std::vector<schemas::Uuid> mailboxes;    // mailboxes whose contents or state changed

  bool ok() const { return code == OutcomeCode::ok; }
  // What a protocol answers for an event that did not apply; nullopt when
  // it did (a duplicate applied before, too).
  std::optional<errc> error() const;
  std::string str() const;  // one line for logs and a3ctl
};

}  // namespace a3::projections
