#include "projections/account_restore.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "projections/mailbox_projector.h"
#include "projections/view/batch.h"
#include "projections/view/view_db.h"
#include "schemas/codec.h"

namespace a3::projections {

namespace {

namespace fs = std::filesystem;
using schemas::Uuid;

// The account's state at `target`: its events of the partition, applied to a
// scratch view (other accounts' events are left out: they cannot touch it).
std::unique_ptr<view::ViewDb> state_at(eventlog::EventLog& log, const std::string& account,
                                       std::int64_t target, const fs::path& scratch) {
  auto db = view::ViewDb::open(scratch);
  db->set_wal(false);
  const std::int32_t p = log.partition_for(account);
  auto reader = log.open_reader({p, 0});
  if (!reader) throw std::runtime_error("cannot read the log: " + reader.error().message());
  view::Batch batch(*db);
  while ((*reader)->position().offset < target) {
    const auto left = static_cast<std::size_t>(target - (*reader)->position().offset);
    auto records = (*reader)->poll(std::min<std::size_t>(left, 4096), std::chrono::seconds(5));
    if (!records) throw std::runtime_error("cannot read the log: " + records.error().message());
    if (records->empty()) throw std::runtime_error("the log ends before the target");
    for (const auto& r : *records) {
      auto e = schemas::decode(r.value);
      if (!e) throw std::runtime_error(fmt::format("corrupt event at {}", r.position.str()));
      // Staged bodies travel under one recipient's key: every chunk of the
      // partition is staged, so this account's messages assemble.
      if (e->account == account || std::holds_alternative<schemas::BodyChunk>(e->body))
        apply_event(batch, *e, r.position);
    }
    if (batch.body_bytes() > (64u << 20)) batch.commit();
  }
  batch.commit();
  return db;
}

}  // namespace

RollbackPlan plan_account_rollback(eventlog::EventLog& log, const Store& live,
                                   const std::string& account, std::int64_t target,
                                   const schemas::Actor& actor) {
  const fs::path scratch =
      fs::temp_directory_path() / fmt::format("a3-rollback-{}-{}", ::getpid(), target);
  fs::remove_all(scratch);
  struct Cleanup {
    fs::path p;
    ~Cleanup() { fs::remove_all(p); }
  } cleanup{scratch};
  auto past_db = state_at(log, account, target, scratch);
  const Store past(nullptr, *past_db, nullptr);

  const auto then = past.account(account);
  if (!then) throw std::runtime_error(fmt::format("{} did not exist at the target", account));
  RollbackPlan plan;
  auto emit = [&](schemas::Body body) {
    plan.events.push_back(schemas::make_event(account, actor, std::move(body)));
  };

  // The account itself. Re-creating it also re-creates the default
  // mailboxes, under new ids.
  std::vector<MailboxRecord> live_boxes;
  std::optional<schemas::Uuid> recreated_by;
  if (auto now = live.account(account); !now) {
    emit(schemas::AccountCreated{account, then->password_hash, then->addresses, then->quota_bytes});
    recreated_by = plan.events.back().id;
    plan.steps.push_back(fmt::format("re-create account {}", account));
  } else {
    live_boxes = live.mailboxes(account);
    if (now->password_hash != then->password_hash) {
      emit(schemas::AccountPasswordChanged{then->password_hash});
      plan.steps.push_back("restore the password");
    }
    if (now->addresses != then->addresses) {
      emit(schemas::AccountAddressesChanged{then->addresses});
      plan.steps.push_back(fmt::format("restore addresses {}", fmt::join(then->addresses, ",")));
    }
  }
  auto live_by_name = [&](const std::string& name) -> std::optional<Uuid> {
    if (recreated_by) {
      for (const char* d : {"INBOX", "Sent", "Drafts", "Trash", "Junk"}) {
        if (name == d) return default_mailbox_id(*recreated_by, d);
      }
      return std::nullopt;
    }
    for (const auto& m : live_boxes) {
      if (m.name == name) return m.id;
    }
    return std::nullopt;
  };
  auto live_by_id = [&](const Uuid& id) -> std::optional<MailboxRecord> {
    for (const auto& m : live_boxes) {
      if (m.id == id) return m;
    }
    return std::nullopt;
  };

  for (const auto& box : past.mailboxes(account)) {
    // Where this mailbox's messages belong now.
    Uuid target_id;
    bool same_mailbox = false;
    if (auto now = live_by_id(box.id)) {
      target_id = box.id;
      same_mailbox = true;
      if (now->name != box.name && !live_by_name(box.name)) {
        emit(schemas::MailboxRenamed{box.id, box.name});
        plan.steps.push_back(fmt::format("rename {} back to {}", now->name, box.name));
      }
    } else if (auto by_name = live_by_name(box.name)) {
      target_id = *by_name;
    } else {
      target_id = schemas::Uuid::v7();
      emit(schemas::MailboxCreated{target_id, box.name, box.special_use});
      plan.steps.push_back(fmt::format("re-create mailbox {}", box.name));
      ++plan.mailboxes_restored;
    }

    std::map<std::uint32_t, MessageRecord> current;
    if (same_mailbox) {
      for (auto& m : live.messages(box.id))
        current.emplace(m.uid, std::move(m));
    }
    // Messages of the target mailbox not matched by UID, by body: a message
    // re-appended by an earlier rollback counts as there, so that rolling
    // back twice changes nothing the second time.
    const auto past_messages = past.messages(box.id);
    std::multimap<Sha256, MessageRecord> by_body;
    if (!recreated_by) {
      for (auto& m : live.messages(target_id)) {
        const bool matched_by_uid =
            same_mailbox && std::any_of(past_messages.begin(), past_messages.end(),
                                        [&](const MessageRecord& p) { return p.uid == m.uid; });
        if (!matched_by_uid) by_body.emplace(m.blob, std::move(m));
      }
    }
    for (const auto& msg : past_messages) {
      if (!current.contains(msg.uid)) {
        if (auto it = by_body.find(msg.blob); it != by_body.end()) {
          if (it->second.flags != msg.flags) {
            emit(schemas::FlagsChanged{
                target_id, {it->second.uid}, schemas::FlagOp::replace, msg.flags, {}});
            plan.steps.push_back(fmt::format("{} UID {}: flags back to ({})", box.name,
                                             it->second.uid, fmt::join(msg.flags, " ")));
            ++plan.flags_restored;
          }
          by_body.erase(it);
          continue;
        }
      }
      if (auto it = current.find(msg.uid); it != current.end()) {
        // Still there: only its flags may have changed.
        if (it->second.flags != msg.flags) {
          emit(schemas::FlagsChanged{box.id, {msg.uid}, schemas::FlagOp::replace, msg.flags, {}});
          plan.steps.push_back(fmt::format("{} UID {}: flags back to ({})", box.name, msg.uid,
                                           fmt::join(msg.flags, " ")));
          ++plan.flags_restored;
        }
        continue;
      }
      // Gone: append it again, byte for byte, with its flags and date.
      auto raw = past.body(msg.blob);
      if (!raw)
        throw std::runtime_error(fmt::format("body of {} UID {} missing", box.name, msg.uid));
      emit(schemas::MessageAppended{
          target_id, std::move(*raw), msg.internal_date_ms, msg.flags, {}});
      plan.steps.push_back(
          fmt::format("{}: re-append message (was UID {}, {} bytes)", box.name, msg.uid, msg.size));
      ++plan.messages_restored;
    }
  }
  // Subscriptions the account had (RFC 9051 6.3.7: they are by name).
  const auto now_subs = recreated_by ? std::vector<std::string>{} : live.subscriptions(account);
  for (const auto& name : past.subscriptions(account)) {
    static const std::vector<std::string> defaults{"Drafts", "INBOX", "Junk", "Sent", "Trash"};
    if (recreated_by && std::find(defaults.begin(), defaults.end(), name) != defaults.end())
      continue;
    if (std::find(now_subs.begin(), now_subs.end(), name) != now_subs.end()) continue;
    emit(schemas::MailboxSubscriptionChanged{name, true});
    plan.steps.push_back(fmt::format("subscribe to {} again", name));
  }
  return plan;
}

}  // namespace a3::projections
