#include "projections/store.h"
#include "common/metrics.h"

#include <algorithm>
#include <limits>

#include <map>
#include <mutex>

#include <rocksdb/db.h>
#include <spdlog/spdlog.h>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/network.h"
#include "eventlog/event_log.h"
#include "projections/mailbox_projector.h"
#include "projections/projector.h"
#include "projections/view/encoding.h"
#include "projections/view/view_db.h"
#include "schemas/codec.h"

namespace a3::projections {

namespace {

namespace asio = boost::asio;
using view::Family;

// Store::MemoryOnlyReads on this thread: how many scopes are open, and
// whether a read in them would have had to wait for the disk.
thread_local int tl_memory_only = 0;
thread_local bool tl_would_block = false;

rocksdb::ReadOptions read_options() {
  rocksdb::ReadOptions ro;
  // Memtables and the block cache only: RocksDB answers Incomplete rather
  // than reading a file.
  if (tl_memory_only > 0) ro.read_tier = rocksdb::kBlockCacheTier;
  return ro;
}

std::optional<std::string> get(const view::ViewDb& v, Family f, std::string_view key) {
  std::string value;
  const auto s =
      v.db()->Get(read_options(), v.cf(f), rocksdb::Slice(key.data(), key.size()), &value);
  if (s.ok()) return value;
  if (s.IsIncomplete()) tl_would_block = true;
  return std::nullopt;
}

template <typename F>
void scan(const view::ViewDb& v, Family f, std::string_view prefix, F&& visit) {
  std::unique_ptr<rocksdb::Iterator> it(v.db()->NewIterator(read_options(), v.cf(f)));
  const rocksdb::Slice p(prefix.data(), prefix.size());
  for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
    if (!visit(it->key().ToStringView(), it->value().ToStringView())) return;
  }
  if (it->status().IsIncomplete()) tl_would_block = true;
}

// Mail that clients bring counts against quotas; an operator's restore or
// import does not (it puts back what the account held).
bool counts_against_quota(const schemas::Event& e) {
  switch (e.actor.protocol) {
    case schemas::Protocol::smtp:
    case schemas::Protocol::submission:
    case schemas::Protocol::imap:
    case schemas::Protocol::pop3:
      return true;
    default:
      return false;
  }
}

// Completes an awaiting coroutine from a callback that runs on another
// thread (the log's, the projector's): the handler is resumed on its own
// executor, never on the caller's thread.
template <typename Signature, typename Start>
auto from_callback(Start start) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, Signature>(
      [start = std::move(start)](auto handler) mutable {
        using Handler = decltype(handler);
        auto h = std::make_shared<std::optional<Handler>>(std::move(handler));
        start([h](auto... results) {
          auto resume = std::move(**h);
          h->reset();
          auto ex = asio::get_associated_executor(resume);
          asio::post(ex, [resume = std::move(resume), results...]() mutable {
            std::move(resume)(std::move(results)...);
          });
        });
      },
      asio::use_awaitable);
}

}  // namespace

// One subscription. `mu` is held while its callback runs, so reset() returns
// only once the callback is not running; recursive, so that the callback
// may reset its own subscription.
Store::MemoryOnlyReads::MemoryOnlyReads() {
  if (tl_memory_only++ == 0) tl_would_block = false;
}

Store::MemoryOnlyReads::~MemoryOnlyReads() {
  --tl_memory_only;
}

bool Store::MemoryOnlyReads::would_block() const {
  return tl_would_block;
}

bool Store::reads_would_block() {
  return tl_memory_only > 0 && tl_would_block;
}

struct Store::Subscription::Entry {
  schemas::Uuid mailbox;
  std::function<void()> on_change;
  std::weak_ptr<Subscribers> owner;
  std::recursive_mutex mu;
  bool active = true;  // guarded by mu
};

// The subscriptions by mailbox, and the one projector listener that serves
// them all. Callbacks run outside `mu`, so they may subscribe or reset.
struct Store::Subscribers {
  std::mutex mu;
  std::multimap<schemas::Uuid, std::shared_ptr<Subscription::Entry>> by_mailbox;
};

void Store::Subscription::reset() {
  if (!entry_) return;
  if (auto subs = entry_->owner.lock()) {
    std::lock_guard lock(subs->mu);
    auto [first, last] = subs->by_mailbox.equal_range(entry_->mailbox);
    for (auto it = first; it != last; ++it) {
      if (it->second == entry_) {
        subs->by_mailbox.erase(it);
        break;
      }
    }
  }
  {
    std::lock_guard lock(entry_->mu);  // waits for a callback in flight
    entry_->active = false;
  }
  entry_.reset();
}

