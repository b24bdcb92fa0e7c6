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

constexpr char kStart = '\x1e', kSep = '\x1f';

// A message split into its fields (logging::Fields) and its text. Without
// fields, the component is the message's first word when it ends in ':' or
// is followed by a session ("smtp: listening ...", "imap i1f: ...").
struct Parsed {
  std::string_view fields[4];  // component, session, remote_ip, account
  std::string_view text;
};

Parsed parse(std::string_view m) {
  Parsed p;
  if (!m.empty() && m.front() == kStart) {
    const auto end = m.find(kStart, 1);
    if (end != std::string_view::npos) {
      std::string_view f = m.substr(1, end - 1);
      for (auto& field : p.fields) {
        const auto sep = f.find(kSep);
        field = f.substr(0, sep);
        f = sep == std::string_view::npos ? std::string_view() : f.substr(sep + 1);
      }
      p.text = m.substr(end + 1);
      return p;
    }
  }
  p.text = m;
  std::size_t i = 0;
  while (i < m.size() &&
         ((m[i] >= 'a' && m[i] <= 'z') || (m[i] >= '0' && m[i] <= '9') || m[i] == '_'))
    ++i;
  if (i > 0 && i < m.size() && (m[i] == ':' || m[i] == ' ')) p.fields[0] = m.substr(0, i);
  return p;
}

// %j: the fields and the message as JSON members ("component":...,"msg":...).
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const Parsed p = parse(std::string_view(msg.payload.data(), msg.payload.size()));
    static constexpr const char* kNames[] = {"component", "session", "remote_ip", "account"};
    std::string s;
    for (std::size_t i = 0; i < 4; ++i) {
      if (p.fields[i].empty()) continue;
      s += fmt::format("\"{}\":", kNames[i]);
      append_json_string(s, p.fields[i]);
      s += ",";
    }
    s += "\"msg\":";
    append_json_string(s, p.text);
    dest.append(s.data(), s.data() + s.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

// %*: the text format: "smtp s1 192.0.2.1 ann@example.test: message".
class TextMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string_view m(msg.payload.data(), msg.payload.size());
    if (m.empty() || m.front() != kStart) return dest.append(m.data(), m.data() + m.size());
    const Parsed p = parse(m);
    std::string s;
    for (const auto& f : p.fields) {
      if (f.empty()) continue;
      if (!s.empty()) s += ' ';
      s += f;
    }
    s += ": ";
    s += p.text;
    dest.append(s.data(), s.data() + s.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<TextMessageFlag>();
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
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","thread":%t,%j})");
    return f;
  }
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<TextMessageFlag>('*').set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %*");
  return f;
}

// The default logger writes through one distributing sink whose target is
// swapped under its lock (SIGHUP), so no thread ever logs to a sink that is
// gone.
std::mutex setup_mu;
std::shared_ptr<spdlog::sinks::dist_sink_mt> dist;

}  // namespace

std::string framed(const Fields& f, std::string_view text) {
  std::string out(1, kStart);
  for (auto part : {f.component, f.session, f.remote_ip, f.account}) {
    // A field never carries the framing (nor a line break).
    for (char ch : part)
      out += (ch == kStart || ch == kSep || ch == '\n' || ch == '\r') ? '?' : ch;
    out += kSep;
  }
  out.back() = kStart;
  out += text;
  return out;
}

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
