// a3ctl account add|passwd|delete|list|show|alias: accounts are events.
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <iterator>

#include <fmt/format.h>

#include "common/json.h"
#include "common/password.h"
#include "projections/account_restore.h"
#include "projections/view/encoding.h"
#include "tools/a3ctl/commands.h"
#include "tools/a3ctl/store_access.h"

namespace a3::ctl {

schemas::Actor operator_actor() {
  std::string user;
  if (const char* sudo = std::getenv("SUDO_USER")) {
    user = sudo;
  } else if (const passwd* pw = ::getpwuid(::getuid())) {
    user = pw->pw_name;
  }
  return {schemas::Protocol::admin, user, "", fmt::format("a3ctl-{}", ::getpid())};
}

namespace {

using schemas::Event;

// A deliverable address in one of our local domains: local@domain, printable
// ASCII without spaces, quotes or brackets (RFC 5321 4.1.2 dot-atom, kept
// strict for accounts), at most 254 octets (RFC 5321 4.5.3.1.3).
std::optional<std::string> check_address(const config::Config& c, std::string_view address) {
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size() || address.size() > 254) {
    return fmt::format("'{}' is not an address (local@domain)", address);
  }
  for (char ch : address) {
    const auto u = static_cast<unsigned char>(ch);
    if (u <= 0x20 || u >= 0x7f ||
        std::string_view("\"(),:;<>[\\]").find(ch) != std::string_view::npos) {
      return fmt::format("'{}' contains a character not allowed in an account address", address);
    }
  }
  const std::string domain = projections::view::lowercase(address.substr(at + 1));
  for (const auto& d : c.server.local_domains) {
    if (projections::view::lowercase(d) == domain) return std::nullopt;
  }
  return fmt::format("the domain of '{}' is not one of server.local_domains ({})", address,
                     fmt::join(c.server.local_domains, ", "));
}

struct Args {
  std::vector<std::string> positional;
  std::optional<std::string> password;
  bool password_stdin = false;
  bool json = false;
  std::uint64_t quota = 0;
  std::vector<std::string> aliases;
};

std::optional<Args> parse(const std::vector<std::string>& in) {
  Args a;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const std::string& s = in[i];
    if (s == "--password" && i + 1 < in.size()) {
      a.password = in[++i];
    } else if (s == "--password-stdin") {
      a.password_stdin = true;
    } else if (s == "--json") {
      a.json = true;
    } else if (s == "--quota" && i + 1 < in.size()) {
      try {
        a.quota = std::stoull(in[++i]);
      } catch (const std::exception&) {
        fmt::print(stderr, "a3ctl: --quota expects a number of bytes\n");
        return std::nullopt;
      }
    } else if (s == "--to-time" || s == "--to-offset" || s == "--dry-run") {
      // account restore reads its own options from the raw arguments.
      if (s != "--dry-run") ++i;
    } else if (s == "--alias" && i + 1 < in.size()) {
      a.aliases.push_back(in[++i]);
    } else if (s.starts_with("--")) {
      fmt::print(stderr, "a3ctl: unknown option '{}'\n", s);
      return std::nullopt;
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

// The new password: from standard input (one line, or all of it) or
// --password. Never echoed or logged.
std::optional<std::string> read_password(const Args& a) {
  std::string pw;
  if (a.password_stdin) {
    pw.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r'))
      pw.pop_back();
  } else if (a.password) {
    pw = *a.password;
  } else {
    fmt::print(stderr, "a3ctl: give the password with --password-stdin (or --password)\n");
    return std::nullopt;
  }
  if (pw.empty()) {
    fmt::print(stderr, "a3ctl: the password is empty\n");
    return std::nullopt;
  }
  return pw;
}

// "1048576", "512K", "100M", "2G" (powers of 1024) or "unlimited" (0).
std::optional<std::uint64_t> parse_quota(const std::string& text) {
  if (text == "unlimited") return 0;
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || p == text.data()) return std::nullopt;
  int shift = 0;
  if (p != end) {
    if (p + 1 != end) return std::nullopt;
    switch (*p) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      default:
        return std::nullopt;
    }
  }
  if (shift > 0 && value > (UINT64_MAX >> shift)) return std::nullopt;
  return value << shift;
}

// Runs one event and reports its outcome; 0 if it applied.
int run_one(StoreAccess& access, const Event& e, const std::string& success) {
  auto replies = access.execute({e});
  const auto& r = replies.at(0);
  if (!r.ok) {
    fmt::print(stderr, "a3ctl: {}\n", r.text);
    return 1;
  }
  if (!r.text.starts_with("ok")) {
    fmt::print(stderr, "a3ctl: {}\n", r.text);
    return 1;
  }
  fmt::print("{}\n", success);
  return 0;
}

std::string account_json(const projections::Store& store, const projections::AccountRecord& a) {
  std::uint64_t messages = 0, size = 0;
  std::string boxes;
  for (const auto& m : store.mailboxes(a.name)) {
    messages += m.messages;
    size += m.size;
    if (!boxes.empty()) boxes += ',';
    boxes += fmt::format(
        R"({{"name":{},"special_use":{},"messages":{},"unseen":{},"size":{},"uidvalidity":{},"uidnext":{},"highestmodseq":{}}})",
        json_string(m.name), json_string(m.special_use), m.messages, m.unseen, m.size,
        m.uidvalidity, m.uidnext, m.highestmodseq);
  }
  std::string addrs;
  for (const auto& x : a.addresses)
    addrs += (addrs.empty() ? "" : ",") + json_string(x);
  return fmt::format(
      R"({{"account":{},"addresses":[{}],"quota_bytes":{},"messages":{},"size":{},"mailboxes":[{}]}})",
      json_string(a.name), addrs, a.quota_bytes, messages, size, boxes);
}

// a3ctl account restore ADDRESS --to-time T | --to-offset P:O [--dry-run]
int restore_account(const std::string& name, Context& ctx) {
  std::optional<eventlog::Position> to_offset;
  std::optional<std::string> to_time;
  bool dry_run = false;
  const auto& a = ctx.args;
  for (std::size_t i = 1; i < a.size(); ++i) {
    if (a[i] == "--to-offset" && i + 1 < a.size()) {
      to_offset = eventlog::Position::parse(a[++i]);
      if (!to_offset) return fmt::print(stderr, "a3ctl: --to-offset expects P:O\n"), 2;
    } else if (a[i] == "--to-time" && i + 1 < a.size()) {
      to_time = a[++i];
    } else if (a[i] == "--dry-run") {
      dry_run = true;
    } else {
      return fmt::print(stderr, "a3ctl: unexpected argument '{}'\n", a[i]), 2;
    }
  }
  if (!to_offset == !to_time) {
    fmt::print(stderr, "a3ctl: account restore needs --to-time T or --to-offset P:O\n");
    return 2;
  }
  auto access = StoreAccess::open(ctx.config);
  auto& log = access->log();
  const std::int32_t partition = log.partition_for(name);
  std::int64_t target;
  if (to_offset) {
    if (to_offset->partition != partition) {
      fmt::print(stderr, "a3ctl: {}'s events are in partition {}\n", name, partition);
      return 2;
    }
    target = to_offset->offset;
  } else {
    auto ms = parse_time_arg(*to_time);
    if (!ms)
      return fmt::print(stderr, "a3ctl: --to-time expects 2026-11-25T22:00:00Z or @<ms>\n"), 2;
    auto at = log.offset_for_time(partition, *ms);
    if (!at) return fmt::print(stderr, "a3ctl: {}\n", at.error().message()), 1;
    target = *at;
  }
  auto actor = operator_actor();
  actor.session_id += "-restore";
  const auto plan = projections::plan_account_rollback(log, access->store(), name, target, actor);
  for (const auto& step : plan.steps)
    fmt::print("{}{}\n", dry_run ? "would " : "", step);
  if (plan.events.empty()) {
    fmt::print("{} is already as it was at {}:{}\n", name, partition, target);
    return 0;
  }
  if (dry_run) return 0;
  const auto replies = access->execute(plan.events);
  std::size_t failed = 0;
  for (const auto& r : replies) {
    if (!r.ok || !r.text.starts_with("ok")) {
      ++failed;
      fmt::print(stderr, "a3ctl: {}\n", r.text);
    }
  }
  fmt::print(
      "rolled {} back to {}:{}: {} messages re-appended, {} flag sets restored, {} "
      "mailboxes re-created ({} events{})\n",
      name, partition, target, plan.messages_restored, plan.flags_restored, plan.mailboxes_restored,
      plan.events.size(), failed ? fmt::format(", {} failed", failed) : "");
  return failed ? 1 : 0;
}

}  // namespace

