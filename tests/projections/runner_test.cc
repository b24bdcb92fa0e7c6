// The projection runner against the real local log, with a projection that
// keeps its committed state in memory and fails when told to: positions
// move forward only, a failure is retried (reopening from what was
// committed) or stops the projection, and no record is applied twice or
// skipped.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "eventlog/local/local_log.h"
#include "projections/runner.h"
#include "tests/test_util.h"

namespace a3::projections {
namespace {

using namespace std::chrono_literals;

class Counting : public Projection {
 public:
  explicit Counting(bool retry) : retry_(retry) {}
  std::string name() const override { return "counting"; }
  boost::system::result<std::map<std::int32_t, std::int64_t>, Failure> open() override {
    std::lock_guard lock(mu);
    ++opens;
    if (unreachable) return Failure{"store unreachable"};
    return committed;
  }
  Applied apply(std::int32_t p, std::vector<eventlog::Record>& records) override {
    std::lock_guard lock(mu);
    std::int64_t next = records.front().position.offset;
    for (const auto& r : records) {
      if (fail_at && *fail_at == r.position.offset) {
        committed[p] = next;  // what came before it is committed
        return {next, Failure{"cannot apply"}};
      }
      EXPECT_EQ(r.position.offset, next) << "records in order, none skipped";
      values[p].push_back(r.value);
      next = r.position.offset + 1;
    }
    committed[p] = next;  // the batch and its position, together
    return {next, std::nullopt};
  }
  bool retries() const override { return retry_; }
  void tick() override { ++ticks; }

  std::mutex mu;
  std::map<std::int32_t, std::int64_t> committed;
  std::map<std::int32_t, std::vector<std::string>> values;
  std::optional<std::int64_t> fail_at;
  bool unreachable = false;
  int opens = 0;
  std::atomic<int> ticks{0};

 private:
  bool retry_;
};

class RunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    eventlog::local::Options o;
    o.path = dir.path() / "log";
    o.partitions = 1;
    log = eventlog::local::LocalLog::open(o);
  }
  void append(int n) {
    for (int i = 0; i < n; ++i)
      ASSERT_TRUE(log->append("k", "v" + std::to_string(next_value++)));
  }
  template <typename F>
  bool eventually(F f) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (f()) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  test::TempDir dir;
  std::unique_ptr<eventlog::local::LocalLog> log;
  int next_value = 0;
};

TEST_F(RunnerTest, CatchUpAppliesEverythingOnceInBatches) {
  append(25);
  Counting c(false);
  Runner r(*log, c, RunnerOptions{4});
  std::vector<std::int64_t> progress;
  EXPECT_FALSE(r.catch_up([&](std::int64_t done, std::int64_t) { progress.push_back(done); }));
  EXPECT_EQ(c.values[0].size(), 25u);
  EXPECT_EQ(c.values[0].back(), "v24");
  EXPECT_EQ(r.positions().at(0), 25);
  EXPECT_EQ(progress.back(), 25);
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
  // Exactly to a target, as verify wants.
  append(10);
  const std::map<std::int32_t, std::int64_t> target{{0, 30}};
  EXPECT_FALSE(r.catch_up({}, &target));
  EXPECT_EQ(c.values[0].size(), 30u);
}

TEST_F(RunnerTest, ARetriedFailureResumesFromWhatWasCommitted) {
  Counting c(true);
  Runner r(*log, c, RunnerOptions{8, 10ms, 40ms});
  r.start();
  append(20);
  ASSERT_TRUE(eventually([&] { return r.positions()[0] == 20; }));
  {
    std::lock_guard lock(c.mu);
    c.fail_at = 27;
    c.unreachable = true;  // and the store goes away
  }
  append(20);
  ASSERT_TRUE(eventually([&] { return r.status() == "store unreachable"; })) << r.status();
  EXPECT_FALSE(r.failed()) << "retried, not stopped";
  {
    std::lock_guard lock(c.mu);
    c.fail_at.reset();
    c.unreachable = false;
  }
  ASSERT_TRUE(eventually([&] { return r.positions()[0] == 40; }));
  EXPECT_TRUE(eventually([&] { return r.status() == "ok"; }));
  r.stop();
  std::lock_guard lock(c.mu);
  ASSERT_EQ(c.values[0].size(), 40u) << "each record once";
  for (int i = 0; i < 40; ++i)
    EXPECT_EQ(c.values[0][i], "v" + std::to_string(i));
  EXPECT_GE(c.opens, 2);
  EXPECT_GT(c.ticks.load(), 0);
}

TEST_F(RunnerTest, AFailureThatIsNotRetriedStopsBeforeTheRecord) {
  append(10);
  Counting c(false);
  c.fail_at = 6;
  Runner r(*log, c, RunnerOptions{4});
  r.start();
  ASSERT_TRUE(eventually([&] { return r.failed(); }));
  EXPECT_EQ(r.status(), "cannot apply");
  std::this_thread::sleep_for(300ms);
  r.stop();
  EXPECT_EQ(r.positions().at(0), 6) << "up to the failing record, never past it";
  EXPECT_EQ(c.values[0].size(), 6u) << "record 6 is never applied, nor anything after it";
}

}  // namespace
}  // namespace a3::projections
