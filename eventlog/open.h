// Opens the event log the configuration names.
#pragma once

#include <memory>

#include "common/config.h"
#include "eventlog/event_log.h"

namespace a3::eventlog {

// read_only follows a log another process writes; snapshot reads it as it
// was when opened (the local log: a RocksDB read-only instance, which,
// unlike a secondary one, reads blob files safely in RocksDB 7.8).
enum class Access { read_write, read_only, snapshot };

// Throws std::runtime_error with a message for operators when the log cannot
// be opened (path, lock held by another process, brokers unreachable...).
std::unique_ptr<EventLog> open(const config::Config& config, Access access);

}  // namespace a3::eventlog