Store::Store(eventlog::EventLog* log, view::ViewDb& view, Projector* projector)
    : log_(log), view_(view), projector_(projector), subscribers_(std::make_shared<Subscribers>()) {
  if (!projector_) return;
  std::weak_ptr<Subscribers> weak = subscribers_;
  projector_->add_listener([weak](const std::vector<schemas::Uuid>& mailboxes) {
    auto subs = weak.lock();
    if (!subs) return;
    std::vector<std::shared_ptr<Subscription::Entry>> due;
    {
      std::lock_guard lock(subs->mu);
      for (const auto& id : mailboxes) {
        auto [first, last] = subs->by_mailbox.equal_range(id);
        for (auto it = first; it != last; ++it)
          due.push_back(it->second);
      }
    }
    for (const auto& entry : due) {
      std::lock_guard lock(entry->mu);
      if (entry->active) entry->on_change();
    }
  });
}

Store::~Store() {
  // The projector outlives the store in the daemon; the listener holds only
  // a weak reference, so it does nothing once the subscribers are gone.
  std::lock_guard lock(subscribers_->mu);
  subscribers_->by_mailbox.clear();
}

Store::Subscription Store::subscribe(const schemas::Uuid& mailbox,
                                     std::function<void()> on_change) {
  Subscription s;
  s.entry_ = std::make_shared<Subscription::Entry>();
  s.entry_->mailbox = mailbox;
  s.entry_->on_change = std::move(on_change);
  s.entry_->owner = subscribers_;
  std::lock_guard lock(subscribers_->mu);
  subscribers_->by_mailbox.emplace(mailbox, s.entry_);
  return s;
}

std::int32_t Store::partition_for(std::string_view key) const {
  return log_ ? log_->partition_for(key) : 0;
}

std::uint64_t Store::added_bytes(const schemas::Event& e) const {
  if (const auto* m = std::get_if<schemas::MessageAppended>(&e.body)) return m->size();
  if (const auto* c = std::get_if<schemas::MessagesCopied>(&e.body)) {
    // A copy stores the body once, but RFC 9208 counts every message.
    std::uint64_t n = 0;
    for (const auto uid : c->uids) {
      if (auto m = message(c->from_mailbox_id, uid)) n += m->size;
    }
    return n;
  }
  return 0;  // a move stays within the account: its usage does not change
}

boost::system::result<void> Store::check_quotas(const std::vector<schemas::Event>& events) const {
  std::map<std::string, std::uint64_t> adding;
  for (const auto& e : events) {
    if (!counts_against_quota(e)) continue;
    if (const auto n = added_bytes(e); n > 0) adding[e.account] += n;
  }
  for (const auto& [account, n] : adding) {
    if (auto r = check_quota(account, n); !r) return r;
  }
  return {};
}

std::optional<Store::Usage> Store::usage(std::string_view account) const {
  auto a = this->account(account);
  if (!a) return std::nullopt;
  Usage u;
  u.limit = a->quota_bytes;
  for (const auto& box : mailboxes(a->name)) {
    u.bytes += box.size;
    u.messages += box.messages;
  }
  return u;
}

boost::system::result<void> Store::check_quota(std::string_view account,
                                               std::uint64_t adding) const {
  // Most accounts have no limit: one read, no sum over the mailboxes.
  const auto a = this->account(account);
  if (!a || a->quota_bytes == 0) return {};
  if (adding > a->quota_bytes) return errc::exceeds_quota;
  std::uint64_t used = 0;
  for (const auto& box : mailboxes(a->name))
    used += box.size;
  // RFC 9208 5.1: refused when the operation would take usage over the limit.
  if (used + adding > a->quota_bytes) return errc::over_quota;
  return {};
}

namespace {

// Every append's time until durable (the local log's group commit, or
// Kafka's acks=all), and whether the log took it.
void record_append(std::chrono::steady_clock::time_point start, bool ok) {
  static auto& latency = metrics::latency("a3_eventlog_append_duration_seconds",
                                          "Time until an appended event is durable in the log");
  static auto& taken = metrics::counter(
      "a3_eventlog_appends_total", "Events appended to the log, by result", {{"result", "ok"}});
  static auto& refused = metrics::counter(
      "a3_eventlog_appends_total", "Events appended to the log, by result", {{"result", "failed"}});
  latency.Observe(metrics::seconds_since(start));
  if (ok) {
    taken.Increment();
  } else {
    refused.Increment();
    metrics::error("eventlog");
  }
}

}  // namespace

