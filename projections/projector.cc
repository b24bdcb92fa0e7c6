#include "projections/projector.h"

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <spdlog/spdlog.h>

#include "projections/mailbox_projector.h"
#include "projections/view/batch.h"
#include "projections/view/encoding.h"
#include "schemas/codec.h"

namespace a3::projections {

namespace {
constexpr std::size_t kRecentOutcomes = 16384;

// The encoded MIME summary of every MessageAppended among `events` (empty
// strings elsewhere), computed by up to one thread per core; empty if there
// are too few messages to be worth the threads.
std::vector<std::string> parse_mime_in_parallel(const std::vector<schemas::Event>& events) {
  std::vector<std::size_t> appended;
  for (std::size_t i = 0; i < events.size(); ++i) {
    // A staged body is whole only when the event is applied.
    const auto* m = std::get_if<schemas::MessageAppended>(&events[i].body);
    if (m && !m->staged) appended.push_back(i);
  }
  if (appended.size() < 8) return {};
  std::vector<std::string> out(events.size());
  const std::size_t workers =
      std::min<std::size_t>(std::max(1u, std::thread::hardware_concurrency()), 8);
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t k; (k = next.fetch_add(1)) < appended.size();) {
      const auto& raw = std::get<schemas::MessageAppended>(events[appended[k]].body).raw;
      out[appended[k]] = encoded_mime_summary(raw);
    }
  };
  std::vector<std::thread> threads;
  for (std::size_t t = 1; t < workers; ++t)
    threads.emplace_back(work);
  work();
  for (auto& t : threads)
    t.join();
  return out;
}

constexpr std::size_t kMaxBatchBodyBytes = 64u << 20;
}  // namespace

Projector::Projector(eventlog::EventLog& log, view::ViewDb& view, std::size_t max_batch)
    : log_(log), view_(view), runner_(log, *this, RunnerOptions{max_batch}) {
  const auto stored = view_.positions();
  next_.assign(static_cast<std::size_t>(log_.partitions()), 0);
  for (std::int32_t p = 0; p < log_.partitions(); ++p) {
    if (auto it = stored.find(p); it != stored.end()) next_[p] = it->second;
  }
}

Projector::~Projector() {
  stop();
}

void Projector::start() {
  runner_.start();
}

void Projector::stop() {
  runner_.stop();
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  applied_cv_.notify_all();
  complete_waiters(true);
}

boost::system::result<std::map<std::int32_t, std::int64_t>, Failure> Projector::open() {
  // After a failed write, RocksDB refuses writes until resumed (its
  // background error); Resume() is a no-op on a healthy database.
  if (const auto s = view_.db()->Resume(); !s.ok()) {
    // A fatal error (a failed fsync, with paranoid checks) is not cleared
    // by waiting: the view stops, and says that it needs a restart.
    const bool fatal = s.severity() >= rocksdb::Status::Severity::kFatalError;
    return Failure{fmt::format("the view cannot resume writing{}: {}",
                               fatal ? " (restart the daemon)" : "", s.ToString()),
                   !fatal};
  }
  // The view holds its positions with its changes: that is where to resume.
  const auto stored = view_.positions();
  std::lock_guard lock(mu_);
  for (std::int32_t p = 0; p < log_.partitions(); ++p) {
    if (auto it = stored.find(p); it != stored.end()) next_[p] = it->second;
  }
  return stored;
}

void Projector::tick() {
  complete_waiters();  // the deadlines, and everyone once the runner failed
}

Projection::Applied Projector::apply(std::int32_t partition,
                                     std::vector<eventlog::Record>& records) {
  const auto p = static_cast<std::size_t>(partition);
  auto fail = [&](std::string what, bool transient = false) {
    {
      std::lock_guard lock(mu_);
      failure_ = fmt::format("projector: {}", what);  // the runner logs it
      failure_transient_ = transient;
    }
    applied_cv_.notify_all();
    complete_waiters(true);
    std::lock_guard lock(mu_);
    return Projection::Applied{next_[p], Failure{what, transient}};
  };
  view::Batch batch(view_);
  std::vector<std::pair<eventlog::Position, Outcome>> outcomes;
  std::vector<schemas::Uuid> touched;
  std::int64_t next = records.front().position.offset;
  // Decode first, then parse the MIME of new messages on every core: the
  // slowest part of projecting mail, and independent of the view.
  std::vector<schemas::Event> events;
  events.reserve(records.size());
  std::optional<std::string> corrupt;
  for (const auto& r : records) {
    auto event = schemas::decode(r.value);
    if (!event) {
      // Never skip an event: stop here, before this record, and say why.
      corrupt =
          fmt::format("the event at {} is corrupt: {}", r.position.str(), event.error().detail);
      break;
    }
    events.push_back(std::move(*event));
  }
  const std::vector<std::string> summaries = parse_mime_in_parallel(events);
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& r = records[i];
    const std::string* summary =
        summaries.empty() || summaries[i].empty() ? nullptr : &summaries[i];
    Outcome o;
    try {
      o = apply_event(batch, events[i], r.position, summary);
    } catch (const std::exception& e) {
      // The view could not be read: stop before this event, never guess.
      corrupt = fmt::format("applying {} failed: {}", r.position.str(), e.what());
      break;
    }
    touched.insert(touched.end(), o.mailboxes.begin(), o.mailboxes.end());
    outcomes.emplace_back(r.position, std::move(o));
    next = r.position.offset + 1;
    // Bound the memory of a batch of large messages.
    if (batch.body_bytes() > kMaxBatchBodyBytes && !commit(batch, p, next, outcomes, touched)) {
      return fail("writing the view failed", true);
    }
  }
  if (!outcomes.empty() && !commit(batch, p, next, outcomes, touched)) {
    return fail("writing the view failed", true);
  }
  if (corrupt) return fail(*corrupt);
  return Projection::Applied{next, std::nullopt};
}

