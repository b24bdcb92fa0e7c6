// A projector killed with SIGKILL at random points and restarted converges to
// the digest of an uninterrupted replay: changes and positions are written
// together, so nothing is lost or applied twice.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "eventlog/local/local_log.h"
#include "projections/projector.h"
#include "schemas/codec.h"
#include "tests/projections/workload.h"
#include "tests/test_util.h"

extern char** environ;

namespace a3::projections {
namespace {

TEST(ProjectorCrash, KilledAtRandomPointsConvergesToTheSameDigest) {
  test::TempDir dir;
  const auto log_dir = dir.path() / "log", view_dir = dir.path() / "view";
  eventlog::local::Options o;
  o.path = log_dir;
  o.partitions = 2;
  std::string reference;
  {
    auto log = eventlog::local::LocalLog::open(o);
    for (const auto& e : test::workload(4000, 5)) {
      ASSERT_TRUE(log->append(e.account, schemas::encode(e)));
    }
    auto ref = view::ViewDb::open(dir.path() / "reference");
    Projector p(*log, *ref, 4096);
    ASSERT_TRUE(p.catch_up());
    reference = ref->digest();
  }

  std::mt19937 rng(std::random_device{}());
  int killed_midway = 0;
  for (int round = 0; round < 6; ++round) {
    std::string child = A3_TEST_PROJECTOR_CHILD;
    std::string a = log_dir.string(), b = view_dir.string();
    char* argv[] = {child.data(), a.data(), b.data(), nullptr};
    pid_t pid;
    ASSERT_EQ(posix_spawn(&pid, child.c_str(), nullptr, nullptr, argv, environ), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 100));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) ++killed_midway;
    if (WIFEXITED(status)) {
      EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's catch_up failed";
    }
  }
  EXPECT_GT(killed_midway, 0) << "no run was interrupted: make the workload longer";

  auto log = eventlog::local::LocalLog::open(o);
  auto view = view::ViewDb::open(view_dir);
  Projector p(*log, *view);
  ASSERT_TRUE(p.catch_up());
  EXPECT_EQ(view->digest(), reference);
}

}  // namespace
}  // namespace a3::projections
