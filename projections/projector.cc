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
    : log_(log), view_(view), max_batch_(max_batch) {
  const auto stored = view_.positions();
  next_.assign(static_cast<std::size_t>(log_.partitions()), 0);
  for (std::int32_t p = 0; p < log_.partitions(); ++p) {
    if (auto it = stored.find(p); it != stored.end()) next_[p] = it->second;
    auto reader = log_.open_reader({p, next_[p]});
    if (!reader) {
      throw std::runtime_error(
          fmt::format("projector: cannot read partition {}: {}", p, reader.error().message()));
    }
    readers_.push_back(std::move(*reader));
  }
}

Projector::~Projector() {
  stop();
}

void Projector::start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { run(); });
}

void Projector::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  applied_cv_.notify_all();
  complete_waiters(true);
}

void Projector::run() {
  while (!stop_) {
    if (!failure().empty()) {
      complete_waiters(true);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    complete_waiters();  // the deadlines
    if (step(std::chrono::milliseconds(0))) continue;
    // Idle: sleep until any partition has something new.
    std::vector<std::int64_t> next;
    for (const auto& r : readers_)
      next.push_back(r->position().offset);
    log_.wait_for_records(next, std::chrono::milliseconds(100));
  }
}

bool Projector::step(std::chrono::milliseconds wait, const std::vector<std::int64_t>* until) {
  bool any = false;
  for (std::size_t p = 0; p < readers_.size() && !stop_; ++p) {
    std::size_t max = max_batch_;
    if (until) {
      // Catching up: only partitions still behind their end, never past it.
      const std::int64_t behind = (*until)[p] - readers_[p]->position().offset;
      if (behind <= 0) continue;
      max = std::min<std::size_t>(max, static_cast<std::size_t>(behind));
    }
    auto records = readers_[p]->poll(max, wait);
    if (!records) {
      if (records.error() == eventlog::errc::corrupt) {
        std::lock_guard lock(mu_);
        failure_ = fmt::format("projector: the record at {}:{} cannot be read: {}", p, next_[p],
                               records.error().message());
        spdlog::critical("{}", failure_);
        applied_cv_.notify_all();
      }
      continue;  // unavailable: try again later
    }
    if (records->empty()) continue;
    any = true;

    view::Batch batch(view_);
    std::vector<std::pair<eventlog::Position, Outcome>> outcomes;
    std::vector<schemas::Uuid> touched;
    std::int64_t next = next_[p];
    bool corrupt = false;
    // Decode first, then parse the MIME of new messages on every core: the
    // slowest part of projecting mail, and independent of the view.
    std::vector<schemas::Event> events;
    events.reserve(records->size());
    for (const auto& r : *records) {
      auto event = schemas::decode(r.value);
      if (!event) {
        // Never skip an event: stop here, before this record, and say why.
        std::lock_guard lock(mu_);
        failure_ = fmt::format("projector: the event at {} is corrupt: {}", r.position.str(),
                               event.error().detail);
        spdlog::critical("{}", failure_);
        corrupt = true;
        break;
      }
      events.push_back(std::move(*event));
    }
    const std::vector<std::string> summaries = parse_mime_in_parallel(events);
    for (std::size_t i = 0; i < events.size(); ++i) {
      const auto& r = (*records)[i];
      const auto* event = &events[i];
      const std::string* summary =
          summaries.empty() || summaries[i].empty() ? nullptr : &summaries[i];
      Outcome o;
      try {
        o = apply_event(batch, *event, r.position, summary);
      } catch (const std::exception& e) {
        // The view could not be read: stop before this event, never guess.
        std::lock_guard lock(mu_);
        failure_ = fmt::format("projector: applying {} failed: {}", r.position.str(), e.what());
        spdlog::critical("{}", failure_);
        corrupt = true;  // the reader stays at this event
        break;
      }
      touched.insert(touched.end(), o.mailboxes.begin(), o.mailboxes.end());
      outcomes.emplace_back(r.position, std::move(o));
      next = r.position.offset + 1;
      // Bound the memory of a batch of large messages.
      if (batch.body_bytes() > kMaxBatchBodyBytes && !commit(batch, p, next, outcomes, touched)) {
        return any;
      }
    }
    if (!outcomes.empty() && !commit(batch, p, next, outcomes, touched)) return any;
    if (corrupt) readers_[p]->seek(next);  // stays at the corrupt event
  }
  return any;
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
    std::lock_guard lock(mu_);
    failure_ = fmt::format("projector: writing the view failed: {}", s.ToString());
    spdlog::critical("{}", failure_);
    applied_cv_.notify_all();
    return false;
  }
  std::vector<Listener> listeners;
  {
    std::lock_guard lock(mu_);
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
  applied_cv_.notify_all();
  complete_waiters();
  if (!touched.empty()) {
    for (const auto& l : listeners)
      l(touched);
  }
  touched.clear();
  return true;
}

bool Projector::catch_up(const std::function<void(std::int64_t, std::int64_t)>& progress,
                         const std::map<std::int32_t, std::int64_t>* targets) {
  std::vector<std::int64_t> ends;
  std::int64_t total = 0;
  for (std::int32_t p = 0; p < log_.partitions(); ++p) {
    if (targets) {
      const auto it = targets->find(p);
      ends.push_back(it == targets->end() ? 0 : it->second);
      total += ends.back();
      continue;
    }
    auto end = log_.end_offset(p);
    if (!end) {
      std::lock_guard lock(mu_);
      failure_ =
          fmt::format("projector: end of partition {} unknown: {}", p, end.error().message());
      return false;
    }
    ends.push_back(*end);
    total += *end;
  }
  for (;;) {
    std::int64_t done = 0;
    bool behind = false;
    {
      std::lock_guard lock(mu_);
      for (std::size_t p = 0; p < ends.size(); ++p) {
        done += std::min(next_[p], ends[p]);
        behind = behind || next_[p] < ends[p];
      }
    }
    if (progress) progress(done, total);
    if (!behind || !failure().empty()) break;
    step(std::chrono::milliseconds(1000), &ends);
  }
  return failure().empty();
}

std::optional<Outcome> Projector::wait_applied(eventlog::Position pos,
                                               std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const auto p = static_cast<std::size_t>(pos.partition);
  if (p >= next_.size()) return std::nullopt;
  const bool done = applied_cv_.wait_for(
      lock, timeout, [&] { return next_[p] > pos.offset || !failure_.empty() || stop_; });
  if (!done || next_[p] <= pos.offset) return std::nullopt;
  if (auto it = recent_.find(pos); it != recent_.end()) return it->second;
  Outcome o;  // applied long ago: the outcome is no longer in memory
  o.detail = "applied";
  return o;
}

void Projector::when_applied(std::vector<eventlog::Position> positions,
                             std::chrono::steady_clock::time_point deadline, Applied done) {
  {
    std::lock_guard lock(mu_);
    waiters_.push_back({std::move(positions), deadline, std::move(done)});
  }
  // Some may be applied already. Without the projector's thread nobody
  // would enforce the deadline: answer at once with what is applied.
  complete_waiters(!thread_.joinable());
}

void Projector::complete_waiters(bool everyone) {
  std::vector<std::pair<Applied, std::vector<std::optional<Outcome>>>> ready;
  {
    std::lock_guard lock(mu_);
    if (waiters_.empty()) return;
    const auto now = std::chrono::steady_clock::now();
    const bool give_up = everyone || stop_ || !failure_.empty();
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
  std::lock_guard lock(mu_);
  return failure_;
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
