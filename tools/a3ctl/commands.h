// a3ctl command implementations. Each returns the process exit status.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "schemas/event.h"

namespace a3::ctl {

struct Context {
  config::Config config;
  std::vector<std::string> args;  // after the command words
};

// Who an operator's events name: admin, the (sudo) user, "a3ctl-<pid>".
schemas::Actor operator_actor();

// "90s", "30m", "24h", "7d" or plain seconds, as seconds; nullopt if none.
std::optional<std::int64_t> parse_duration_s(const std::string& s);

// "2026-11-25T22:00:00Z", "2026-11-25 22:00:00" (UTC) or "@<ms>": ms since the epoch.
std::optional<std::int64_t> parse_time_arg(const std::string& s);

// a3ctl log dump|tail|end ...
int log_command(const std::string& sub, Context& ctx);

// a3ctl account add|passwd|delete|alias|list|show ...
int account_command(const std::string& sub, Context& ctx);

// a3ctl ban add|remove|list ...
int ban_command(const std::string& sub, Context& ctx);

// a3ctl queue list|show|retry|delete|flush ...
int queue_command(const std::string& sub, Context& ctx);

// a3ctl replay / verify
int replay_command(Context& ctx);
int verify_command(Context& ctx);

// a3ctl backup DIR [--list] / restore DIR [--to-offset P:O]... [--to-time T]
int backup_command(Context& ctx);
int restore_command(Context& ctx);

// a3ctl audit [filters] [--json]
int audit_command(Context& ctx);

// a3ctl health (tools/a3ctl/health_command.cc).
int health_command(Context& ctx);

}  // namespace a3::ctl
