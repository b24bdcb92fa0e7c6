// Process-wide logging (spdlog): text for a terminal, one JSON object per
// line for log collectors.
#pragma once

#include "common/config.h"

namespace a3::logging {

// Installs the default logger as configured; called again (SIGHUP), it
// reopens the file (after logrotate moved it) and takes the new level and
// format. Throws ConfigError if the file cannot be opened, and then the
// logging in force stays.
void setup(const config::Logging& cfg);

}  // namespace a3::logging