int account_command(const std::string& sub, Context& ctx) {
  auto args = parse(ctx.args);
  if (!args) return 2;
  const auto& pos = args->positional;
  const bool needs_address = sub != "list";
  if (needs_address && pos.empty()) {
    fmt::print(stderr, "a3ctl: account {} needs an ADDRESS\n", sub);
    return 2;
  }
  const std::string name = needs_address ? projections::view::lowercase(pos[0]) : "";
  if (sub == "add") {
    if (auto bad = check_address(ctx.config, name))
      return fmt::print(stderr, "a3ctl: {}\n", *bad), 2;
    std::vector<std::string> addresses{name};
    for (const auto& alias : args->aliases) {
      if (auto bad = check_address(ctx.config, alias))
        return fmt::print(stderr, "a3ctl: {}\n", *bad), 2;
      addresses.push_back(projections::view::lowercase(alias));
    }
    auto pw = read_password(*args);
    if (!pw) return 2;
    auto access = StoreAccess::open(ctx.config);
    for (const auto& addr : addresses) {
      if (auto owner = access->store().account_for_address(addr)) {
        fmt::print(stderr, "a3ctl: {} already delivers to {}\n", addr, *owner);
        return 1;
      }
    }
    if (access->store().account(name)) {
      fmt::print(stderr, "a3ctl: account {} exists\n", name);
      return 1;
    }
    const Event e = schemas::make_event(
        name, operator_actor(),
        schemas::AccountCreated{name, password::hash(*pw), addresses, args->quota});
    return run_one(*access, e,
                   fmt::format("created {} with mailboxes INBOX, Sent, Drafts, Trash, Junk", name));
  }
  if (sub == "passwd") {
    auto pw = read_password(*args);
    if (!pw) return 2;
    auto access = StoreAccess::open(ctx.config);
    if (!access->store().account(name))
      return fmt::print(stderr, "a3ctl: no account {}\n", name), 1;
    return run_one(*access,
                   schemas::make_event(name, operator_actor(),
                                       schemas::AccountPasswordChanged{password::hash(*pw)}),
                   fmt::format("password of {} changed", name));
  }
  if (sub == "delete") {
    auto access = StoreAccess::open(ctx.config);
    if (!access->store().account(name))
      return fmt::print(stderr, "a3ctl: no account {}\n", name), 1;
    return run_one(*access,
                   schemas::make_event(name, operator_actor(), schemas::AccountDeleted{"a3ctl"}),
                   fmt::format("deleted {}", name));
  }
  if (sub == "alias") {
    if (pos.size() != 3 || (pos[1] != "add" && pos[1] != "remove")) {
      fmt::print(stderr, "a3ctl: usage: account alias ADDRESS add|remove ALIAS\n");
      return 2;
    }
    const std::string alias = projections::view::lowercase(pos[2]);
    if (auto bad = check_address(ctx.config, alias))
      return fmt::print(stderr, "a3ctl: {}\n", *bad), 2;
    auto access = StoreAccess::open(ctx.config);
    auto account = access->store().account(name);
    if (!account) return fmt::print(stderr, "a3ctl: no account {}\n", name), 1;
    auto addresses = account->addresses;
    const bool has = std::find(addresses.begin(), addresses.end(), alias) != addresses.end();
    if (pos[1] == "add") {
      if (auto owner = access->store().account_for_address(alias)) {
        fmt::print(stderr, "a3ctl: {} already delivers to {}\n", alias, *owner);
        return 1;
      }
      addresses.push_back(alias);
    } else {
      if (!has) return fmt::print(stderr, "a3ctl: {} is not an address of {}\n", alias, name), 1;
      if (alias == name) return fmt::print(stderr, "a3ctl: the account's own address stays\n"), 1;
      addresses.erase(std::find(addresses.begin(), addresses.end(), alias));
    }
    return run_one(
        *access,
        schemas::make_event(name, operator_actor(), schemas::AccountAddressesChanged{addresses}),
        fmt::format("{} {} {}", pos[1] == "add" ? "added" : "removed", alias, name));
  }
  if (sub == "quota") {
    // account quota ADDRESS [BYTES|unlimited]: show the usage, or set the
    // quota (RFC 9208 STORAGE; K, M, G suffixes are powers of 1024).
    if (pos.size() > 2) {
      fmt::print(stderr, "a3ctl: usage: account quota ADDRESS [BYTES|unlimited]\n");
      return 2;
    }
    auto access = StoreAccess::open(ctx.config);
    if (!access->store().account(name))
      return fmt::print(stderr, "a3ctl: no account {}\n", name), 1;
    if (pos.size() == 1) {
      const auto u = access->store().usage(name);
      if (!u) return fmt::print(stderr, "a3ctl: no account {}\n", name), 1;
      if (u->limit == 0) {
        fmt::print("{}  used={}  limit=unlimited  messages={}\n", name, u->bytes, u->messages);
      } else {
        fmt::print("{}  used={}  limit={}  ({:.1f}%)  messages={}\n", name, u->bytes, u->limit,
                   100.0 * static_cast<double>(u->bytes) / static_cast<double>(u->limit),
                   u->messages);
      }
      return 0;
    }
    const auto bytes = parse_quota(pos[1]);
    if (!bytes) {
      fmt::print(stderr,
                 "a3ctl: quota: '{}' is not a size (bytes, with an optional K, M or G, or "
                 "'unlimited')\n",
                 pos[1]);
      return 2;
    }
    return run_one(
        *access, schemas::make_event(name, operator_actor(), schemas::AccountQuotaChanged{*bytes}),
        *bytes == 0 ? fmt::format("quota of {} removed", name)
                    : fmt::format("quota of {} set to {} bytes", name, *bytes));
  }
  if (sub == "restore") return restore_account(name, ctx);
  if (sub == "message") {
    // account message ADDRESS [MAILBOX] UID: the stored bytes, as delivered.
    if (pos.size() < 2 || pos.size() > 3) {
      fmt::print(stderr, "a3ctl: usage: account message ADDRESS [MAILBOX] UID\n");
      return 2;
    }
    const std::string box_name = pos.size() == 3 ? pos[1] : "INBOX";
    std::uint32_t uid = 0;
    try {
      uid = static_cast<std::uint32_t>(std::stoul(pos.back()));
    } catch (const std::exception&) {
      return fmt::print(stderr, "a3ctl: UID must be a number\n"), 2;
    }
    auto access = StoreAccess::open(ctx.config);
    auto& store = access->store();
    auto box = store.mailbox(name, box_name);
    if (!box) return fmt::print(stderr, "a3ctl: {} has no mailbox {}\n", name, box_name), 1;
    auto msgs = store.messages(box->id, uid, uid);
    if (msgs.empty()) return fmt::print(stderr, "a3ctl: no UID {} in {}\n", uid, box_name), 1;
    auto raw = store.body(msgs[0].blob);
    if (!raw) return fmt::print(stderr, "a3ctl: the body of UID {} is missing\n", uid), 1;
    std::fwrite(raw->data(), 1, raw->size(), stdout);
    return 0;
  }
  if (sub == "list" || sub == "show") {
    auto access = StoreAccess::open(ctx.config);
    auto& store = access->store();
    std::vector<projections::AccountRecord> accounts;
    if (sub == "show") {
      auto a = store.account(name);
      if (!a) return fmt::print(stderr, "a3ctl: no account {}\n", name), 1;
      accounts.push_back(*a);
    } else {
      accounts = store.accounts();
    }
    for (const auto& a : accounts) {
      if (args->json) {
        fmt::print("{}\n", account_json(store, a));
        continue;
      }
      std::uint64_t messages = 0, size = 0;
      const auto boxes = store.mailboxes(a.name);
      for (const auto& m : boxes)
        messages += m.messages, size += m.size;
      fmt::print("{}  addresses={}  mailboxes={}  messages={}  size={}\n", a.name,
                 fmt::join(a.addresses, ","), boxes.size(), messages, size);
      if (sub == "show") {
        for (const auto& m : boxes) {
          fmt::print("  {:<20} {:<8} messages={} unseen={} size={} uidvalidity={} uidnext={}\n",
                     m.name, m.special_use, m.messages, m.unseen, m.size, m.uidvalidity, m.uidnext);
        }
      }
    }
    return 0;
  }
  fmt::print(stderr,
             "a3ctl: account expects add, passwd, delete, alias, quota, list, show or restore (got "
             "'{}')\n",
             sub);
  return 2;
}

}  // namespace a3::ctl
