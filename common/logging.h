// Process-wide logging (spdlog): text for a terminal, one JSON object per
// line for log collectors.
#pragma once

#include "common/config.h"

namespace a3::logging {

// Installs the default logger as configured. Throws ConfigError if the log
// file cannot be opened.
void setup(const config::Logging& cfg);

}  // namespace a3::logging
