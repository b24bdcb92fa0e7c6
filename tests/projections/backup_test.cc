// Point-in-time restore: a store restored to an offset has exactly the view
// the live store had at that offset, and the replaced store is kept aside.
#include <gtest/gtest.h>

#include <thread>

#include "projections/backup.h"
#include "tests/projections/projection_fixture.h"
#include "tests/projections/workload.h"

namespace a3::projections {
namespace {

using namespace std::chrono_literals;

class Backup : public test::ProjectionFixture {
 protected:
  backup::Offsets ends() {
    backup::Offsets o;
    for (std::int32_t p = 0; p < log->partitions(); ++p)
      o[p] = *log->end_offset(p);
    return o;
  }
  // The view stores positions only for partitions it has applied events of.
  static backup::Offsets applied(backup::Offsets o) {
    std::erase_if(o, [](const auto& kv) { return kv.second == 0; });
    return o;
  }
  std::filesystem::path backups() { return dir.path() / "backups"; }
  std::filesystem::path log_path() { return dir.path() / "log"; }
  std::filesystem::path view_path() { return dir.path() / "view"; }
};

TEST_F(Backup, RestoreToAnOffsetOrATimeGivesTheViewOfThatMoment) {
  const auto events = test::workload(600, 21);
  for (std::size_t i = 0; i < 200; ++i)
    run(events[i]);
  const auto first = backup::create(backups(), *view, log.get());
  const auto ends1 = ends();
  const std::string digest1 = view->digest();
  EXPECT_EQ(first.view_positions, applied(ends1));

  for (std::size_t i = 200; i < 400; ++i)
    run(events[i]);
  const auto ends2 = ends();
  const std::string digest2 = view->digest();
  std::this_thread::sleep_for(30ms);
  const auto between = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  std::this_thread::sleep_for(30ms);
  for (std::size_t i = 400; i < 600; ++i)
    run(events[i]);
  const auto ends3 = ends();
  close();

  // To an offset: the newest backup at or before it, replayed up to it.
  auto r =
      backup::restore(backups(), log_path(), view_path(), dir.path() / "timelines", 2, {ends2, {}});
  EXPECT_EQ(r.ends, ends2);
  EXPECT_EQ(r.digest, digest2);
  ASSERT_TRUE(r.base);
  EXPECT_EQ(r.base->id, first.id);
  {
    // Nothing was destroyed: the previous store, later events included, is aside.
    eventlog::local::Options o;
    o.path = r.aside / "log";
    o.partitions = 2;
    auto old = eventlog::local::LocalLog::open(o);
    for (const auto& [p, end] : ends3)
      EXPECT_EQ(*old->end_offset(p), end);
  }
  open();
  EXPECT_EQ(view->digest(), digest2);
  EXPECT_EQ(ends(), ends2) << "the new timeline's log ends at the target";
  // The new timeline goes on from there.
  EXPECT_TRUE(run(test::create_account("new@example.test")).ok());
  close();

  // To a time: resolved to the offsets of that moment, on the log in place.
  // The new timeline's last event is after `between`, so resolve on the log
  // as it is now: ends2 (the account above came later).
  r = backup::restore(backups(), log_path(), view_path(), dir.path() / "timelines", 2,
                      {{}, between});
  EXPECT_EQ(r.ends, ends2);
  EXPECT_EQ(r.digest, digest2);

  // With the live log lost, the backup's log is the source.
  std::filesystem::remove_all(log_path());
  std::filesystem::remove_all(view_path());
  r = backup::restore(backups(), log_path(), view_path(), dir.path() / "timelines", 2, {});
  EXPECT_EQ(r.ends, ends1);
  EXPECT_EQ(r.digest, digest1);
  // A target beyond every log is refused, and nothing changes.
  EXPECT_THROW(backup::restore(backups(), log_path(), view_path(), dir.path() / "timelines", 2,
                               {backup::Offsets{{0, 1'000'000}}, {}}),
               std::runtime_error);
  open();
  EXPECT_EQ(view->digest(), digest1);
}

TEST_F(Backup, BackupsAreIncrementalAndListed) {
  const auto events = test::workload(100, 4);
  for (std::size_t i = 0; i < 50; ++i)
    run(events[i]);
  backup::create(backups(), *view, log.get());
  for (std::size_t i = 50; i < 100; ++i)
    run(events[i]);
  backup::create(backups(), *view, log.get());
  const auto all = backup::list(backups());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_LT(all[0].id, all[1].id);
  EXPECT_EQ(all[1].view_positions, applied(ends()));
  EXPECT_TRUE(all[1].has_log);
}

}  // namespace
}  // namespace a3::projections
