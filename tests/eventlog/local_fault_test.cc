// Local backend under faults: a writer process killed with SIGKILL, and a
// failed fsync. The invariant: every acknowledged append is read back exactly
// once, at its acknowledged offset, and offsets stay dense.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "eventlog/local/local_log.h"
#include "tests/test_util.h"

extern char** environ;

namespace a3::eventlog::local {
namespace {

using namespace std::chrono_literals;

std::vector<Record> read_all(EventLog& log, std::int32_t partition) {
  std::vector<Record> out;
  auto reader = log.open_reader({partition, 0});
  EXPECT_TRUE(reader);
  for (;;) {
    auto batch = (*reader)->poll(4096, 0ms);
    EXPECT_TRUE(batch) << batch.error().message();
    if (!batch || batch->empty()) break;
    for (auto& r : *batch)
      out.push_back(std::move(r));
  }
  return out;
}

// Runs the crash child for `run_for`, then SIGKILLs it; returns the
// acknowledged appends it reported (value -> offset).
std::map<std::string, std::int64_t> run_and_kill(const std::string& dir, const std::string& prefix,
                                                 std::chrono::milliseconds run_for) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::string child = A3_TEST_CRASH_CHILD;
  char* argv[] = {child.data(), const_cast<char*>(dir.c_str()), const_cast<char*>(prefix.c_str()),
                  nullptr};
  pid_t pid;
  if (posix_spawn(&pid, child.c_str(), &actions, nullptr, argv, environ) != 0) {
    throw std::runtime_error("posix_spawn");
  }
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);

  std::string output;
  std::thread drain([&] {
    char buf[65536];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0)
      output.append(buf, static_cast<std::size_t>(n));
  });
  std::this_thread::sleep_for(run_for);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  drain.join();
  close(fds[0]);
  EXPECT_TRUE(WIFSIGNALED(status)) << "the child should have been running until killed";

  std::map<std::string, std::int64_t> acked;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // a line cut by the kill has no newline: not counted
    const auto space = line.find(' ');
    acked[line.substr(0, space)] = std::stoll(line.substr(space + 1));
  }
  return acked;
}

TEST(LocalLogCrash, KilledWriterLosesNoAcknowledgedAppend) {
  test::TempDir dir;
  const std::string path = (dir.path() / "log").string();
  std::mt19937 rng(std::random_device{}());
  std::map<std::string, std::int64_t> acked;
  for (int round = 0; round < 5; ++round) {
    const auto run_for = std::chrono::milliseconds(150 + rng() % 400);
    auto got = run_and_kill(path, "r" + std::to_string(round), run_for);
    EXPECT_FALSE(got.empty()) << "round " << round << " acknowledged nothing";
    acked.insert(got.begin(), got.end());

    // Recover: every acknowledged append is there once, where it was acked.
    Options o;
    o.path = path;
    auto log = LocalLog::open(o);
    const auto records = read_all(*log, 0);
    EXPECT_EQ(static_cast<std::int64_t>(records.size()), *log->end_offset(0));
    std::map<std::string, std::int64_t> found;
    for (std::size_t i = 0; i < records.size(); ++i) {
      ASSERT_EQ(records[i].position.offset, static_cast<std::int64_t>(i)) << "dense offsets";
      const std::string v = records[i].value.substr(0, records[i].value.find('.'));
      EXPECT_TRUE(found.emplace(v, records[i].position.offset).second) << "duplicate " << v;
    }
    for (const auto& [v, offset] : acked) {
      auto it = found.find(v);
      ASSERT_NE(it, found.end()) << "acknowledged " << v << " lost (round " << round << ")";
      EXPECT_EQ(it->second, offset) << v;
    }
    // And the log accepts appends after recovery, continuing the offsets.
    auto pos = log->append("crash-test", "recovered" + std::to_string(round));
    ASSERT_TRUE(pos);
    EXPECT_EQ(pos->offset, static_cast<std::int64_t>(records.size()));
    acked["recovered" + std::to_string(round)] = pos->offset;
  }
}

// A file system whose syncs fail on demand, to see what a failed fsync does.
class FailingSyncFs : public rocksdb::FileSystemWrapper {
 public:
  explicit FailingSyncFs(std::shared_ptr<rocksdb::FileSystem> base)
      : FileSystemWrapper(std::move(base)) {}
  const char* Name() const override { return "FailingSyncFs"; }

