// a3ctl ban add|remove|list: bans of client networks. A ban is an event
// (BanAdded, BanLifted) appended through the daemon when it runs, so every
// node enforces it as soon as it is projected, a replay knows it, and the
// audit trail shows who banned what, when and why.
#include <fmt/format.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/network.h"
#include "tools/a3ctl/commands.h"
#include "tools/a3ctl/output.h"
#include "tools/a3ctl/store_access.h"

namespace a3::ctl {

namespace {

constexpr std::string_view kUsage =
    "usage: a3ctl ban add NETWORK [--for DURATION] [--reason TEXT]\n"
    "       a3ctl ban remove NETWORK [--reason TEXT]\n"
    "       a3ctl ban list [--all] [--json]\n";

int usage() {
  fmt::print(stderr, "{}", kUsage);
  return 2;
}

std::string expiry_text(const projections::BanRecord& b, std::int64_t now) {
  if (b.expires_ms == 0) return "never";
  if (!b.active(now)) return "expired " + iso(b.expires_ms);
  return iso(b.expires_ms);
}

}  // namespace

int ban_command(const std::string& sub, Context& ctx) {
  const auto& a = ctx.args;
  if (sub == "list") {
    bool all = false, json = false;
    for (const auto& arg : a) {
      if (arg == "--all")
        all = true;
      else if (arg == "--json")
        json = true;
      else
        return usage();
    }
    auto access = StoreAccess::open(ctx.config);
    const std::int64_t now = now_ms();
    std::size_t shown = 0;
    for (const auto& b : access->store().bans()) {
      if (!all && !b.active(now)) continue;
      ++shown;
      if (json) {
        fmt::print(
            R"({{"network":{},"reason":{},"rule":{},"added":"{}","expires":{},"active":{},"by":{}}})"
            "\n",
            json_string(b.network), json_string(b.reason), json_string(b.rule), iso(b.added_ms),
            b.expires_ms ? fmt::format("\"{}\"", iso(b.expires_ms)) : std::string("null"),
            b.active(now), json_string(b.by));
        continue;
      }
      fmt::print("{:<20} until {:<28} {:<18} {} (by {}, {})\n", b.network, expiry_text(b, now),
                 b.rule, b.reason, b.by, iso(b.added_ms));
    }
    if (!json) fmt::print("{} ban{}\n", shown, shown == 1 ? "" : "s");
    return 0;
  }
  if (sub != "add" && sub != "remove") return usage();
  if (a.empty()) return usage();
  const auto network = Network::parse(a[0]);
  if (!network) {
    fmt::print(stderr, "a3ctl: \"{}\" is not an address or CIDR network\n", a[0]);
    return 2;
  }
  std::int64_t duration_s = 0;  // until lifted
  std::string reason = sub == "add" ? "banned by an operator" : "lifted by an operator";
  for (std::size_t i = 1; i < a.size(); ++i) {
    if (a[i] == "--reason" && i + 1 < a.size()) {
      reason = a[++i];
    } else if (sub == "add" && a[i] == "--for" && i + 1 < a.size()) {
      const auto d = parse_duration_s(a[++i]);
      if (!d || *d <= 0) {
        fmt::print(stderr, "a3ctl: --for \"{}\": expected a duration (90s, 30m, 24h, 7d)\n", a[i]);
        return 2;
      }
      duration_s = *d;
    } else {
      return usage();
    }
  }
  auto access = StoreAccess::open(ctx.config);
  std::vector<schemas::Event> events;
  if (sub == "add") {
    const std::int64_t expires = duration_s ? now_ms() + duration_s * 1000 : 0;
    events.push_back(
        schemas::make_event(std::string(schemas::kBansKey), operator_actor(),
                            schemas::BanAdded{network->str(), reason, expires, "manual"}));
    return run_events(*access, events, "banned");
  }
  if (!access->store().ban(network->str())) {
    fmt::print(stderr, "a3ctl: {} is not banned (a3ctl ban list --all)\n", network->str());
    return 1;
  }
  events.push_back(schemas::make_event(std::string(schemas::kBansKey), operator_actor(),
                                       schemas::BanLifted{network->str(), reason}));
  return run_events(*access, events, "lifted");
}

std::optional<std::int64_t> parse_duration_s(const std::string& s) {
  if (s.empty()) return std::nullopt;
  std::int64_t unit = 1;
  std::string digits = s;
  switch (s.back()) {
    case 's':
      unit = 1;
      digits.pop_back();
      break;
    case 'm':
      unit = 60;
      digits.pop_back();
      break;
    case 'h':
      unit = 3600;
      digits.pop_back();
      break;
    case 'd':
      unit = 86400;
      digits.pop_back();
      break;
    default:
      break;
  }
  if (digits.empty() || digits.size() > 9 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoll(digits) * unit;
}

}  // namespace a3::ctl
