// A local log, a view and a running projector in a temp directory.
#pragma once

#include <gtest/gtest.h>

#include "eventlog/local/local_log.h"
#include "projections/projector.h"
#include "projections/store.h"
#include "tests/test_util.h"

namespace a3::test {

class ProjectionFixture : public ::testing::Test {
 protected:
  void SetUp() override { open(); }
  void TearDown() override { close(); }

  void open(std::size_t max_batch = 2048) {
    eventlog::local::Options o;
    o.path = dir.path() / "log";
    o.partitions = 2;
    log = eventlog::local::LocalLog::open(o);
    view = projections::view::ViewDb::open(dir.path() / "view");
    projector = std::make_unique<projections::Projector>(*log, *view, max_batch);
    projector->start();
    store = std::make_unique<projections::Store>(log.get(), *view, projector.get());
  }
  void close() {
    store.reset();
    if (projector) projector->stop();
    projector.reset();
    view.reset();
    log.reset();
  }

  projections::Outcome run(const schemas::Event& e) {
    auto r = store->execute_blocking(e);
    EXPECT_TRUE(r) << r.error().message();
    return r ? *r : projections::Outcome{};
  }

  TempDir dir;
  std::unique_ptr<eventlog::local::LocalLog> log;
  std::unique_ptr<projections::view::ViewDb> view;
  std::unique_ptr<projections::Projector> projector;
  std::unique_ptr<projections::Store> store;
};

}  // namespace a3::test
