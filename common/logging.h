// Process-wide logging (spdlog): text for a terminal, one JSON object per
// line for log collectors.
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/config.h"

namespace a3::logging {

// Who a log line is about. The JSON format gives each its own field
// ("component", "session", "remote_ip", "account"); the text format puts
// them before the message. Never a password, never a message body.
struct Fields {
  std::string_view component;  // smtp, imap, pop3, outbound, audit, ...
  std::string_view session;
  std::string_view remote_ip;
  std::string_view account;
};

// The fields travel inside the message, framed by control characters no
// message has (a log line is one line: they cannot come from clients).
std::string framed(const Fields& f, std::string_view text);

template <typename... Args>
void log(spdlog::level::level_enum level, const Fields& f, fmt::format_string<Args...> format,
         Args&&... args) {
  if (!spdlog::should_log(level)) return;
  spdlog::log(level, "{}", framed(f, fmt::format(format, std::forward<Args>(args)...)));
}

// Installs the default logger as configured; called again (SIGHUP), it
// reopens the file (after logrotate moved it) and takes the new level and
// format. Throws ConfigError if the file cannot be opened, and then the
// logging in force stays.
void setup(const config::Logging& cfg);

}  // namespace a3::logging
