#include "projections/store.h"

#include <algorithm>

#include <rocksdb/db.h>

#include "schemas/codec.h"

namespace a3::projections {

namespace {

using view::Family;

class Category : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "a3.store"; }
  std::string message(int ev) const override {
    switch (static_cast<store_errc>(ev)) {
      case store_errc::log_unavailable:
        return "the event log did not take the change";
      case store_errc::not_applied:
        return "the change is logged but not applied yet";
      case store_errc::projection_failed:
        return "the mailbox projection has stopped";
    }
    return "unknown store error";
  }
};

std::optional<std::string> get(const view::ViewDb& v, Family f, std::string_view key) {
  std::string value;
  if (v.db()
          ->Get(rocksdb::ReadOptions(), v.cf(f), rocksdb::Slice(key.data(), key.size()), &value)
          .ok()) {
    return value;
  }
  return std::nullopt;
}

template <typename F>
void scan(const view::ViewDb& v, Family f, std::string_view prefix, F&& visit) {
  std::unique_ptr<rocksdb::Iterator> it(v.db()->NewIterator(rocksdb::ReadOptions(), v.cf(f)));
  const rocksdb::Slice p(prefix.data(), prefix.size());
  for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
    if (!visit(it->key().ToStringView(), it->value().ToStringView())) break;
  }
}

}  // namespace

const boost::system::error_category& store_category() noexcept {
  static const Category c;
  return c;
}

boost::system::result<Outcome> Store::execute(const schemas::Event& event,
                                              std::chrono::milliseconds timeout) {
  if (!log_ || !projector_) return eventlog::errc::read_only;
  auto pos = log_->append(event.account, schemas::encode(event));
  if (!pos) return pos.error();
  auto outcome = projector_->wait_applied(*pos, timeout);
  if (!outcome) {
    return projector_->failure().empty() ? store_errc::not_applied : store_errc::projection_failed;
  }
  return *outcome;
}

boost::system::result<eventlog::Position> Store::append(const schemas::Event& event) {
  if (!log_) return eventlog::errc::read_only;
  return log_->append(event.account, schemas::encode(event));
}

std::optional<AccountRecord> Store::account(std::string_view name) const {
  auto v = get(view_, Family::accounts, view::lowercase(name));
  if (!v) return std::nullopt;
  return view::decode_account(*v);
}

std::vector<AccountRecord> Store::accounts() const {
  std::vector<AccountRecord> out;
  scan(view_, Family::accounts, "", [&](std::string_view, std::string_view v) {
    if (auto a = view::decode_account(v)) out.push_back(std::move(*a));
    return true;
  });
  return out;
}

std::optional<std::string> Store::account_for_address(std::string_view address) const {
  std::optional<std::string> owner;
  scan(view_, Family::addresses, view::named_key(view::lowercase(address), ""),
       [&](std::string_view k, std::string_view) {
         owner = std::string(k.substr(k.find('\0') + 1));
         return false;  // keys are sorted: the first is the smallest name
       });
  return owner;
}

std::vector<MailboxRecord> Store::mailboxes(std::string_view account) const {
  std::vector<MailboxRecord> out;
  scan(view_, Family::mailboxes, view::named_key(account, ""),
       [&](std::string_view, std::string_view id) {
         if (auto v = get(view_, Family::mailbox_state, id)) {
           if (auto m = view::decode_mailbox(*v)) out.push_back(std::move(*m));
         }
         return true;
       });
  return out;
}

std::optional<MailboxRecord> Store::mailbox(std::string_view account, std::string_view name) const {
  auto id =
      get(view_, Family::mailboxes, view::named_key(account, view::normalize_mailbox_name(name)));
  if (!id) return std::nullopt;
  auto v = get(view_, Family::mailbox_state, *id);
  if (!v) return std::nullopt;
  return view::decode_mailbox(*v);
}

std::optional<MailboxRecord> Store::mailbox(const schemas::Uuid& id) const {
  auto v = get(view_, Family::mailbox_state, view::id_key(id));
  if (!v) return std::nullopt;
  return view::decode_mailbox(*v);
}

std::vector<std::string> Store::subscriptions(std::string_view account) const {
  std::vector<std::string> out;
  scan(view_, Family::subscriptions, view::named_key(account, ""),
       [&](std::string_view k, std::string_view) {
         out.emplace_back(k.substr(account.size() + 1));
         return true;
       });
  return out;
}

std::vector<MessageRecord> Store::messages(const schemas::Uuid& mailbox, std::uint32_t first,
                                           std::uint32_t last) const {
  std::vector<MessageRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(
      view_.db()->NewIterator(rocksdb::ReadOptions(), view_.cf(Family::messages)));
  const std::string prefix = view::id_key(mailbox);
  for (it->Seek(view::message_key(mailbox, first)); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    const std::uint32_t uid = view::uid_of_message_key(it->key().ToStringView());
    if (uid > last) break;
    if (auto m = view::decode_message(it->value().ToStringView(), uid)) out.push_back(*m);
  }
  return out;
}

std::optional<std::string> Store::body(const view::Sha256& blob) const {
  return get(view_, Family::blobs, view::blob_key(blob));
}

std::optional<mime::Summary> Store::mime(const view::Sha256& blob) const {
  auto v = get(view_, Family::mime, view::blob_key(blob));
  if (!v) return std::nullopt;
  return view::decode_mime(*v);
}

std::optional<MessageRecord> Store::message(const schemas::Uuid& mailbox, std::uint32_t uid) const {
  auto v = get(view_, Family::messages, view::message_key(mailbox, uid));
  if (!v) return std::nullopt;
  return view::decode_message(*v, uid);
}

std::vector<Store::Change> Store::changes_since(const schemas::Uuid& mailbox,
                                                std::uint64_t since) const {
  std::vector<Change> out;
  std::unique_ptr<rocksdb::Iterator> it(
      view_.db()->NewIterator(rocksdb::ReadOptions(), view_.cf(Family::changes)));
  const std::string prefix = view::id_key(mailbox);
  for (it->Seek(view::change_key(mailbox, since + 1, 0));
       it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const auto k = it->key().ToStringView();
    if (k.size() != 28) continue;
    out.push_back(
        {view::get_be32(k, 24), view::get_be64(k, 16), it->value().ToStringView() == "x"});
  }
  return out;
}

std::vector<std::pair<std::uint32_t, std::uint64_t>> Store::expunged_since(
    const schemas::Uuid& mailbox, std::uint64_t since) const {
  std::vector<std::pair<std::uint32_t, std::uint64_t>> out;
  for (const auto& c : changes_since(mailbox, since)) {
    if (c.expunged) out.emplace_back(c.uid, c.modseq);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace a3::projections
