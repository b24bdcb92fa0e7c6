#include "common/logging.h"

#include <chrono>
#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "common/json.h"

namespace a3::logging {

namespace {

// %j: the message as a JSON string literal, escaped.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string s;
    append_json_string(s, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(s.data(), s.data() + s.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

spdlog::sink_ptr make_sink(const config::Logging& cfg) {
  if (cfg.to_stdout) return std::make_shared<spdlog::sinks::stdout_color_sink_mt>();
  if (cfg.file.empty()) return std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  try {
    if (cfg.max_size > 0) {
      return std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
          cfg.file.string(), static_cast<std::size_t>(cfg.max_size),
          static_cast<std::size_t>(cfg.max_files));
    }
    return std::make_shared<spdlog::sinks::basic_file_sink_mt>(cfg.file.string());
  } catch (const spdlog::spdlog_ex& e) {
    throw config::ConfigError(
        fmt::format("logging: cannot open the log file {}: {}", cfg.file.string(), e.what()));
  }
}

std::unique_ptr<spdlog::formatter> make_formatter(const config::Logging& cfg) {
  if (cfg.format == "json") {
    auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    f->add_flag<JsonMessageFlag>('j').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","thread":%t,"msg":%j})");
    return f;
  }
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
  return f;
}

// The default logger writes through one distributing sink whose target is
// swapped under its lock (SIGHUP), so no thread ever logs to a sink that is
// gone.
std::mutex setup_mu;
std::shared_ptr<spdlog::sinks::dist_sink_mt> dist;

}  // namespace

void setup(const config::Logging& cfg) {
  std::lock_guard lock(setup_mu);
  spdlog::sink_ptr sink = make_sink(cfg);  // throws before anything changes
  sink->set_formatter(make_formatter(cfg));
  if (!dist) {
    dist = std::make_shared<spdlog::sinks::dist_sink_mt>();
    dist->set_sinks({sink});
    auto logger = std::make_shared<spdlog::logger>("a3mailer", dist);
    // Info and above are rare (start, stop, reloads, failures): written at
    // once, so `tail -f` shows them; chattier levels within a second.
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(std::move(logger));
    spdlog::flush_every(std::chrono::seconds(1));
  } else {
    dist->set_sinks({sink});
  }
  spdlog::default_logger_raw()->set_level(spdlog::level::from_str(cfg.level));
}

}  // namespace a3::logging
