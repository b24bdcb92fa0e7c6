// Events for projection tests: accounts and a deterministic random mix of
// appends, flag changes, expunges and copies.
#pragma once

#include <map>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "projections/mailbox_projector.h"
#include "schemas/event.h"

namespace a3::test {

using namespace schemas;

inline const Actor kAdmin{Protocol::admin, "root", "", "test"};
inline const Actor kImap{Protocol::imap, "alice@example.test", "192.0.2.1", "s1"};
inline constexpr const char* kAlice = "alice@example.test";

inline Event create_account(const std::string& name, std::vector<std::string> aliases = {}) {
  aliases.insert(aliases.begin(), name);
  return make_event(name, kAdmin, AccountCreated{name, "$argon2id$x", aliases, 0});
}

inline std::string raw_message(int n) {
  return fmt::format(
      "From: bob@example.test\r\nTo: alice@example.test\r\nSubject: message {}\r\n"
      "Message-ID: <{}@example.test>\r\n\r\nBody {}\r\n",
      n, n, n);
}

// A deterministic random workload over a few accounts.
inline std::vector<Event> workload(int n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Event> out;
  const std::vector<std::string> accounts = {"a@example.test", "b@example.test", "c@example.test"};
  std::map<std::string, Uuid> inboxes;
  for (const auto& a : accounts) {
    out.push_back(create_account(a));
    inboxes[a] = projections::default_mailbox_id(out.back().id, "INBOX");
  }
  std::map<std::string, std::uint32_t> appended;
  for (int i = 0; i < n; ++i) {
    const std::string& a = accounts[rng() % accounts.size()];
    const Uuid box = inboxes[a];
    const std::uint32_t top = appended[a];
    const std::uint32_t uid = top ? 1 + rng() % top : 1;
    switch (rng() % 6) {
      case 0:
      case 1:
        out.push_back(
            make_event(a, kImap, MessageAppended{box, raw_message(rng() % 50), i, {}, {}}));
        ++appended[a];
        break;
      case 2:
        out.push_back(make_event(a, kImap, FlagsChanged{box, {uid}, FlagOp::add, {"\\Seen"}, {}}));
        break;
      case 3:
        out.push_back(make_event(
            a, kImap, FlagsChanged{box, {uid, uid + 1}, FlagOp::remove, {"\\Seen"}, {}}));
        break;
      case 4:
        out.push_back(make_event(a, kImap, MessagesExpunged{box, {uid}}));
        break;
      case 5:
        out.push_back(make_event(a, kImap, MessagesCopied{box, {uid}, box}));
        break;
    }
  }
  return out;
}

}  // namespace a3::test