bool Projector::commit(view::Batch& batch, std::size_t p, std::int64_t next,
                       std::vector<std::pair<eventlog::Position, Outcome>>& outcomes,
                       std::vector<schemas::Uuid>& touched) {
  std::string v;
  view::put_be64(v, static_cast<std::uint64_t>(next));
  batch.put(view::Family::meta, view::next_offset_key(static_cast<std::int32_t>(p)), v);
  // The changes and the position move together, in one atomic write.
  const auto s = batch.commit();
  if (!s.ok()) {
    spdlog::critical("projector: writing the view failed: {}", s.ToString());
    return false;
  }
  std::vector<Listener> listeners;
  {
    std::lock_guard lock(mu_);
    if (failure_transient_) {
      spdlog::warn("projector: writing the view works again");
      failure_.clear();
      failure_transient_ = false;
    }
    next_[p] = next;
    stats_.events += outcomes.size();
    stats_.batches += 1;
    for (auto& [pos, o] : outcomes) {
      if (recent_.insert_or_assign(pos, std::move(o)).second) recent_order_.push_back(pos);
    }
    // The oldest go first, whatever their partition.
    while (recent_order_.size() > kRecentOutcomes) {
      recent_.erase(recent_order_.front());
      recent_order_.pop_front();
    }
    listeners = listeners_;
  }
  outcomes.clear();
  // Listeners first: what they keep in memory (the guard's bans) is up to
  // date when a writer hears its event was applied.
  if (!touched.empty()) {
    for (const auto& l : listeners)
      l(touched);
  }
  touched.clear();
  applied_cv_.notify_all();
  complete_waiters();
  return true;
}

bool Projector::catch_up(const std::function<void(std::int64_t, std::int64_t)>& progress,
                         const std::map<std::int32_t, std::int64_t>* targets) {
  if (auto f = runner_.catch_up(progress, targets)) {
    std::lock_guard lock(mu_);
    if (failure_.empty()) failure_ = "projector: " + f->what;
    return false;
  }
  return true;
}

std::optional<Outcome> Projector::wait_applied(eventlog::Position pos,
                                               std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const auto p = static_cast<std::size_t>(pos.partition);
  if (p >= next_.size()) return std::nullopt;
  const bool done = applied_cv_.wait_for(
      lock, timeout, [&] { return next_[p] > pos.offset || !failure_.empty() || stopped_; });
  if (!done || next_[p] <= pos.offset) return std::nullopt;
  if (auto it = recent_.find(pos); it != recent_.end()) return it->second;
  Outcome o;  // applied long ago: the outcome is no longer in memory
  o.detail = "applied";
  return o;
}

void Projector::when_applied(std::vector<eventlog::Position> positions,
                             std::chrono::steady_clock::time_point deadline, AppliedHandler done) {
  {
    std::lock_guard lock(mu_);
    waiters_.push_back({std::move(positions), deadline, std::move(done)});
  }
  // Some may be applied already. Without the projector's thread nobody
  // would enforce the deadline: answer at once with what is applied.
  complete_waiters(!runner_.running());
}

void Projector::complete_waiters(bool everyone) {
  std::vector<std::pair<AppliedHandler, std::vector<std::optional<Outcome>>>> ready;
  {
    std::lock_guard lock(mu_);
    if (waiters_.empty()) return;
    const auto now = std::chrono::steady_clock::now();
    const bool give_up = everyone || stopped_ || !failure_.empty() || runner_.failed();
    std::erase_if(waiters_, [&](Waiter& w) {
      std::vector<std::optional<Outcome>> out;
      bool all = true;
      for (const auto& pos : w.positions) {
        const auto p = static_cast<std::size_t>(pos.partition);
        if (p >= next_.size() || next_[p] <= pos.offset) {
          all = false;
          out.emplace_back();
          continue;
        }
        if (auto it = recent_.find(pos); it != recent_.end()) {
          out.emplace_back(it->second);
        } else {
          Outcome o;  // applied long ago: the outcome is no longer in memory
          o.detail = "applied";
          out.emplace_back(std::move(o));
        }
      }
      if (!all && !give_up && now < w.deadline) return false;
      ready.emplace_back(std::move(w.done), std::move(out));
      return true;
    });
  }
  for (auto& [done, out] : ready)
    done(std::move(out));
}

void Projector::add_listener(Listener l) {
  std::lock_guard lock(mu_);
  listeners_.push_back(std::move(l));
}

std::string Projector::failure() const {
  {
    std::lock_guard lock(mu_);
    if (!failure_.empty()) return failure_;
  }
  return runner_.failed() ? "projector: " + runner_.status() : std::string();
}

ProjectorStats Projector::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::map<std::int32_t, std::int64_t> Projector::applied() const {
  std::lock_guard lock(mu_);
  std::map<std::int32_t, std::int64_t> out;
  for (std::size_t p = 0; p < next_.size(); ++p)
    out[static_cast<std::int32_t>(p)] = next_[p];
  return out;
}

}  // namespace a3::projections
