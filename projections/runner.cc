#include "projections/runner.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace a3::projections {

using std::chrono::milliseconds;

Runner::Runner(eventlog::EventLog& log, Projection& projection, RunnerOptions options)
    : log_(log), projection_(projection), options_(options) {}

Runner::~Runner() {
  stop();
}

void Runner::start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { run(); });
}

void Runner::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::string Runner::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

bool Runner::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

std::map<std::int32_t, std::int64_t> Runner::positions() const {
  std::lock_guard lock(mu_);
  return positions_;
}

void Runner::set_status(std::string status) {
  std::lock_guard lock(mu_);
  status_ = std::move(status);
}

// Puts every reader at the position the projection committed: after an
// outage, whatever was not committed is read again.
std::optional<Failure> Runner::open() {
  auto stored = projection_.open();
  if (!stored) return stored.error();
  readers_.clear();
  std::map<std::int32_t, std::int64_t> positions;
  for (std::int32_t p = 0; p < log_.partitions(); ++p) {
    const std::int64_t next = stored->contains(p) ? stored->at(p) : 0;
    auto reader = log_.open_reader({p, next});
    if (!reader) {
      return Failure{fmt::format("cannot read partition {}: {}", p, reader.error().message()),
                     reader.error() == eventlog::errc::unavailable};
    }
    readers_.push_back(std::move(*reader));
    positions[p] = next;
  }
  open_ = true;
  std::lock_guard lock(mu_);
  for (const auto& [p, next] : positions) {
    auto& pos = positions_[p];
    pos = std::max(pos, next);  // positions only move forward
  }
  return std::nullopt;
}

std::optional<Failure> Runner::step(milliseconds wait, bool* any,
                                    const std::vector<std::int64_t>* until) {
  for (std::size_t p = 0; p < readers_.size() && !stop_; ++p) {
    std::size_t max = options_.max_batch;
    if (until) {
      // Catching up: only partitions still behind their end, never past it.
      const std::int64_t behind = (*until)[p] - readers_[p]->position().offset;
      if (behind <= 0) continue;
      max = std::min<std::size_t>(max, static_cast<std::size_t>(behind));
    }
    auto records = readers_[p]->poll(max, wait);
    if (!records) {
      if (records.error() == eventlog::errc::corrupt) {
        return Failure{fmt::format("the record at {} cannot be read: {}",
                                   readers_[p]->position().str(), records.error().message())};
      }
      continue;  // unavailable: try again later
    }
    if (records->empty()) continue;
    const std::int64_t end = records->back().position.offset + 1;
    const auto applied = projection_.apply(static_cast<std::int32_t>(p), *records);
    {
      std::lock_guard lock(mu_);
      auto& pos = positions_[static_cast<std::int32_t>(p)];
      pos = std::max(pos, applied.next);
    }
    *any = *any || applied.next > records->front().position.offset;
    // Not all applied: read again from the first record that was not.
    if (applied.next < end) readers_[p]->seek(applied.next);
    if (applied.failure) return applied.failure;
  }
  return std::nullopt;
}

void Runner::run() {
  milliseconds backoff = options_.min_backoff;
  while (!stop_) {
    projection_.tick();
    if (failed()) {
      std::this_thread::sleep_for(milliseconds(200));
      continue;
    }
    std::optional<Failure> failure;
    if (!open_) failure = open();
    bool any = false;
    if (!failure) failure = step(milliseconds(0), &any);
    if (failure) {
      const bool retry = failure->transient || projection_.retries();
      {
        std::lock_guard lock(mu_);
        if (status_ != failure->what) {
          if (retry) {
            spdlog::warn("{}: {} (retrying)", projection_.name(), failure->what);
          } else {
            spdlog::critical("{}: {}; stopped", projection_.name(), failure->what);
          }
        }
        status_ = failure->what;
        failed_ = !retry;
      }
      if (!retry) continue;
      open_ = false;  // reopen: the store may have lost what was not committed
      const auto until = std::chrono::steady_clock::now() + backoff;
      while (!stop_ && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(milliseconds(50));
      backoff = std::min(backoff * 2, options_.max_backoff);
      continue;
    }
    backoff = options_.min_backoff;
    {
      std::lock_guard lock(mu_);
      if (status_ != "ok") spdlog::info("{}: projecting", projection_.name());
      status_ = "ok";
    }
    if (!any) {
      // Idle: sleep until any partition has something new.
      std::vector<std::int64_t> next;
      for (const auto& r : readers_)
        next.push_back(r->position().offset);
      log_.wait_for_records(next, milliseconds(100));
    }
  }
}

std::optional<Failure> Runner::catch_up(
    const std::function<void(std::int64_t, std::int64_t)>& progress,
    const std::map<std::int32_t, std::int64_t>* targets) {
  if (!open_) {
    if (auto f = open()) return f;
  }
  std::vector<std::int64_t> ends;
  std::int64_t total = 0;
  for (std::int32_t p = 0; p < log_.partitions(); ++p) {
    if (targets) {
      const auto it = targets->find(p);
      ends.push_back(it == targets->end() ? 0 : it->second);
    } else {
      auto end = log_.end_offset(p);
      if (!end) {
        return Failure{
            fmt::format("the end of partition {} is unknown: {}", p, end.error().message()),
            end.error() == eventlog::errc::unavailable};
      }
      ends.push_back(*end);
    }
    total += ends.back();
  }
  for (;;) {
    std::int64_t done = 0;
    bool behind = false;
    for (std::size_t p = 0; p < readers_.size(); ++p) {
      const std::int64_t at = readers_[p]->position().offset;
      done += std::min(at, ends[p]);
      behind = behind || at < ends[p];
    }
    if (progress) progress(done, total);
    if (!behind) return std::nullopt;
    bool any = false;
    if (auto f = step(milliseconds(1000), &any, &ends)) {
      std::lock_guard lock(mu_);
      status_ = f->what;
      failed_ = !f->transient && !projection_.retries();
      return f;
    }
  }
}

}  // namespace a3::projections
