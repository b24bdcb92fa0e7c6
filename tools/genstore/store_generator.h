// A generator of realistic stores: accounts with a mail history written
// into an event log as the daemon would have written it (SMTP deliveries,
// large bodies staged in BodyChunk events, flag changes, moves, expunges),
// deterministic for a seed. The recovery tests and the replay benchmark
// share it, so both measure the same kind of store.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "eventlog/event_log.h"

namespace a3::genstore {

struct Options {
  int accounts = 20;
  int messages = 20'000;
  // Sizes: most messages are small, a few are large (the tail of real mail).
  std::size_t min_size = 1024;
  std::size_t max_size = 4u << 20;
  double large_fraction = 0.005;  // of messages, above the staging threshold
  double medium_fraction = 0.15;  // of messages, between 16 KiB and it
  // Per message appended, on average: flag changes, and the chance of a move
  // to the account's "Archive" and of an expunge.
  double flags_per_message = 2.0;
  double move_rate = 0.1;
  double expunge_rate = 0.05;
  std::uint32_t seed = 1;
  std::string domain = "example.test";
  std::string password_hash;  // of every account (password::hash)
};

// What the store holds once projected: what the tests compare against.
struct Summary {
  std::uint64_t events = 0;
  std::uint64_t messages = 0;         // appended (some moved or expunged later)
  std::uint64_t staged_messages = 0;  // with their body in BodyChunk events
  std::uint64_t bytes = 0;            // of appended bodies
  std::uint64_t flag_events = 0;
  std::uint64_t moves = 0;
  std::uint64_t expunges = 0;
  std::uint64_t largest = 0;
  // account -> mailbox -> messages present at the end
  std::map<std::string, std::map<std::string, std::uint32_t>> mailboxes;
};

// Account i's address: "user<i>@<domain>".
std::string account_name(const Options& options, int i);

// Writes the store's events into `log` (many appends in flight, as the
// daemon's sessions would) and waits until all are acknowledged. `progress`
// is called now and then with (messages written, total). Throws
// std::runtime_error if an append fails.
Summary generate(eventlog::EventLog& log, const Options& options,
                 const std::function<void(std::uint64_t, std::uint64_t)>& progress = {});

// The summary as JSON (one object; `mailboxes` nested by account).
std::string to_json(const Summary& summary);

}  // namespace a3::genstore