asio::awaitable<Store::Executed> Store::execute(std::vector<schemas::Event> events, Wait wait,
                                                bool check_quota) {
  if (!log_ || (wait == Wait::applied && !projector_)) co_return eventlog::errc::read_only;
  if (check_quota) {
    if (auto quota = check_quotas(events); !quota) co_return quota.error();
  }
  if (events.empty()) co_return std::vector<Outcome>{};

  using Appended = std::vector<eventlog::AppendResult>;
  auto appended = from_callback<void(Appended)>([this, &events](auto done) {
    struct Pending {
      std::mutex mu;
      Appended results;
      std::size_t left;
    };
    auto pending = std::make_shared<Pending>();
    pending->results.resize(events.size(), eventlog::errc::unavailable);
    pending->left = events.size();
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < events.size(); ++i) {
      const auto& e = events[i];
      log_->append_async(e.account, schemas::encode(e),
                         [pending, i, done, start](eventlog::AppendResult r) {
                           record_append(start, r.has_value());
                           bool last = false;
                           {
                             std::lock_guard lock(pending->mu);
                             pending->results[i] = r;
                             last = --pending->left == 0;
                           }
                           if (last) done(std::move(pending->results));
                         });
    }
  });
  const Appended positions = co_await std::move(appended);
  for (const auto& r : positions) {
    if (!r) {
      spdlog::warn("store: the log did not take an event: {}", r.error().message());
      co_return errc::unavailable;
    }
  }
  if (wait == Wait::durable) co_return std::vector<Outcome>(events.size());

  std::vector<eventlog::Position> wanted;
  for (const auto& r : positions)
    wanted.push_back(*r);
  using Applied = std::vector<std::optional<Outcome>>;
  auto applied = from_callback<void(Applied)>([this, &wanted](auto done) {
    projector_->when_applied(wanted, std::chrono::steady_clock::now() + std::chrono::seconds(30),
                             std::move(done));
  });
  Applied outcomes = co_await std::move(applied);
  std::vector<Outcome> out;
  for (auto& o : outcomes) {
    if (!o) {
      const auto failure = projector_->failure();
      spdlog::warn("store: an event is logged but not applied in time{}{}",
                   failure.empty() ? "" : ": ", failure);
      co_return errc::pending;
    }
    out.push_back(std::move(*o));
  }
  co_return out;
}

boost::system::result<Outcome> Store::execute_blocking(const schemas::Event& event, Wait wait,
                                                       std::chrono::milliseconds timeout) {
  if (!log_ || (wait == Wait::applied && !projector_)) return eventlog::errc::read_only;
  if (auto quota = check_quotas({event}); !quota) return quota.error();
  auto pos = log_->append(event.account, schemas::encode(event));
  if (!pos) {
    spdlog::warn("store: the log did not take an event: {}", pos.error().message());
    return errc::unavailable;
  }
  if (wait == Wait::durable) return Outcome{};
  auto outcome = projector_->wait_applied(*pos, timeout);
  if (!outcome) {
    const auto failure = projector_->failure();
    spdlog::warn("store: an event is logged but not applied in time{}{}",
                 failure.empty() ? "" : ": ", failure);
    return errc::pending;
  }
  return *outcome;
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

std::optional<std::string> Store::body(const Sha256& blob) const {
  return get(view_, Family::blobs, view::blob_key(blob));
}

std::optional<mime::Summary> Store::mime(const Sha256& blob) const {
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

std::vector<QueueRecord> Store::due(std::int64_t now_ms, std::size_t limit) const {
  std::vector<QueueRecord> out;
  const std::string end = view::due_key(now_ms + 1, schemas::Uuid{});
  scan(view_, Family::queue_due, "", [&](std::string_view k, std::string_view) {
    if (k >= end || out.size() >= limit) return false;
    schemas::Uuid id;
    if (k.size() != 8 + id.bytes.size()) return true;
    std::copy(k.begin() + 8, k.end(), id.bytes.begin());
    if (auto q = queued(id)) out.push_back(std::move(*q));
    return true;
  });
  return out;
}

std::optional<QueueRecord> Store::queued(const schemas::Uuid& id) const {
  auto v = get(view_, Family::queue, view::id_key(id));
  if (!v) return std::nullopt;
  return view::decode_queue(*v);
}

std::vector<QueueRecord> Store::queue(std::size_t limit) const {
  return due(std::numeric_limits<std::int64_t>::max() - 1, limit);
}

std::vector<BanRecord> Store::bans() const {
  std::vector<BanRecord> out;
  scan(view_, Family::meta, view::kBanPrefix, [&](std::string_view, std::string_view v) {
    if (auto b = view::decode_ban(v)) out.push_back(std::move(*b));
    return true;
  });
  return out;
}

std::optional<BanRecord> Store::ban(std::string_view network) const {
  const auto n = Network::parse(network);
  if (!n) return std::nullopt;
  const auto v = get(view_, Family::meta, view::ban_key(n->str()));
  if (!v) return std::nullopt;
  return view::decode_ban(*v);
}

Store::Subscription Store::subscribe_bans(std::function<void()> on_change) {
  return subscribe(bans_changed(), std::move(on_change));
}

Store::QueueStats Store::queue_stats() const {
  QueueStats s;
  scan(view_, Family::queue, "", [&](std::string_view, std::string_view v) {
    if (auto q = view::decode_queue(v)) {
      ++s.messages;
      if (s.oldest_ms == 0 || q->queued_ms < s.oldest_ms) s.oldest_ms = q->queued_ms;
    }
    return true;
  });
  return s;
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
