#include "eventlog/local/rocks_logger.h"

#include <cstdarg>
#include <cstdio>
#include <string_view>

#include <rocksdb/env.h>
#include <spdlog/spdlog.h>

namespace a3::eventlog::local {

namespace {

class SpdlogLogger final : public rocksdb::Logger {
 public:
  explicit SpdlogLogger(std::string name)
      : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL), name_(std::move(name)) {}

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }

  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char buf[1024];
    va_list copy;
    va_copy(copy, ap);
    const int n = std::vsnprintf(buf, sizeof buf, format, copy);
    va_end(copy);
    if (n < 0) return;
    std::string_view text(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
      text.remove_suffix(1);
    switch (level) {
      case rocksdb::InfoLogLevel::DEBUG_LEVEL:
        return spdlog::debug("rocksdb ({}): {}", name_, text);
      case rocksdb::InfoLogLevel::INFO_LEVEL:
      case rocksdb::InfoLogLevel::HEADER_LEVEL:
        return spdlog::info("rocksdb ({}): {}", name_, text);
      case rocksdb::InfoLogLevel::WARN_LEVEL:
        return spdlog::warn("rocksdb ({}): {}", name_, text);
      default:
        return spdlog::error("rocksdb ({}): {}", name_, text);
    }
  }

 private:
  std::string name_;
};

}  // namespace

std::shared_ptr<rocksdb::Logger> rocks_logger(std::string name) {
  return std::make_shared<SpdlogLogger>(std::move(name));
}

}  // namespace a3::eventlog::local
