// a3ctl audit: who did what, from the PostgreSQL audit trail.
#include <chrono>
#include <regex>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common/json.h"
#include "projections/audit/pg.h"
#include "tools/a3ctl/commands.h"

namespace a3::ctl {

namespace {

// "7d", "24h", "30m", "90s" mean that long ago; anything else is passed to
// PostgreSQL as a timestamp ("2026-11-20", "2026-11-20 10:00+01").
std::string time_arg(const std::string& v) {
  static const std::regex relative(R"(^(\d+)([smhd])$)");
  std::smatch m;
  if (!std::regex_match(v, m, relative)) return v;
  const long n = std::stol(m[1]);
  const long unit = m[2] == "s" ? 1 : m[2] == "m" ? 60 : m[2] == "h" ? 3600 : 86400;
  const auto t = std::chrono::system_clock::now() - std::chrono::seconds(n * unit);
  return fmt::format("{:%Y-%m-%d %H:%M:%S}+00",
                     std::chrono::time_point_cast<std::chrono::seconds>(t));
}

}  // namespace

int audit_command(Context& ctx) {
  std::optional<std::string> account, kind, since, until, ip, mailbox;
  std::string limit = "1000";
  bool json = false;
  bool all_timelines = false, timelines = false;
  const auto& a = ctx.args;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= a.size()) return std::nullopt;
      return a[++i];
    };
    std::optional<std::string>* target = nullptr;
    if (a[i] == "--json") {
      json = true;
      continue;
    } else if (a[i] == "--all-timelines") {
      all_timelines = true;
      continue;
    } else if (a[i] == "--timelines") {
      timelines = true;
      continue;
    } else if (a[i] == "--account") {
      target = &account;
    } else if (a[i] == "--kind") {
      target = &kind;
    } else if (a[i] == "--since") {
      target = &since;
    } else if (a[i] == "--until") {
      target = &until;
    } else if (a[i] == "--remote-ip") {
      target = &ip;
    } else if (a[i] == "--mailbox") {
      target = &mailbox;
    } else if (a[i] == "--limit") {
      auto v = value();
      if (!v || v->find_first_not_of("0123456789") != std::string::npos || v->empty()) {
        fmt::print(stderr, "a3ctl: --limit expects a number\n");
        return 2;
      }
      limit = *v;
      continue;
    } else {
      fmt::print(stderr, "a3ctl: unexpected argument '{}'\n", a[i]);
      return 2;
    }
    *target = value();
    if (!*target) {
      fmt::print(stderr, "a3ctl: {} expects a value\n", a[i]);
      return 2;
    }
  }
  if (since) since = time_arg(*since);
  if (until) until = time_arg(*until);
  if (!ctx.config.database.enabled || !ctx.config.database.configured()) {
    fmt::print(stderr, "a3ctl: the audit trail needs [database] url (or host, database) in {}\n",
               ctx.config.source.string());
    return 2;
  }
  projections::audit::Connection db(ctx.config.database.conninfo());
  if (!db.ok()) {
    fmt::print(stderr, "a3ctl: cannot connect to PostgreSQL: {}\n", db.error());
    return 1;
  }
  std::string err;
  if (timelines) {
    // The store's histories: each restore began one where it cut the log.
    auto t = db.query(R"sql(
SELECT timeline, to_char(began AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), branched_at::text
  FROM audit_timelines ORDER BY timeline)sql",
                      {}, &err);
    if (!t) return fmt::print(stderr, "a3ctl: audit query failed: {}\n", err), 1;
    for (int i = 0; i < PQntuples(t.get()); ++i)
      fmt::print("timeline {}  began {}  at {}\n", PQgetvalue(t.get(), i, 0),
                 PQgetvalue(t.get(), i, 1), PQgetvalue(t.get(), i, 2));
    return 0;
  }
  const std::optional<std::string> current =
      all_timelines ? std::nullopt : std::optional<std::string>("current");
  auto r = db.query(R"sql(
SELECT e.partition || ':' || e.log_offset,
       to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       e.kind, e.account, e.protocol, coalesce(e.actor_user, ''),
       coalesce(host(e.remote_ip), ''), coalesce(m.name, ''), coalesce(e.message_id, ''),
       coalesce(array_to_string(e.uids, ','), ''), coalesce(array_to_string(e.flags, ' '), ''),
       e.details::text, e.timeline, coalesce(e.superseded_by::text, '')
  FROM audit_events e LEFT JOIN audit_mailboxes m USING (mailbox_id)
 WHERE ($1::text IS NULL OR e.account = lower($1))
   AND ($2::text IS NULL OR e.kind = $2)
   AND ($3::timestamptz IS NULL OR e.at >= $3)
   AND ($4::timestamptz IS NULL OR e.at < $4)
   AND ($5::inet IS NULL OR e.remote_ip <<= $5)
   AND ($6::text IS NULL OR m.name = $6)
   AND ($8::text IS NULL OR e.superseded_by IS NULL)
 ORDER BY e.at, e.partition, e.log_offset
 LIMIT $7)sql",
                    {account, kind, since, until, ip, mailbox, limit, current}, &err);
  if (!r) {
    fmt::print(stderr, "a3ctl: audit query failed: {}\n", err);
    return 1;
  }
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    auto v = [&](int c) { return std::string(PQgetvalue(r.get(), i, c)); };
    if (json) {
      fmt::print(
          "{{\"position\":{},\"at\":{},\"kind\":{},\"account\":{},\"protocol\":{},\"user\":{},"
          "\"remote_ip\":{},\"mailbox\":{},\"message_id\":{},\"uids\":{},\"flags\":{},"
          "\"timeline\":{},\"superseded_by\":{},\"event\":{}}}\n",
          json_string(v(0)), json_string(v(1)), json_string(v(2)), json_string(v(3)),
          json_string(v(4)), json_string(v(5)), json_string(v(6)), json_string(v(7)),
          json_string(v(8)), json_string(v(9)), json_string(v(10)), v(12),
          v(13).empty() ? std::string("null") : v(13), v(11));
    } else {
      std::string what;
      if (!v(7).empty()) what += " mailbox=" + v(7);
      if (!v(9).empty()) what += " uids=" + v(9);
      if (!v(10).empty()) what += " flags=" + v(10);
      if (!v(8).empty()) what += " message-id=" + v(8);
      if (!v(13).empty()) what += " (discarded: timeline " + v(13) + " replaced it)";
      fmt::print("{} {:<10} {:<24} {:<22} by {}{}{}{}\n", v(1), v(0), v(2), v(3), v(4),
                 v(5).empty() ? "" : " " + v(5), v(6).empty() ? "" : " from " + v(6), what);
    }
  }
  return 0;
}

}  // namespace a3::ctl