  std::atomic<bool> fail{false};

  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, std::atomic<bool>& fail)
        : FSWritableFileOwnerWrapper(std::move(f)), fail_(fail) {}
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
      if (fail_) return rocksdb::IOStatus::IOError("injected fsync failure");
      return FSWritableFileOwnerWrapper::Sync(o, d);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
      if (fail_) return rocksdb::IOStatus::IOError("injected fsync failure");
      return FSWritableFileOwnerWrapper::Fsync(o, d);
    }

   private:
    std::atomic<bool>& fail_;
  };

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    auto s = FileSystemWrapper::NewWritableFile(name, opts, result, dbg);
    if (s.ok()) *result = std::make_unique<File>(std::move(*result), fail);
    return s;
  }
};

bool wait_recovered(LocalLog& log, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!log.failure().empty()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

TEST(LocalLogFaults, FailedSyncIsRefusedUntilTheLogReopensItself) {
  test::TempDir dir;
  auto fs = std::make_shared<FailingSyncFs>(rocksdb::FileSystem::Default());
  auto env = rocksdb::NewCompositeEnv(fs);
  Options o;
  o.path = dir.path() / "log";
  o.env = env.get();
  auto log = LocalLog::open(o);
  ASSERT_TRUE(log->append("k", "durable"));
  EXPECT_TRUE(log->failure().empty());
  auto reader = log->open_reader({0, 0});
  ASSERT_TRUE(reader);

  fs->fail = true;
  auto failed = log->append("k", "not-durable");
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error(), make_error_code(errc::failed));
  EXPECT_FALSE(log->failure().empty());

  // While the device keeps failing, reopening fails too: appends are
  // refused, never queued into a later acknowledgement; readers get a
  // temporary error or what was committed, never a crash.
  std::this_thread::sleep_for(400ms);
  auto still = log->append("k", "refused");
  ASSERT_FALSE(still);
  EXPECT_EQ(still.error(), make_error_code(errc::failed));
  auto polled = (*reader)->poll(10, 0ms);
  if (polled) {
    for (const auto& r : *polled)
      EXPECT_EQ(r.value, "durable");
  } else {
    EXPECT_EQ(polled.error(), make_error_code(errc::unavailable));
  }

  // The device answers again: the log reopens from its files by itself.
  fs->fail = false;
  ASSERT_TRUE(wait_recovered(*log, 10s)) << log->failure();
  auto after = log->append("k", "after");
  ASSERT_TRUE(after) << after.error().message();
  log->close();

  // After a restart: the acknowledged appends, once each, in order; the
  // refused ones are absent except the failed write, which the disk may or
  // may not have kept (it was never acknowledged).
  o.env = nullptr;
  auto reopened = LocalLog::open(o);
  const auto records = read_all(*reopened, 0);
  std::vector<std::string> values;
  for (const auto& r : records)
    values.push_back(r.value);
  ASSERT_GE(values.size(), 2u);
  EXPECT_EQ(values.front(), "durable");
  EXPECT_EQ(values.back(), "after");
  EXPECT_EQ(records.back().position.offset, after->offset);
  EXPECT_LE(values.size(), 3u);
  if (values.size() == 3) {
    EXPECT_EQ(values[1], "not-durable");
  }
}

TEST(LocalLogFaults, ChangingThePartitionCountIsRefused) {
  test::TempDir dir;
  Options o;
  o.path = dir.path() / "log";
  o.partitions = 2;
  LocalLog::open(o)->close();
  o.partitions = 3;
  try {
    LocalLog::open(o);
    FAIL() << "a different partition count must be refused";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("created with 2 partitions"), std::string::npos)
        << e.what();
  }
}

TEST(LocalLogFaults, SecondProcessCannotOpenForWriting) {
  test::TempDir dir;
  Options o;
  o.path = dir.path() / "log";
  auto log = LocalLog::open(o);
  EXPECT_THROW(LocalLog::open(o), std::runtime_error);
}

TEST(LocalLogReadOnly, FollowerSeesTheWritersAppends) {
  test::TempDir dir;
  Options o;
  o.path = dir.path() / "log";
  auto log = LocalLog::open(o);
  ASSERT_TRUE(log->append("k", "one"));
  Options ro = o;
  ro.read_only = true;
  auto follower = LocalLog::open(ro);
  EXPECT_EQ(*follower->end_offset(0), 1);
  auto refused = follower->append("k", "x");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), make_error_code(errc::read_only));
  auto reader = follower->open_reader({0, 0});
  ASSERT_TRUE(reader);
  auto first = (*reader)->poll(10, 1s);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 1u);
  ASSERT_TRUE(log->append("k", "two"));
  auto second = (*reader)->poll(10, 5s);
  ASSERT_TRUE(second);
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0].value, "two");
}

}  // namespace
}  // namespace a3::eventlog::local
