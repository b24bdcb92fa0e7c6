#include "eventlog/event_log.h"

#include <charconv>
#include <future>
#include <thread>

#include <fmt/format.h>

namespace a3::eventlog {

namespace {

class Category : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "a3.eventlog"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::unavailable:
        return "event log temporarily unavailable";
      case errc::failed:
        return "event log failed";
      case errc::too_large:
        return "record too large for the event log";
      case errc::out_of_range:
        return "no such partition or offset";
      case errc::read_only:
        return "event log opened read-only";
      case errc::closed:
        return "event log closed";
      case errc::corrupt:
        return "corrupt record in the event log";
      case errc::invalid_argument:
        return "invalid argument";
    }
    return "unknown event log error";
  }
};

}  // namespace

const boost::system::error_category& category() noexcept {
  static const Category c;
  return c;
}

std::string Position::str() const {
  return fmt::format("{}:{}", partition, offset);
}

std::optional<Position> Position::parse(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  Position p;
  const auto a = text.substr(0, colon), b = text.substr(colon + 1);
  auto r1 = std::from_chars(a.data(), a.data() + a.size(), p.partition);
  auto r2 = std::from_chars(b.data(), b.data() + b.size(), p.offset);
  if (r1.ec != std::errc() || r1.ptr != a.data() + a.size() || r2.ec != std::errc() ||
      r2.ptr != b.data() + b.size() || p.partition < 0 || p.offset < 0) {
    return std::nullopt;
  }
  return p;
}

AppendResult EventLog::append(std::string key, std::string value) {
  std::promise<AppendResult> promise;
  auto future = promise.get_future();
  append_async(std::move(key), std::move(value),
               [&promise](AppendResult r) { promise.set_value(std::move(r)); });
  return future.get();
}

void EventLog::wait_for_records(const std::vector<std::int64_t>&, std::chrono::milliseconds wait) {
  std::this_thread::sleep_for(std::min(wait, std::chrono::milliseconds(5)));
}

boost::system::result<std::int64_t> EventLog::offset_for_time(std::int32_t partition,
                                                              std::int64_t timestamp_ms) {
  if (partition < 0 || partition >= partitions()) return errc::out_of_range;
  auto end = end_offset(partition);
  if (!end) return end.error();
  auto reader = open_reader({partition, 0});
  if (!reader) return reader.error();
  // Invariant: every offset < lo is older than the target; hi is a candidate.
  std::int64_t lo = 0, hi = *end;
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    (*reader)->seek(mid);
    auto recs = (*reader)->poll(1, std::chrono::seconds(10));
    if (!recs) return recs.error();
    if (recs->empty()) return errc::unavailable;
    if (recs->front().timestamp_ms >= timestamp_ms) {
      hi = recs->front().position.offset;
    } else {
      lo = recs->front().position.offset + 1;
    }
  }
  return lo;
}

}  // namespace a3::eventlog
