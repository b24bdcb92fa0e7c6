// RocksDB's diagnostics into the daemon's own log (spdlog), instead of a LOG
// file beside the data: one place to read, and nothing RocksDB writes for
// itself on a disk that may be full (Debian's RocksDB 7.8 aborts on an
// assertion when its LOG file fails a write and it logs again).
#pragma once

#include <memory>
#include <string>

namespace rocksdb {
class Logger;
}

namespace a3::eventlog::local {

// A logger for Options::info_log; `name` prefixes each line ("log", "view").
// Warnings and worse are logged; RocksDB's INFO chatter (compaction
// statistics) is not.
std::shared_ptr<rocksdb::Logger> rocks_logger(std::string name);

}  // namespace a3::eventlog::local
