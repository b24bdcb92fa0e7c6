// The mailbox projection: a deterministic function from (view, event,
// position) to (changes, outcome). IMAP semantics are decided here, once, so
// that replaying the log rebuilds the same view byte for byte:
//   - MODSEQ of a change = its log offset + 1 (strictly increasing per
//     account, since an account's events share one partition);
//   - UIDVALIDITY of a new mailbox = the MODSEQ of its creation (low 32 bits);
//   - UIDs come from UIDNEXT, strictly ascending, never reused;
//   - expunged UIDs are remembered with their MODSEQ (QRESYNC VANISHED).
// AccountCreated also creates INBOX, Sent, Drafts, Trash and Junk (with
// SPECIAL-USE), with ids derived from the event id, so that an account never
// exists without its INBOX.
#pragma once

#include "eventlog/event_log.h"
#include "projections/outcome.h"
#include "projections/view/batch.h"
#include "schemas/event.h"

namespace a3::projections {

// Applies `event`, read at `pos`, into `batch`. Never throws for event
// content: what cannot apply is a no-op with an explanatory outcome. The
// caller stores positions; this records the event id (duplicates) and the
// outcome of no-ops.
// `mime_summary`, if given, is the encoded MIME summary of a MessageAppended's
// body, parsed ahead of time (in parallel) by the caller; otherwise it is
// parsed here when the body is new.
Outcome apply_event(view::Batch& batch, const schemas::Event& event, eventlog::Position pos,
                    const std::string* mime_summary = nullptr);

// The encoded MIME summary of a message body, as apply_event stores it.
std::string encoded_mime_summary(std::string_view raw);

// What a batch that added or lifted a ban reports among the mailboxes it
// changed, so that Store::subscribe_bans wakes on it. No mailbox has it.
const schemas::Uuid& bans_changed();

// The mailbox id AccountCreated gives to one of the default mailboxes.
schemas::Uuid default_mailbox_id(const schemas::Uuid& event_id, std::string_view name);

}  // namespace a3::projections
