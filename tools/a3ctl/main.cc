// a3ctl: the operator's tool.
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/config.h"
#include "tools/a3ctl/commands.h"

namespace {

constexpr std::string_view kUsage = R"(usage: a3ctl [--config FILE] COMMAND ...

Commands:
  log dump [--from P:O] [--count N] [--json]
                      print the events of the log (all partitions, or one
                      partition from offset O) and exit
  log tail [--from P:O] [--json]
                      follow the log, printing events as they are appended
                      (default: from the current end); Ctrl-C stops
  log end             print the end offset of every partition
  account add ADDRESS [--password-stdin | --password P] [--quota BYTES] [--alias A]...
                      create an account (with INBOX, Sent, Drafts, Trash, Junk)
  account passwd ADDRESS [--password-stdin | --password P]
  account delete ADDRESS
  account alias ADDRESS add|remove ALIAS
  account quota ADDRESS [BYTES|unlimited]
                      show the account's usage, or set its quota (K, M, G suffixes)
  account list [--json]
  account show ADDRESS [--json]
  account message ADDRESS [MAILBOX] UID
                      print a stored message byte for byte (default INBOX)
  account restore ADDRESS --to-time T | --to-offset P:O [--dry-run]
                      roll one account back on the live store by appending the
                      events that return it to its state at the target
  ban add NETWORK [--for DURATION] [--reason TEXT]
                      refuse a client address or CIDR network at accept, on
                      every listener and node, for DURATION (90s, 30m, 24h,
                      7d) or until removed
  ban remove NETWORK [--reason TEXT]
  ban list [--all] [--json]
                      the bans in force (--all: expired ones not yet lifted)
  queue list [--json]  the outbound queue: every message, its recipients' state
  queue show ID [--json]
  queue retry ID       deliver it now (DeliveryRescheduled)
  queue delete ID      drop it without a bounce (OutboundDeleted)
  queue flush          every queued message now
  audit [--account A] [--kind K] [--since T] [--until T] [--remote-ip IP[/N]]
        [--mailbox NAME] [--limit N] [--json] [--all-timelines]
                      query the audit trail in PostgreSQL; T is a timestamp
                      (2026-11-20, 2026-11-20 10:00+01) or an age (7d, 12h);
                      the current history only, unless --all-timelines
  audit --timelines   the store's timelines: each restore starts one
  backup DIR [--keep N] [--keep-days D] [--list]
                      back up the view and (local mode) the log into DIR,
                      incrementally, with a manifest of offsets, the
                      configuration and (audit on) pg_dump of the audit
                      tables in DIR/sets/ID; then prune to the newest N sets
                      or those younger than D days
  restore DIR [--to-offset P:O]... [--to-time 2026-11-25T22:00:00Z]
                      build a new store whose log ends at the target (default:
                      the end) from the newest backup at or before it; the
                      replaced store is kept under data_dir/timelines/
  replay              rebuild the mailbox view from the log (daemon stopped),
                      with progress, and swap it in atomically
  verify              check that the view equals a fresh replay of the log at
                      the same positions (works while the daemon runs)
  health              the guide's health check: the daemon runs, its ports
                      listen, PostgreSQL answers (audit on), the log takes
                      appends, the projectors keep up; exit 0 or 1

While the daemon runs, writes go through its admin socket (data_dir/admin.sock)
and reads follow its view; with no daemon, a3ctl opens the store itself.

The configuration is --config FILE, else $A3_CONFIG, else
/etc/a3mailer/config.toml. Exit status: 0 ok, 1 failure (including corrupt
events found), 2 usage or configuration error.
)";

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  if (const char* env = std::getenv("A3_CONFIG")) config_path = env;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a.starts_with("--config=")) {
      config_path = a.substr(9);
    } else if (a == "--help" || a == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    } else if (a == "--version") {
      fmt::print("a3ctl {}\n", A3_VERSION);
      return 0;
    } else {
      break;
    }
  }
  if (i >= argc) {
    fmt::print(stderr, "{}", kUsage);
    return 2;
  }
  if (config_path.empty()) config_path = "/etc/a3mailer/config.toml";

  const std::string group = argv[i++];
  const std::string sub = i < argc ? argv[i++] : "";
  a3::ctl::Context ctx;
  for (; i < argc; ++i)
    ctx.args.emplace_back(argv[i]);

  // Diagnostics go to standard error; standard output is the command's data.
  spdlog::set_level(spdlog::level::warn);
  try {
    ctx.config = a3::config::load(config_path);
  } catch (const a3::config::ConfigError& e) {
    fmt::print(stderr, "a3ctl: configuration error: {}\n", e.what());
    return 2;
  }
  try {
    if (group == "log") return a3::ctl::log_command(sub, ctx);
    if (group == "account") return a3::ctl::account_command(sub, ctx);
    if (group == "queue") return a3::ctl::queue_command(sub, ctx);
    if (group == "ban") return a3::ctl::ban_command(sub, ctx);
    if (group == "backup" || group == "restore") {
      if (!sub.empty()) ctx.args.insert(ctx.args.begin(), sub);
      return group == "backup" ? a3::ctl::backup_command(ctx) : a3::ctl::restore_command(ctx);
    }
    if (group == "health") {
      if (!sub.empty()) ctx.args.insert(ctx.args.begin(), sub);
      return a3::ctl::health_command(ctx);
    }
    if (group == "audit") {
      if (!sub.empty()) ctx.args.insert(ctx.args.begin(), sub);
      return a3::ctl::audit_command(ctx);
    }
    if (group == "replay" || group == "verify") {
      if (!sub.empty() || !ctx.args.empty()) {
        fmt::print(stderr, "a3ctl: {} takes no arguments\n", group);
        return 2;
      }
      return group == "replay" ? a3::ctl::replay_command(ctx) : a3::ctl::verify_command(ctx);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "a3ctl: {}\n", e.what());
    return 1;
  }
  fmt::print(stderr, "a3ctl: unknown command '{}'\n\n{}", group, kUsage);
  return 2;
}
