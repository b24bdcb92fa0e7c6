// Test helper: catches a view up with its log in small batches, slowly
// enough to be killed half-way. Usage: a3_projector_child LOG_DIR VIEW_DIR
#include "eventlog/local/local_log.h"
#include "projections/projector.h"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  a3::eventlog::local::Options o;
  o.path = argv[1];
  o.partitions = 2;
  auto log = a3::eventlog::local::LocalLog::open(o);
  auto view = a3::projections::view::ViewDb::open(argv[2]);
  a3::projections::Projector projector(*log, *view, 7);
  return projector.catch_up() ? 0 : 1;
}
